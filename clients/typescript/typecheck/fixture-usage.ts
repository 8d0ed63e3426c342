// The generator's golden output for the fixture router (tests/client_gen/fixture.py) exercises
// what the real router may not yet have: mutations, enums, nullable and optional fields,
// discriminated unions, tracked and untracked subscriptions.
import { createTRPCClient, createWSClient, httpBatchLink, splitLink, wsLink } from '@trpc/client';
import type { AppRouter, RouterOutputs } from '../../../tests/client_gen/golden/router.js';
import type { ProcedureTree } from '../../../tests/client_gen/golden/procedures.js';
import type { Widget } from '../../../tests/client_gen/golden/schemas.js';
import type { DecoratedTree } from '../src/index.js';

const client = createTRPCClient<AppRouter>({
  links: [
    splitLink({
      condition: (op) => op.type === 'subscription',
      true: wsLink<AppRouter>({ client: createWSClient({ url: 'ws://localhost/api/trpc' }) }),
      false: httpBatchLink({ url: 'http://localhost/api/trpc' }),
    }),
  ],
});

declare const alertwire: DecoratedTree<ProcedureTree>;

const create = {
  hospitalId: 'h1',
  colour: 'red',
  window: { start: 0 },
  count: 2,
  reason: null,
} as const;

export async function correct(): Promise<void> {
  const widget: Widget = await client.widgets.create.mutate(create);
  const note: string | null = widget.note; // required in outputs, nullable
  const size: number = widget.window.size; // defaulted: always present in outputs
  const label: string = widget.label;
  const pair: [number, string] = widget.pair;
  const list: Widget[] = await client.widgets.list.query({ start: 0 }); // size optional in inputs
  const nothing: null = await client.widgets.deep.nothing.mutate();
  client.widgets.watch.subscribe(
    { hospitalId: 'h1' },
    {
      onData: (event) => {
        const id: string = event.id;
        if (event.data.type === 'widget.created') {
          const w: Widget = event.data.widget;
          void w;
        } else if (event.data.type === 'stream.reset') {
          const reason: string = event.data.reason;
          void reason;
        }
        void id;
      },
    },
  );
  client.widgets.ticks.subscribe({}, { onData: (n: number) => void n });

  const again: Widget = await alertwire.widgets.create.mutate(create);
  alertwire.widgets.watch.subscribe(
    { hospitalId: 'h1', lastEventId: null },
    {
      onData: (event) => {
        const id: string = event.id;
        void id;
      },
      onReset: (reset) => {
        const type: 'stream.reset' = reset.type;
        void type;
      },
    },
  );
  alertwire.widgets.ticks.subscribe({ everyMs: 250 }, { onData: (n: number) => void n });

  // RouterOutputs: a subscription's output is one event as onData gets it, in nested routers too.
  const tick: RouterOutputs['widgets']['ticks'] = 1;
  const event: RouterOutputs['widgets']['watch'] = { id: '1', data: { type: 'stream.reset', reason: 'gone' } };
  const listed: Widget[] = [] satisfies RouterOutputs['widgets']['list'];
  const deep: RouterOutputs['widgets']['deep']['nothing'] = null;
  void note, size, label, pair, list, nothing, again, tick, event, listed, deep;
}

export async function wrong(): Promise<void> {
  // @ts-expect-error bad enum value
  await client.widgets.create.mutate({ ...create, colour: 'blue' });
  // @ts-expect-error wrong input type
  await client.widgets.create.mutate({ ...create, count: '2' });
  // @ts-expect-error required-but-nullable field missing
  await client.widgets.create.mutate({ hospitalId: 'h1', colour: 'red', window: { start: 0 }, count: 2 });
  // @ts-expect-error excess property
  await client.widgets.list.query({ start: 0, extra: 1 });
  // @ts-expect-error a mutate on a query
  await client.widgets.list.mutate({ start: 0 });
  // @ts-expect-error a query on a mutation
  await client.widgets.create.query(create);
  // @ts-expect-error unknown path
  await client.widgets.remove.mutate({});
  client.widgets.watch.subscribe({ hospitalId: 'h1' }, {
    onData: (event) => {
      // @ts-expect-error tracked events are { id, data }
      const w: Widget = event;
      void w;
    },
  });

  // @ts-expect-error RouterOutputs of an untracked subscription is the event, not an AsyncIterable
  const ticks: RouterOutputs['widgets']['ticks'] = (async function* () {})();
  // @ts-expect-error RouterOutputs of a tracked subscription is { id, data }
  const bare: RouterOutputs['widgets']['watch'] = { type: 'stream.reset', reason: 'gone' };
  void ticks, bare;

  // @ts-expect-error Alertwire client: bad enum value
  await alertwire.widgets.create.mutate({ ...create, colour: 'blue' });
  // @ts-expect-error Alertwire client: a mutate on a query
  await alertwire.widgets.list.mutate({ start: 0 });
  // @ts-expect-error Alertwire client: missing input
  await alertwire.widgets.list.query();
  // @ts-expect-error Alertwire client: unknown path
  await alertwire.widgets.remove.mutate({});
}
