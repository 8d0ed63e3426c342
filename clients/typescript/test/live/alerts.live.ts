// The alert stream end to end with the Alertwire connection: resume after a network cut and the
// HTTP polling fallback, each delivering exactly the events raised meanwhile. Uses the
// connection directly (paths as strings) so that it runs as soon as the server has the
// healthcare router; it skips while the server answers NOT_FOUND for it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { Connection } from '../../src/connection.js';
import { SKIP, TcpProxy, liveEnv, rpc, until } from './support.js';

const env = liveEnv()!;
let proxy: TcpProxy;
let connection: Connection;
let missing: string | false = SKIP;
const received: Array<{ id: string; data: { type: string; alertId: string } }> = [];
const created: string[] = [];

async function raise(title: string): Promise<void> {
  const alert = (await rpc(env, 'healthcare.createAlert', {
    hospitalId: 'h1',
    type: 'call_button',
    priority: 'high',
    title,
  })) as { id: string };
  created.push(alert.id);
}

before(async () => {
  if (SKIP) return;
  try {
    await raise('first');
  } catch (error) {
    if ((error as { code?: number }).code === -32601) {
      missing = 'the server has no healthcare router yet';
      return;
    }
    throw error;
  }
  proxy = await TcpProxy.start(env.port);
  connection = new Connection({
    url: proxy.url(),
    token: env.nurseToken,
    WebSocket,
    backoff: { initialDelayMs: 250, maxDelayMs: 1000 },
  });
});

after(async () => {
  if (missing) return;
  connection.close();
  await proxy.close();
});

function alertIds(): string[] {
  return received.filter((e) => e.data.type === 'alert.created').map((e) => e.data.alertId);
}

test('subscribe, then exactly the events raised during a network cut after the resume', async (t) => {
  if (missing) return t.skip(missing);
  await until(() => connection.getStatus() === 'open', 5000, 'open');
  let started = 0;
  connection.subscribe({
    path: 'healthcare.subscribeToAlerts',
    input: { hospitalId: 'h1' },
    tracked: true,
    resumable: true,
    handlers: {
      onStarted: () => (started += 1),
      onData: (event) => received.push(event as (typeof received)[number]),
      onError: (error) => assert.fail(error),
    },
  });
  await until(() => started === 1, 5000, 'started');
  await raise('live 1');
  await until(() => received.length === 1, 5000, 'first live event');

  proxy.cut();
  await until(() => connection.getStatus() !== 'open', 5000, 'leaving open');
  await raise('missed 1');
  await raise('missed 2');
  await raise('missed 3');
  proxy.restore();
  await until(() => received.length === 4, 15000, 'the missed events');
  await raise('live 2');
  await until(() => received.length === 5, 5000, 'live again');
  assert.deepEqual(alertIds(), created.slice(1));
  assert.equal(new Set(received.map((e) => e.id)).size, received.length, 'no duplicates');
});

test('upgrades refused: polling within 5 s misses nothing, then back to the socket', async (t) => {
  if (missing) return t.skip(missing);
  proxy.refuseUpgrades();
  const took = await until(() => connection.getStatus() === 'polling', 5000, 'polling');
  assert.ok(took < 5000, `${took} ms`);
  const before = received.length;
  await raise('polled 1');
  await raise('polled 2');
  await until(() => received.length === before + 2, 12000, 'polled events');
  proxy.restore();
  await until(() => connection.getStatus() === 'open', 10000, 'open again');
  await raise('socket again');
  await until(() => received.length === before + 3, 5000, 'event on the socket');
  assert.deepEqual(alertIds(), created.slice(1));
  assert.equal(new Set(received.map((e) => e.id)).size, received.length, 'no duplicates');
});
