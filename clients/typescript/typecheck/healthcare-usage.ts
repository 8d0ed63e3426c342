// The healthcare router through both clients, compiled with `tsc --strict -p typecheck`.
// Correct usage must compile with the types asserted below; every `@ts-expect-error` line must
// really be an error (tsc fails on an unused one), so each negative proves that the generated
// types reject that mistake.
import { createTRPCClient, createWSClient, httpBatchLink, splitLink, wsLink, type TRPCClientError } from '@trpc/client';
import WebSocket from 'ws';
// The schema types through the package root, as an application imports them: this also proves
// that no export of the client shadows a schema name (e.g. `StreamReset`).
import {
  createAlertwireClient,
  type Alert,
  type AlertEvent,
  type AlertEventPage,
  type AlertPage,
  type AlertwireError,
  type CreateAlertInput,
  type ListAlertsInput,
  type Metrics,
  type StreamReset,
  type SubscribeToAlertsInput,
} from '../src/index.js';
import type { AppRouter, RouterInputs, RouterOutputs } from '../src/generated/router.js';

/** `true` only when A and B are the same type (not merely assignable one way). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;

type Priority = 'low' | 'medium' | 'high' | 'critical';
type Status = 'active' | 'acknowledged' | 'resolved';
type EventType = 'alert.created' | 'alert.acknowledged' | 'alert.resolved' | 'alert.escalated' | 'alert.updated' | 'alert.noted';
type Tracked<T> = { id: string; data: T };

const url = 'http://localhost:3001/api/trpc';

export const trpc = createTRPCClient<AppRouter>({
  links: [
    splitLink({
      condition: (op) => op.type === 'subscription',
      true: wsLink<AppRouter>({
        client: createWSClient({
          url: 'ws://localhost:3001/api/trpc',
          WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
          connectionParams: () => ({ token: 'jwt' }),
        }),
      }),
      false: httpBatchLink({ url, headers: () => ({ authorization: 'Bearer jwt' }) }),
    }),
  ],
});

export const alertwire = createAlertwireClient({ url, token: () => 'jwt', WebSocket });

const newAlert = {
  hospitalId: 'h1',
  type: 'vitals.high_bp',
  priority: 'critical',
  title: 'BP 190/120, bed 12',
} as const satisfies CreateAlertInput;

// --- the schema types themselves: exactly the contract (CONTRACT section 4) -----------------

// Closed unions stay closed, nullable output fields are `T | null` and never optional.
export type SchemaTypes = [
  Assert<Equal<Alert['priority'], Priority>>,
  Assert<Equal<Alert['status'], Status>>,
  Assert<Equal<Alert['patientId'], string | null>>,
  Assert<Equal<Alert['acknowledgedAt'], string | null>>,
  Assert<Equal<Alert['version'], number>>,
  Assert<Equal<AlertEvent['type'], EventType>>,
  Assert<Equal<StreamReset['type'], 'stream.reset'>>,
  Assert<Equal<Metrics['responseRate'], number | null>>,
  Assert<Equal<Metrics['averageResponseTimeSeconds'], number | null>>,
  Assert<Equal<AlertPage['nextCursor'], string | null>>,
  // A page always carries a position to subscribe from (all zeros before the first event).
  Assert<Equal<AlertPage['lastEventId'], string>>,
  Assert<Equal<AlertEventPage['lastEventId'], string>>,
  Assert<Equal<AlertEventPage['events'], (AlertEvent | StreamReset)[]>>,
  // Inputs: a field with a default may be left out; `status` filters by the closed union.
  Assert<Equal<CreateAlertInput['message'], string | null | undefined>>,
  Assert<Equal<ListAlertsInput['status'], Status | null | undefined>>,
  Assert<Equal<SubscribeToAlertsInput['lastEventId'], string | null | undefined>>,
];

// --- RouterInputs / RouterOutputs for healthcare paths ---------------------------------------

type HIn = RouterInputs['healthcare'];
type HOut = RouterOutputs['healthcare'];
export type RouterTypes = [
  Assert<Equal<HIn['createAlert'], CreateAlertInput>>,
  Assert<Equal<HIn['listAlerts'], ListAlertsInput>>,
  Assert<Equal<HIn['subscribeToAlerts'], SubscribeToAlertsInput>>,
  // Outputs are tRPC's JSON view of the schema types (transformer: false); the fields are the same.
  Assert<Equal<HOut['createAlert']['priority'], Priority>>,
  Assert<Equal<HOut['getMetrics']['responseRate'], number | null>>,
  Assert<Equal<HOut['listAlerts']['nextCursor'], string | null>>,
  // A subscription's output is one event as the client receives it: tracked `{ id, data }`
  // for the alert stream, the bare snapshot for metrics.
  Assert<Equal<HOut['subscribeToAlerts']['id'], string>>,
  Assert<Equal<HOut['subscribeToAlerts']['data']['type'], EventType | 'stream.reset'>>,
  Assert<Equal<HOut['subscribeToMetrics']['hospitalId'], string>>,
];

export async function routerTypesInUse(): Promise<void> {
  const input: RouterInputs['healthcare']['createAlert'] = newAlert;
  const created: RouterOutputs['healthcare']['createAlert'] = await trpc.healthcare.createAlert.mutate(input);
  const alert: Alert = created; // the JSON view is an Alert
  const page: RouterOutputs['healthcare']['listAlerts'] = await alertwire.healthcare.listAlerts.query({ hospitalId: 'h1' });
  const event: RouterOutputs['healthcare']['subscribeToAlerts'] = { id: 'e1', data: { id: 'e1', type: 'stream.reset', hospitalId: 'h1', reason: 'gone' } };
  const metrics: RouterOutputs['healthcare']['subscribeToMetrics'] = await alertwire.healthcare.getMetrics.query({ hospitalId: 'h1' });
  const noInput: RouterInputs['system']['ping'] = undefined;
  void alert, page, event, metrics, noInput;
}

// --- the official tRPC client -----------------------------------------------------------------

export async function officialClient(): Promise<void> {
  const alert: Alert = await trpc.healthcare.createAlert.mutate(newAlert);
  const full: Alert = await trpc.healthcare.createAlert.mutate({
    ...newAlert,
    message: null, // optional inputs accept null (their default) as well as a value
    patientId: 'p-17',
    location: 'ward 3, bed 12',
  });
  const acked: Alert = await trpc.healthcare.acknowledgeAlert.mutate({ alertId: alert.id });
  const escalated: number = (await trpc.healthcare.escalateAlert.mutate({ alertId: alert.id, reason: 'no answer' })).escalationLevel;
  const updated: Alert = await trpc.healthcare.updateAlert.mutate({ alertId: alert.id, priority: 'high', assignedTo: null });
  const resolved: Status = (await trpc.healthcare.resolveAlert.mutate({ alertId: alert.id })).status;
  const one: Alert = await trpc.healthcare.getAlert.query({ alertId: alert.id });

  const page = await trpc.healthcare.listAlerts.query({ hospitalId: 'h1', status: 'active', limit: 20 });
  const items: Alert[] = page.items;
  const next: string | null = page.nextCursor;
  const position: string = page.lastEventId;
  await trpc.healthcare.listAlerts.query({ hospitalId: 'h1', cursor: next, status: null });

  const polled = await trpc.healthcare.getAlertEvents.query({ hospitalId: 'h1', lastEventId: position });
  const events: (AlertEvent | StreamReset)[] = polled.events;

  const metrics: Metrics = await trpc.healthcare.getMetrics.query({ hospitalId: 'h1' });
  const rate: number | null = metrics.responseRate;
  const percent: number = rate === null ? 0 : Math.round(rate * 100); // narrowing on null works

  // Tracked: onData gets { id, data }; `data.type` discriminates the event from a reset.
  const alerts = trpc.healthcare.subscribeToAlerts.subscribe(
    { hospitalId: 'h1', lastEventId: position },
    {
      onData: (event) => {
        const exact: Assert<Equal<typeof event, Tracked<AlertEvent | StreamReset>>> = true;
        const id: string = event.id;
        if (event.data.type === 'stream.reset') {
          const reset: StreamReset = event.data;
          const reason: string = event.data.reason;
          void reset, reason;
        } else {
          const change: AlertEvent = event.data;
          const type: EventType = event.data.type;
          const changed: Alert = event.data.alert;
          void change, type, changed;
        }
        void exact, id;
      },
      onError: (error: TRPCClientError<AppRouter>) => void error.data?.code,
    },
  );
  alerts.unsubscribe();

  // The same events through the async iterator.
  for await (const event of trpc.healthcare.subscribeToAlerts.subscribe({ hospitalId: 'h1', alertId: alert.id })) {
    const exact: Assert<Equal<typeof event, Tracked<AlertEvent | StreamReset>>> = true;
    if (event.data.type !== 'stream.reset') {
      const priority: Priority = event.data.alert.priority;
      void priority;
    }
    void exact;
    break;
  }

  // Untracked: onData gets the Metrics snapshot itself.
  const live = trpc.healthcare.subscribeToMetrics.subscribe(
    { hospitalId: 'h1', intervalMs: 1000 },
    {
      onData: (snapshot) => {
        const exact: Assert<Equal<typeof snapshot, Metrics>> = true;
        const critical: number = snapshot.criticalAlerts;
        void exact, critical;
      },
    },
  );
  live.unsubscribe();
  void full, acked, escalated, updated, resolved, one, items, events, percent;
}

// --- the Alertwire client ---------------------------------------------------------------------

export async function alertwireClient(): Promise<void> {
  const alert: Alert = await alertwire.healthcare.createAlert.mutate(newAlert);
  const exactAlert: Assert<Equal<typeof alert, Alert>> = true;
  const acked: Alert = await alertwire.healthcare.acknowledgeAlert.mutate({ alertId: alert.id, note: 'on my way' });
  const page: AlertPage = await alertwire.healthcare.listAlerts.query({ hospitalId: 'h1', status: 'acknowledged' });
  const exactPage: Assert<Equal<Awaited<ReturnType<typeof alertwire.healthcare.listAlerts.query>>, AlertPage>> = true;
  const items: Alert[] = page.items;
  const metrics: Metrics = await alertwire.healthcare.getMetrics.query({ hospitalId: 'h1' });
  const exactMetrics: Assert<Equal<typeof metrics, Metrics>> = true;
  const rate: number | null = metrics.responseRate;

  const alerts = alertwire.healthcare.subscribeToAlerts.subscribe(
    { hospitalId: 'h1', lastEventId: page.lastEventId },
    {
      onStarted: () => {},
      onData: (event) => {
        const exact: Assert<Equal<typeof event, Tracked<AlertEvent | StreamReset>>> = true;
        if (event.data.type === 'stream.reset') {
          const reason: string = event.data.reason;
          void reason;
        } else {
          const changed: Alert = event.data.alert;
          void changed;
        }
        void exact;
      },
      onReset: (reset) => {
        const exact: Assert<Equal<typeof reset, StreamReset>> = true;
        const newest: string = reset.id;
        void exact, newest;
      },
      onError: (error) => {
        const exact: Assert<Equal<typeof error, AlertwireError>> = true;
        const kind: string = error.kind;
        void exact, kind;
      },
      onComplete: () => {},
    },
  );
  alerts.unsubscribe();

  const live = alertwire.healthcare.subscribeToMetrics.subscribe(
    { hospitalId: 'h1' },
    {
      onData: (snapshot) => {
        const exact: Assert<Equal<typeof snapshot, Metrics>> = true;
        void exact;
      },
    },
  );
  live.unsubscribe();
  void exactAlert, acked, exactPage, items, exactMetrics, rate;
}

// --- mistakes both clients reject -------------------------------------------------------------

export async function officialClientRejects(): Promise<void> {
  // @ts-expect-error wrong input type: hospitalId is a string
  await trpc.healthcare.getMetrics.query({ hospitalId: 7 });
  // @ts-expect-error bad enum value: priority is low | medium | high | critical
  await trpc.healthcare.createAlert.mutate({ ...newAlert, priority: 'urgent' });
  // @ts-expect-error bad enum value: status is active | acknowledged | resolved
  await trpc.healthcare.listAlerts.query({ hospitalId: 'h1', status: 'open' });
  // @ts-expect-error missing required field: title
  await trpc.healthcare.createAlert.mutate({ hospitalId: 'h1', type: 'fall', priority: 'high' });
  // @ts-expect-error missing input altogether
  await trpc.healthcare.getMetrics.query();
  // @ts-expect-error excess property
  await trpc.healthcare.getMetrics.query({ hospitalId: 'h1', ward: '3' });
  // @ts-expect-error excess property in a subscription input
  trpc.healthcare.subscribeToMetrics.subscribe({ hospitalId: 'h1', everyMs: 250 }, {});
  // @ts-expect-error unknown procedure path
  await trpc.healthcare.deleteAlert.mutate({ alertId: 'a1' });
  // @ts-expect-error unknown router
  await trpc.billing.getInvoice.query({ id: 'i1' });
  // @ts-expect-error .mutate on a query
  await trpc.healthcare.listAlerts.mutate({ hospitalId: 'h1' });
  // @ts-expect-error .query on a mutation
  await trpc.healthcare.acknowledgeAlert.query({ alertId: 'a1' });
  // @ts-expect-error .subscribe on a query
  trpc.healthcare.getMetrics.subscribe({ hospitalId: 'h1' }, {});
  // @ts-expect-error .query on a subscription
  await trpc.healthcare.subscribeToAlerts.query({ hospitalId: 'h1' });

  const alert = await trpc.healthcare.getAlert.query({ alertId: 'a1' });
  // @ts-expect-error reading a field the output does not have
  void alert.severity;
  const metrics = await trpc.healthcare.getMetrics.query({ hospitalId: 'h1' });
  // @ts-expect-error a nullable output field is not a number
  const rate: number = metrics.responseRate;
  // @ts-expect-error nor is a nullable string field a string
  const patient: string = alert.patientId;
  // @ts-expect-error output enums are closed too
  const open: 'open' = alert.status;

  trpc.healthcare.subscribeToAlerts.subscribe(
    { hospitalId: 'h1' },
    {
      onData: (event) => {
        // @ts-expect-error tracked events are { id, data }, not the event itself
        const direct: AlertEvent = event;
        // @ts-expect-error data may be a stream.reset, which has no alert: narrow on type first
        void event.data.alert;
        void direct;
      },
    },
  );
  trpc.healthcare.subscribeToMetrics.subscribe(
    { hospitalId: 'h1' },
    {
      onData: (snapshot) => {
        // @ts-expect-error untracked events are not wrapped in { id, data }
        void snapshot.data;
      },
    },
  );
  void rate, patient, open;
}

export async function alertwireClientRejects(): Promise<void> {
  // @ts-expect-error wrong input type: hospitalId is a string
  await alertwire.healthcare.getMetrics.query({ hospitalId: 7 });
  // @ts-expect-error bad enum value: priority
  await alertwire.healthcare.createAlert.mutate({ ...newAlert, priority: 'urgent' });
  // @ts-expect-error bad enum value: status
  await alertwire.healthcare.listAlerts.query({ hospitalId: 'h1', status: 'open' });
  // @ts-expect-error bad enum value in an update
  await alertwire.healthcare.updateAlert.mutate({ alertId: 'a1', priority: 'urgent' });
  // @ts-expect-error missing required field: title
  await alertwire.healthcare.createAlert.mutate({ hospitalId: 'h1', type: 'fall', priority: 'high' });
  // @ts-expect-error missing input altogether
  await alertwire.healthcare.getMetrics.query();
  // @ts-expect-error excess property
  await alertwire.healthcare.getMetrics.query({ hospitalId: 'h1', ward: '3' });
  // @ts-expect-error unknown procedure path
  await alertwire.healthcare.deleteAlert.mutate({ alertId: 'a1' });
  // @ts-expect-error unknown router
  await alertwire.billing.getInvoice.query({ id: 'i1' });
  // @ts-expect-error .mutate on a query
  await alertwire.healthcare.listAlerts.mutate({ hospitalId: 'h1' });
  // @ts-expect-error .query on a mutation
  await alertwire.healthcare.acknowledgeAlert.query({ alertId: 'a1' });
  // @ts-expect-error .subscribe on a query
  alertwire.healthcare.getMetrics.subscribe({ hospitalId: 'h1' }, {});
  // @ts-expect-error .query on a subscription
  await alertwire.healthcare.subscribeToAlerts.query({ hospitalId: 'h1' });

  const alert = await alertwire.healthcare.getAlert.query({ alertId: 'a1' });
  // @ts-expect-error reading a field the output does not have
  void alert.severity;
  const metrics = await alertwire.healthcare.getMetrics.query({ hospitalId: 'h1' });
  // @ts-expect-error a nullable output field is not a number
  const rate: number = metrics.responseRate;

  alertwire.healthcare.subscribeToAlerts.subscribe(
    { hospitalId: 'h1' },
    {
      onData: (event) => {
        // @ts-expect-error data may be a stream.reset, which has no alert: narrow on type first
        void event.data.alert;
      },
      // @ts-expect-error onReset gets the StreamReset, not an AlertEvent
      onReset: (reset: AlertEvent) => void reset,
    },
  );
  alertwire.healthcare.subscribeToMetrics.subscribe(
    { hospitalId: 'h1' },
    {
      // @ts-expect-error untracked events are not wrapped in { id, data }
      onData: (snapshot: Tracked<Metrics>) => void snapshot,
    },
  );
  void rate;
}

// The exactness checks really discriminate: a wrong expectation is an error.
// @ts-expect-error responseRate is nullable, so it is not exactly number
export type NotExact1 = Assert<Equal<Metrics['responseRate'], number>>;
// @ts-expect-error a tracked event is not the bare event
export type NotExact2 = Assert<Equal<HOut['subscribeToAlerts'], AlertEvent | StreamReset>>;
