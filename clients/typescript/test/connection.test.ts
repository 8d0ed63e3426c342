import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import WebSocket from 'ws';
import { createAlertwireClient } from '../src/client.js';
import { Connection, type SubscriptionSpec } from '../src/connection.js';
import type { AlertwireError } from '../src/errors.js';
import type { AlertwireClientOptions, ConnectionStatus } from '../src/types.js';
import { MockServer, until } from './mock-server.js';

let server: MockServer;
const open: Array<{ close(): void }> = [];

beforeEach(async () => {
  server = await MockServer.start();
});

afterEach(async () => {
  for (const c of open.splice(0)) c.close();
  await server.stop();
});

function connect(extra: Partial<AlertwireClientOptions> = {}): Connection {
  const connection = new Connection({
    url: server.url,
    token: 'good',
    WebSocket,
    backoff: { initialDelayMs: 50, maxDelayMs: 200 },
    pollIntervalMs: 100,
    ...extra,
  });
  open.push(connection);
  return connection;
}

interface Recorder {
  data: Array<{ id: string; data: { id: string; type: string } }>;
  resets: unknown[];
  errors: AlertwireError[];
  started: number;
  completed: number;
  spec: SubscriptionSpec;
}

function alerts(input: Record<string, unknown> = { hospitalId: 'h1' }): Recorder {
  const rec: Recorder = {
    data: [],
    resets: [],
    errors: [],
    started: 0,
    completed: 0,
    spec: undefined as unknown as SubscriptionSpec,
  };
  rec.spec = {
    path: 'healthcare.subscribeToAlerts',
    input,
    tracked: true,
    resumable: true,
    handlers: {
      onStarted: () => (rec.started += 1),
      onData: (event) => rec.data.push(event as Recorder['data'][number]),
      onReset: (reset) => rec.resets.push(reset),
      onError: (error) => rec.errors.push(error),
      onComplete: () => (rec.completed += 1),
    },
  };
  return rec;
}

const ids = (rec: Recorder) => rec.data.map((e) => e.id);

test('authenticates first, then calls over the socket', async () => {
  const statuses: ConnectionStatus[] = [];
  const client = createAlertwireClient({ url: server.url, token: () => 'good', WebSocket });
  open.push(client);
  client.onStatusChange((s) => statuses.push(s));
  await until(() => client.status === 'open');
  assert.equal(await client.system.ping.query(), 'pong');
  assert.deepEqual(server.methods('ws'), ['auth.authenticate', 'system.ping']);
  assert.deepEqual(server.received[0]!.request.params, { token: 'good' });
  client.close();
  assert.equal(client.status, 'closed');
  assert.deepEqual(statuses, ['open', 'closed']);
});

test('calls go over HTTP while the socket is not open', async () => {
  server.refuseUpgrades = true;
  const client = createAlertwireClient({ url: server.url, token: 'good', WebSocket, backoff: { initialDelayMs: 50 } });
  open.push(client);
  assert.equal(await client.system.ping.query(), 'pong');
  assert.deepEqual(server.methods('http'), ['system.ping']);
});

test('server errors reject with code and data', async () => {
  const connection = connect();
  await until(() => connection.getStatus() === 'open');
  await assert.rejects(connection.call('nope.nothing', undefined), (error: AlertwireError) => {
    assert.equal(error.code, -32601);
    assert.equal(error.data?.code, 'NOT_FOUND');
    return true;
  });
});

test('a failed authentication is reported and the socket is retried', async () => {
  const errors: AlertwireError[] = [];
  const connection = connect({ token: 'bad', fallback: false, onError: (e) => errors.push(e) });
  await until(() => errors.length >= 2, 3000, 'two failed attempts');
  assert.equal(errors[0]!.kind, 'UNAUTHORIZED');
  assert.equal(connection.getStatus(), 'connecting');
});

test('tracked events arrive as { id, data }; a cut socket resumes from the last id, no repeats', async () => {
  const connection = connect();
  const rec = alerts();
  connection.subscribe(rec.spec);
  await until(() => rec.started === 1);
  server.publish();
  server.publish();
  await until(() => rec.data.length === 2);
  assert.deepEqual(ids(rec), ['000001', '000002']);
  assert.equal(rec.data[0]!.data.type, 'alert.created');

  server.dropAll();
  await until(() => connection.getStatus() !== 'open');
  server.publish(); // missed while away
  await until(() => rec.started === 2, 5000, 'resubscribed');
  server.publish();
  await until(() => rec.data.length === 4);
  assert.deepEqual(ids(rec), ['000001', '000002', '000003', '000004']);
  const resubscribe = server.received.filter((r) => r.request.method === 'healthcare.subscribeToAlerts');
  assert.deepEqual(resubscribe[1]!.request.params, { hospitalId: 'h1', lastEventId: '000002' });
});

test('an event delivered twice is dropped', async () => {
  const connection = connect();
  const rec = alerts({ hospitalId: 'h1', lastEventId: '000000' });
  server.publish();
  connection.subscribe(rec.spec);
  await until(() => rec.data.length === 1);
  server.broadcast({ jsonrpc: '2.0', method: 'subscription', params: { subscription: 's1', id: '000001', data: { id: '000001' } } });
  server.publish();
  await until(() => rec.data.length === 2);
  assert.deepEqual(ids(rec), ['000001', '000002']);
});

test('stream.reset goes to onReset, and the stream goes on from its id', async () => {
  server.publish();
  server.publish();
  server.publish();
  server.retainedFrom = 3;
  const connection = connect();
  const rec = alerts({ hospitalId: 'h1', lastEventId: '000001' });
  connection.subscribe(rec.spec);
  await until(() => rec.resets.length === 1);
  assert.equal((rec.resets[0] as { id: string }).id, '000003');
  server.publish();
  await until(() => rec.data.length === 1);
  assert.deepEqual(ids(rec), ['000004']);
});

