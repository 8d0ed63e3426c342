// The official @trpc/client 11 against the real server, typed by the generated AppRouter.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createTRPCClient,
  createWSClient,
  httpBatchLink,
  httpLink,
  httpSubscriptionLink,
  splitLink,
  wsLink,
  TRPCClientError,
} from '@trpc/client';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import type { AppRouter } from '../../src/generated/router.js';
import type { AlertEvent, StreamReset } from '../../src/generated/schemas.js';
import { SKIP, TcpProxy, liveEnv, until } from './support.js';

const env = liveEnv()!;

test('httpBatchLink: batched queries with a bearer header', { skip: SKIP }, async () => {
  const client = createTRPCClient<AppRouter>({
    links: [httpBatchLink({ url: env.url, headers: () => ({ authorization: `Bearer ${env.nurseToken}` }) })],
  });
  const [pong, me] = await Promise.all([client.system.ping.query(), client.system.whoami.query()]);
  assert.equal(pong, 'pong');
  assert.equal(me.sub, 'nurse-live');
  assert.equal(me.role, 'nurse');
  assert.deepEqual(me.hospitals, ['h1']);
});

test('httpLink: errors carry the code name and HTTP status', { skip: SKIP }, async () => {
  const client = createTRPCClient<AppRouter>({ links: [httpLink({ url: env.url })] });
  await assert.rejects(client.system.whoami.query(), (error: unknown) => {
    assert.ok(error instanceof TRPCClientError);
    const e = error as TRPCClientError<AppRouter>;
    assert.equal(e.data?.code, 'UNAUTHORIZED');
    assert.equal(e.data?.httpStatus, 401);
    return true;
  });
});

test('wsLink with the token in connectionParams', { skip: SKIP }, async () => {
  const wsClient = createWSClient({
    url: env.url.replace(/^http/, 'ws'),
    WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
    connectionParams: () => ({ token: env.nurseToken }),
  });
  const client = createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type !== 'mutation',
        true: wsLink<AppRouter>({ client: wsClient }),
        false: httpBatchLink({ url: env.url, headers: () => ({ authorization: `Bearer ${env.nurseToken}` }) }),
      }),
    ],
  });
  try {
    assert.equal(await client.system.ping.query(), 'pong');
    const me = await client.system.whoami.query();
    assert.equal(me.sub, 'nurse-live');
  } finally {
    await wsClient.close();
  }
});

type Tracked = { id: string; data: AlertEvent | StreamReset };

function adminHttp() {
  return createTRPCClient<AppRouter>({
    links: [httpBatchLink({ url: env.url, headers: () => ({ authorization: `Bearer ${env.adminToken}` }) })],
  });
}

async function raise(title: string): Promise<string> {
  const alert = await adminHttp().healthcare.createAlert.mutate({
    hospitalId: 'h1',
    type: 'call_button',
    priority: 'high',
    title,
  });
  return alert.id;
}

function createdIds(events: Tracked[]): string[] {
  return events.flatMap((e) => (e.data.type === 'alert.created' ? [e.data.alertId] : []));
}

test('httpBatchLink: a mutation and a query of the healthcare router', { skip: SKIP }, async () => {
  const client = adminHttp();
  const alert = await client.healthcare.createAlert.mutate({
    hospitalId: 'h1',
    type: 'vitals.high_bp',
    priority: 'critical',
    title: 'BP 190/120, bed 4',
  });
  assert.equal(alert.status, 'active');
  const [fetched, page] = await Promise.all([
    client.healthcare.getAlert.query({ alertId: alert.id }),
    client.healthcare.listAlerts.query({ hospitalId: 'h1', status: 'active' }),
  ]);
  assert.deepEqual(fetched, alert);
  assert.ok(page.items.some((a) => a.id === alert.id));
  await assert.rejects(client.healthcare.getAlert.query({ alertId: 'al_missing' }), (error: unknown) => {
    assert.equal((error as TRPCClientError<AppRouter>).data?.code, 'NOT_FOUND');
    return true;
  });
});

test('wsLink: a tracked subscription, a mutation, and a resume after the socket drops', { skip: SKIP }, async () => {
  const proxy = await TcpProxy.start(env.port);
  const wsClient = createWSClient({
    url: proxy.url().replace(/^http/, 'ws'),
    WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
    connectionParams: () => ({ token: env.adminToken }),
    retryDelayMs: () => 200,
  });
  const client = createTRPCClient<AppRouter>({ links: [wsLink<AppRouter>({ client: wsClient })] });
  const events: Tracked[] = [];
  let started = 0;
  const subscription = client.healthcare.subscribeToAlerts.subscribe(
    { hospitalId: 'h1' },
    {
      onStarted: () => (started += 1),
      onData: (event) => events.push(event),
      onError: (error) => assert.fail(error),
    },
  );
  try {
    await until(() => started === 1, 5000, 'started');
    const first = await client.healthcare.createAlert.mutate({
      hospitalId: 'h1',
      type: 'call_button',
      priority: 'high',
      title: 'over the socket',
    });
    await until(() => events.length === 1, 5000, 'the first event');
    assert.equal(events[0]!.id, events[0]!.data.id);
    assert.deepEqual(createdIds(events), [first.id]);

    proxy.cut(); // the socket drops; alerts are raised while the client is away
    const missed = [await raise('missed 1'), await raise('missed 2'), await raise('missed 3')];
    proxy.restore();
    await until(() => events.length === 4, 15000, 'the missed events after the resume');
    assert.ok(started >= 2, 'started again on the new socket');
    const live = await raise('live again');
    await until(() => events.length === 5, 5000, 'live again');
    assert.deepEqual(createdIds(events), [first.id, ...missed, live]);
    assert.equal(new Set(events.map((e) => e.id)).size, events.length);
  } finally {
    subscription.unsubscribe();
    await wsClient.close();
    await proxy.close();
  }
});

test('httpSubscriptionLink: a tracked subscription over SSE, resumed from an event id', { skip: SKIP }, async () => {
  const client = createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({
          url: env.url,
          EventSource,
          connectionParams: () => ({ token: env.nurseToken }),
        }),
        false: httpBatchLink({ url: env.url, headers: () => ({ authorization: `Bearer ${env.adminToken}` }) }),
      }),
    ],
  });
  const events: Tracked[] = [];
  let started = false;
  const live = client.healthcare.subscribeToAlerts.subscribe(
    { hospitalId: 'h1' },
    { onStarted: () => (started = true), onData: (e) => events.push(e), onError: (e) => assert.fail(e) },
  );
  await until(() => started, 5000, 'started');
  const id = await raise('over SSE');
  await until(() => events.length === 1, 5000, 'the SSE event');
  assert.deepEqual(createdIds(events), [id]);
  live.unsubscribe();

  const missed = [await raise('missed SSE 1'), await raise('missed SSE 2')];
  const resumed: Tracked[] = [];
  const again = client.healthcare.subscribeToAlerts.subscribe(
    { hospitalId: 'h1', lastEventId: events[0]!.id },
    { onData: (e) => resumed.push(e), onError: (e) => assert.fail(e) },
  );
  await until(() => resumed.length === 2, 5000, 'the missed SSE events');
  assert.deepEqual(createdIds(resumed), missed);
  again.unsubscribe();
});
