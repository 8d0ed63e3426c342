import { createTRPCClient, createWSClient, httpBatchLink, splitLink, wsLink } from '@trpc/client';
import type { AppRouter } from '@alertwire/client/router';

const token = () => localStorage.getItem('jwt') ?? '';
const wsClient = createWSClient({
  url: 'wss://alerts.example.org/api/trpc',
  connectionParams: () => ({ token: token() }), // sent again on every reconnect
});
export const trpc = createTRPCClient<AppRouter>({
  links: [
    splitLink({
      condition: (op) => op.type === 'subscription',
      true: wsLink<AppRouter>({ client: wsClient }),
      false: httpBatchLink({
        url: 'https://alerts.example.org/api/trpc',
        headers: () => ({ authorization: `Bearer ${token()}` }),
      }),
    }),
  ],
});

// Queries and mutations go over HTTP (batched); inputs and outputs are typed from the server.
const page = await trpc.healthcare.listAlerts.query({ hospitalId: 'h1', status: 'active' });

// A tracked subscription: each event is { id, data }. Starting from page.lastEventId continues
// exactly after the snapshot above. When the socket drops, wsLink reconnects and re-sends the
// subscription with lastEventId = the last id it received: the missed events come first and none
// is repeated; onStarted fires again. No code of yours is involved.
const sub = trpc.healthcare.subscribeToAlerts.subscribe(
  { hospitalId: 'h1', lastEventId: page.lastEventId },
  {
    onStarted: () => console.log('live'),
    onData: ({ id, data }) => {
      if (data.type === 'stream.reset') {
        console.warn('history lost, reload the list:', data.reason); // then it goes on live
      } else {
        console.log(id, data.type, data.alert.title, data.alert.status);
      }
    },
    onError: (err) => console.error(err.data?.code, err.message),
  },
);
// Later: sub.unsubscribe();