test('subscribe errors and server-ended subscriptions end the subscription', async () => {
  const connection = connect();
  const forbidden = alerts({ hospitalId: 'forbidden' });
  connection.subscribe(forbidden.spec);
  await until(() => forbidden.errors.length === 1);
  assert.equal(forbidden.errors[0]!.kind, 'FORBIDDEN');

  const ended = alerts();
  connection.subscribe(ended.spec);
  await until(() => ended.started === 1);
  server.endAll({ code: -32603, message: 'Internal error', data: { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500 } });
  await until(() => ended.errors.length === 1);

  const completed = alerts();
  connection.subscribe(completed.spec);
  await until(() => completed.started === 1);
  server.endAll();
  await until(() => completed.completed === 1);
});

test('unsubscribe sends subscription.stop and no more events arrive', async () => {
  const connection = connect();
  const rec = alerts();
  const handle = connection.subscribe(rec.spec);
  await until(() => rec.started === 1);
  handle.unsubscribe();
  await until(() => server.methods('ws').includes('subscription.stop'));
  server.publish();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(rec.data.length, 0);
});

test('server.reconnect: the client reconnects and resumes', async () => {
  const connection = connect();
  const rec = alerts();
  connection.subscribe(rec.spec);
  await until(() => rec.started === 1);
  server.publish();
  await until(() => rec.data.length === 1);
  server.broadcast({ jsonrpc: '2.0', method: 'server.reconnect' });
  await until(() => rec.started === 2);
  server.publish();
  await until(() => rec.data.length === 2);
  assert.deepEqual(ids(rec), ['000001', '000002']);
});

test('upgrades refused: polls from the last event id, then returns to the socket', async () => {
  const statuses: ConnectionStatus[] = [];
  const connection = connect();
  connection.onStatusChange((s) => statuses.push(s));
  const rec = alerts();
  connection.subscribe(rec.spec);
  await until(() => rec.started === 1);
  server.publish();
  await until(() => rec.data.length === 1);

  server.refuseUpgrades = true;
  server.dropAll();
  await until(() => connection.getStatus() === 'polling', 2000, 'polling');
  server.publish();
  server.publish();
  await until(() => rec.data.length === 3, 2000, 'polled events');
  const poll = server.received.find((r) => r.via === 'http')!;
  assert.equal(poll.request.method, 'healthcare.getAlertEvents');
  assert.equal(poll.request.params?.lastEventId, '000001');

  server.refuseUpgrades = false;
  await until(() => connection.getStatus() === 'open', 3000, 'back on the socket');
  server.publish();
  await until(() => rec.data.length === 4);
  assert.deepEqual(ids(rec), ['000001', '000002', '000003', '000004']);
  const resubscribe = server.received.filter((r) => r.request.method === 'healthcare.subscribeToAlerts').at(-1)!;
  assert.equal(resubscribe.request.params?.lastEventId, '000003');
  assert.deepEqual(statuses.slice(-2), ['polling', 'open']);
  const httpAfter = server.methods('http').length;
  await new Promise((resolve) => setTimeout(resolve, 250));
  assert.equal(server.methods('http').length, httpAfter, 'polling stopped');
});

test('a subscription opened while polling starts from now, then receives new events', async () => {
  server.refuseUpgrades = true;
  server.publish();
  const connection = connect();
  await until(() => connection.getStatus() === 'polling');
  const rec = alerts();
  connection.subscribe(rec.spec);
  await until(() => server.methods('http').includes('healthcare.getAlertEvents'));
  await new Promise((resolve) => setTimeout(resolve, 50));
  server.publish();
  await until(() => rec.data.length === 1);
  assert.deepEqual(ids(rec), ['000002']);
});

test('metrics are polled as snapshots on their interval', async () => {
  server.refuseUpgrades = true;
  const connection = connect();
  const values: unknown[] = [];
  connection.subscribe({
    path: 'healthcare.subscribeToMetrics',
    input: { hospitalId: 'h1', intervalMs: 100 },
    tracked: false,
    resumable: false,
    handlers: { onData: (v) => values.push(v) },
  });
  await until(() => values.length >= 3, 2000, 'three snapshots');
  assert.deepEqual(values[0], { hospitalId: 'h1', activeAlerts: 0 });
});

test('WebSocket: false is HTTP only: calls over POST, subscriptions polled, no upgrade tried', async () => {
  server.publish();
  const connection = connect({ WebSocket: false });
  assert.equal(connection.getStatus(), 'polling');
  assert.equal(await connection.call('system.ping', undefined), 'pong');
  const rec = alerts();
  connection.subscribe(rec.spec);
  await until(() => server.methods('http').includes('healthcare.getAlertEvents'));
  await new Promise((resolve) => setTimeout(resolve, 50));
  server.publish();
  await until(() => rec.data.length === 1);
  assert.deepEqual(ids(rec), ['000002']);
  assert.equal(server.methods('ws').length, 0, 'no socket was opened');
});

test('Node 20 without a WebSocket option: HTTP only, unless the fallback is off', async () => {
  if ((globalThis as { WebSocket?: unknown }).WebSocket !== undefined) return;
  const client = createAlertwireClient({ url: server.url, token: 'good' });
  open.push(client);
  assert.equal(client.status, 'polling');
  assert.equal(await client.system.ping.query(), 'pong');
  assert.throws(
    () => createAlertwireClient({ url: server.url, fallback: false }),
    /no HTTP fallback/,
  );
});
