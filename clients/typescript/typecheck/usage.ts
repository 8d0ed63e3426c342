// Compiled with `tsc --strict -p typecheck` (no output): the official tRPC client and the
// Alertwire client against the generated AppRouter of the real server. Every
// `@ts-expect-error` line must really be an error, or the compilation fails.
import {
  createTRPCClient,
  createWSClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  wsLink,
  type TRPCClientError,
} from '@trpc/client';
import WebSocket from 'ws';
import { createAlertwireClient } from '../src/index.js';
import type { AppRouter, RouterInputs, RouterOutputs } from '../src/generated/router.js';
import type { Identity } from '../src/generated/schemas.js';

const url = 'http://localhost:3001/api/trpc';

const wsClient = createWSClient({
  url: 'ws://localhost:3001/api/trpc',
  // tRPC types this option as the DOM WebSocket, which the `ws` class does not fully match.
  WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
  connectionParams: async () => ({ token: 'jwt' }),
});

export const trpc = createTRPCClient<AppRouter>({
  links: [
    splitLink({
      condition: (op) => op.type === 'subscription',
      true: wsLink<AppRouter>({ client: wsClient }),
      false: httpBatchLink({ url, headers: () => ({ authorization: 'Bearer jwt' }) }),
    }),
  ],
});

export const sse = createTRPCClient<AppRouter>({
  links: [
    splitLink({
      condition: (op) => op.type === 'subscription',
      true: httpSubscriptionLink({ url, connectionParams: () => ({ token: 'jwt' }) }),
      false: httpBatchLink({ url }),
    }),
  ],
});

export const alertwire = createAlertwireClient({ url, token: () => 'jwt', WebSocket });

export async function correct(): Promise<void> {
  const pong: 'pong' = await trpc.system.ping.query();
  const me: Identity = await trpc.system.whoami.query();
  const role: 'nurse' | 'physician' | 'charge_nurse' | 'admin' | 'service' = me.role;
  const expires: string = me.expiresAt;

  const pong2: 'pong' = await alertwire.system.ping.query();
  const me2: Identity = await alertwire.system.whoami.query();
  const status: 'connecting' | 'open' | 'polling' | 'closed' = alertwire.status;
  const stop: () => void = alertwire.onStatusChange((s) => void s);

  const output: RouterOutputs['system']['whoami'] = me;
  const input: RouterInputs['system']['ping'] = undefined;
  try {
    await trpc.system.whoami.query();
  } catch (error) {
    const e = error as TRPCClientError<AppRouter>;
    const code: string | undefined = e.data?.code;
    const http: number | undefined = e.data?.httpStatus;
    void code, http;
  }
  void pong, role, expires, pong2, me2, status, stop, output, input;
}

export async function wrong(): Promise<void> {
  // @ts-expect-error ping takes no input
  await trpc.system.ping.query({ hospitalId: 'h1' });
  // @ts-expect-error queries have no .mutate
  await trpc.system.whoami.mutate();
  // @ts-expect-error unknown procedure
  await trpc.system.nope.query();
  // @ts-expect-error unknown router
  await trpc.nope.ping.query();
  const me = await trpc.system.whoami.query();
  // @ts-expect-error role is a closed union
  const bad: 'superuser' = me.role;
  // @ts-expect-error the router says transformer: false
  wsLink<AppRouter>({ client: wsClient, transformer: { serialize: (x: unknown) => x, deserialize: (x: unknown) => x } });

  // @ts-expect-error Alertwire client: queries have no .mutate
  await alertwire.system.whoami.mutate();
  // @ts-expect-error Alertwire client: unknown procedure
  await alertwire.system.nope.query();
  // @ts-expect-error Alertwire client: ping takes no input
  await alertwire.system.ping.query({ x: 1 });
  void bad;
}
