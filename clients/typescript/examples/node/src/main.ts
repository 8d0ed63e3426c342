// Both clients of @alertwire/client from Node 20, against a running server:
//
//   ALERTWIRE_URL=http://127.0.0.1:3001/api/trpc ALERTWIRE_TOKEN=<jwt> npm start
//
// (`scripts/issue_token.py --sub nurse-1 --role nurse --hospital h1` prints a development token.)
// Each step raises an alert, receives it on a subscription that started from a snapshot's
// position, and prints one JSON line. The repository's tests compile and run this file.
import {
  createTRPCClient,
  createWSClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  TRPCClientError,
  wsLink,
} from '@trpc/client';
import { createAlertwireClient, type AlertStreamEvent } from '@alertwire/client';
import type { AppRouter } from '@alertwire/client/router';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';

const url = process.env.ALERTWIRE_URL ?? 'http://127.0.0.1:3001/api/trpc';
const token = process.env.ALERTWIRE_TOKEN ?? '';
const hospitalId = process.env.ALERTWIRE_HOSPITAL ?? 'h1';
if (token === '') {
  console.error('Set ALERTWIRE_TOKEN to a token for hospital ' + hospitalId);
  process.exit(2);
}

function report(step: string, detail: Record<string, unknown>): void {
  console.log(JSON.stringify({ step, ...detail }));
}

/** Waits for the event of the alert titled `title`, for at most `timeoutMs`. */
function expectAlert(title: string, timeoutMs = 15_000) {
  let found!: (eventId: string) => void;
  let failed!: (error: Error) => void;
  const eventId = new Promise<string>((resolve, reject) => {
    found = resolve;
    failed = reject;
  });
  const timer = setTimeout(() => failed(new Error(`no event for "${title}" in ${timeoutMs} ms`)), timeoutMs);
  return {
    eventId: eventId.finally(() => clearTimeout(timer)),
    offer(id: string, event: AlertStreamEvent): void {
      if (event.type !== 'stream.reset' && event.alert.title === title) found(id);
    },
    fail: failed,
  };
}

const raise = { hospitalId, type: 'example', priority: 'low' } as const;

// --- The official tRPC client: subscriptions over the WebSocket, the rest over batched HTTP.
// Node 20 has no global WebSocket: give createWSClient the `ws` package's class. Its type is
// not the DOM's, hence the cast; at run time it is what tRPC expects.
const wsClient = createWSClient({
  url: url.replace(/^http/, 'ws'),
  WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
  connectionParams: () => ({ token }), // sent again on every reconnect
});
const http = httpBatchLink({ url, headers: () => ({ authorization: `Bearer ${token}` }) });
const trpc = createTRPCClient<AppRouter>({
  links: [
    splitLink({
      condition: (op) => op.type === 'subscription',
      true: wsLink<AppRouter>({ client: wsClient }),
      false: http,
    }),
  ],
});
{
  const page = await trpc.healthcare.listAlerts.query({ hospitalId });
  const wanted = expectAlert('example: tRPC over the WebSocket');
  const sub = trpc.healthcare.subscribeToAlerts.subscribe(
    { hospitalId, lastEventId: page.lastEventId },
    { onData: ({ id, data }) => wanted.offer(id, data), onError: (err) => wanted.fail(err) },
  );
  await trpc.healthcare.createAlert.mutate({ ...raise, title: 'example: tRPC over the WebSocket' });
  report('trpc-websocket', { eventId: await wanted.eventId });
  sub.unsubscribe();
}

// --- The same over SSE: an EventSource for Node from the `eventsource` package.
const sse = createTRPCClient<AppRouter>({
  links: [
    splitLink({
      condition: (op) => op.type === 'subscription',
      true: httpSubscriptionLink({ url, EventSource, connectionParams: () => ({ token }) }),
      false: http,
    }),
  ],
});
{
  const page = await sse.healthcare.listAlerts.query({ hospitalId });
  const wanted = expectAlert('example: tRPC over SSE');
  const sub = sse.healthcare.subscribeToAlerts.subscribe(
    { hospitalId, lastEventId: page.lastEventId },
    { onData: ({ id, data }) => wanted.offer(id, data), onError: (err) => wanted.fail(err) },
  );
  await sse.healthcare.createAlert.mutate({ ...raise, title: 'example: tRPC over SSE' });
  report('trpc-sse', { eventId: await wanted.eventId });
  sub.unsubscribe();
}

// --- Errors are typed by the AppRouter: invalid input says which field, in data.fieldErrors.
try {
  await trpc.healthcare.createAlert.mutate({ ...raise, title: '' });
  throw new Error('an empty title was accepted');
} catch (err) {
  if (!(err instanceof TRPCClientError)) throw err;
  const error = err as TRPCClientError<AppRouter>;
  const fieldErrors: Record<string, string> | undefined = error.data?.fieldErrors;
  report('field-errors', { code: error.data?.code, fields: Object.keys(fieldErrors ?? {}) });
}
wsClient.close();

// --- The Alertwire client: JSON-RPC over the WebSocket, resumes by itself, HTTP when it must.
for (const [step, WebSocketImpl] of [
  ['alertwire-websocket', WebSocket],
  ['alertwire-http-only', false], // no WebSocket at all: calls over POST, subscriptions polled
] as const) {
  const client = createAlertwireClient({ url, token, WebSocket: WebSocketImpl, pollIntervalMs: 250 });
  const page = await client.healthcare.listAlerts.query({ hospitalId });
  const title = `example: ${step}`;
  const wanted = expectAlert(title);
  const sub = client.healthcare.subscribeToAlerts.subscribe(
    { hospitalId, lastEventId: page.lastEventId },
    { onData: ({ id, data }) => wanted.offer(id, data), onError: (err) => wanted.fail(err) },
  );
  await client.healthcare.createAlert.mutate({ ...raise, title });
  report(step, { eventId: await wanted.eventId, status: client.status });
  sub.unsubscribe();
  client.close();
}
