// The Alertwire client against the real server, through a TCP proxy the test controls.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { createAlertwireClient, type AlertwireClient, type ConnectionStatus } from '../../src/index.js';
import { SKIP, TcpProxy, liveEnv, until } from './support.js';

const env = liveEnv()!;
let proxy: TcpProxy;
let client: AlertwireClient;
const statuses: ConnectionStatus[] = [];

before(async () => {
  if (SKIP) return;
  proxy = await TcpProxy.start(env.port);
  client = createAlertwireClient({
    url: proxy.url(),
    token: () => env.nurseToken,
    WebSocket,
    // Short back-off so that the test sees the return to the socket quickly.
    backoff: { initialDelayMs: 250, maxDelayMs: 1000 },
  });
  client.onStatusChange((s) => statuses.push(s));
});

after(async () => {
  if (SKIP) return;
  client.close();
  await proxy.close();
});

test('queries over the socket', { skip: SKIP }, async () => {
  await until(() => client.status === 'open', 5000, 'open');
  assert.equal(await client.system.ping.query(), 'pong');
  const me = await client.system.whoami.query();
  assert.equal(me.sub, 'nurse-live');
});

test('a mutation and a tracked subscription over the socket', { skip: SKIP }, async () => {
  await until(() => client.status === 'open', 5000, 'open');
  const events: Array<{ id: string; data: { type: string; alertId?: string } }> = [];
  let started = false;
  const sub = client.healthcare.subscribeToAlerts.subscribe(
    { hospitalId: 'h1' },
    {
      onStarted: () => (started = true),
      onData: (event) => events.push(event),
      onError: (error) => assert.fail(error),
    },
  );
  try {
    await until(() => started, 5000, 'started');
    const alert = await client.healthcare.createAlert.mutate({
      hospitalId: 'h1',
      type: 'fall',
      priority: 'critical',
      title: 'Fall detected, room 9',
    });
    assert.equal(alert.createdBy, 'nurse-live');
    const acked = await client.healthcare.acknowledgeAlert.mutate({ alertId: alert.id });
    assert.equal(acked.status, 'acknowledged');
    await until(() => events.length === 2, 5000, 'both events');
    assert.deepEqual(
      events.map((e) => [e.data.type, e.data.alertId]),
      [['alert.created', alert.id], ['alert.acknowledged', alert.id]],
    );
    assert.ok(events[0]!.id < events[1]!.id);
  } finally {
    sub.unsubscribe();
  }
});

test('network cut: reconnects by itself when the network is back', { skip: SKIP }, async () => {
  proxy.cut();
  await until(() => client.status !== 'open', 5000, 'leaving open');
  await new Promise((resolve) => setTimeout(resolve, 1500));
  proxy.restore();
  await until(() => client.status === 'open', 10000, 'open again');
  assert.equal((await client.system.whoami.query()).sub, 'nurse-live');
});

test('upgrades refused: polling within 5 s, HTTP calls work, back to the socket after', { skip: SKIP }, async () => {
  proxy.refuseUpgrades();
  const took = await until(() => client.status === 'polling', 5000, 'polling');
  assert.ok(took < 5000);
  assert.ok(proxy.upgradesRefused >= 1);
  assert.equal((await client.system.whoami.query()).sub, 'nurse-live');
  proxy.restore();
  await until(() => client.status === 'open', 10000, 'open again');
  assert.ok(statuses.includes('polling'));
  assert.equal(statuses.at(-1), 'open');
});
