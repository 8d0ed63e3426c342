// The official tRPC server (v11, WebSocket adapter) as a fan-out peer for scripts/bench_fanout.py.
//
// healthcare.createAlert (mutation) builds an alert and an alert.created event shaped like
// Alertwire's and emits it; healthcare.subscribeToAlerts (subscription) yields every event of
// a hospital as tracked(id, event), so tRPC serialises each event once per subscriber, as it
// does in any tRPC app. No auth and no storage: this measures the framework's fan-out only.
//
//   PORT=0 HOST=127.0.0.1 node server.mjs   -> first stdout line: "listening on http://HOST:PORT"
import { EventEmitter, on } from 'node:events';
import { initTRPC, tracked } from '@trpc/server';
import { applyWSSHandler } from '@trpc/server/adapters/ws';
import { WebSocketServer } from 'ws';

const t = initTRPC.create();
const bus = new EventEmitter();
bus.setMaxListeners(0);
let seq = 0;

function isoMicros() {
  // Microsecond precision (Date alone has milliseconds), so latency can be read from it.
  const ms = performance.timeOrigin + performance.now();
  const whole = Math.floor(ms);
  const micros = Math.floor((ms - whole) * 1000);
  return new Date(whole).toISOString().slice(0, 23) + String(micros).padStart(3, '0') + 'Z';
}

function objectInput(value) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('input must be an object');
  }
  if (typeof value.hospitalId !== 'string' || value.hospitalId.length === 0) {
    throw new Error('hospitalId must be a non-empty string');
  }
  return value;
}

const healthcare = t.router({
  createAlert: t.procedure.input(objectInput).mutation(({ input }) => {
    seq += 1;
    const now = isoMicros();
    const alert = {
      id: `a-${seq}`,
      hospitalId: input.hospitalId,
      patientId: input.patientId ?? null,
      location: input.location ?? null,
      type: input.type,
      priority: input.priority,
      status: 'active',
      escalationLevel: 0,
      title: input.title,
      message: input.message ?? null,
      assignedTo: null,
      createdAt: now,
      createdBy: 'bench-publisher',
      acknowledgedAt: null,
      acknowledgedBy: null,
      resolvedAt: null,
      resolvedBy: null,
      updatedAt: now,
      version: 1,
    };
    const event = {
      id: String(seq).padStart(12, '0'),
      type: 'alert.created',
      hospitalId: input.hospitalId,
      alertId: alert.id,
      alert,
      actorId: 'bench-publisher',
      occurredAt: now,
    };
    bus.emit(`alerts:${input.hospitalId}`, event);
    return alert;
  }),
  subscribeToAlerts: t.procedure.input(objectInput).subscription(async function* ({ input, signal }) {
    for await (const [event] of on(bus, `alerts:${input.hospitalId}`, { signal })) {
      yield tracked(event.id, event);
    }
  }),
});

const appRouter = t.router({ healthcare });

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? '0');
const wss = new WebSocketServer({ host, port, perMessageDeflate: false });
const handler = applyWSSHandler({ wss, router: appRouter, createContext: () => ({}) });

wss.on('listening', () => {
  const address = wss.address();
  console.log(`listening on http://${host}:${address.port}`);
});

function stop() {
  handler.broadcastReconnectNotification();
  wss.close();
  for (const client of wss.clients) client.terminate();
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
