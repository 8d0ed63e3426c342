// The official @trpc/client 11 against the real server, typed by the generated AppRouter.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createTRPCClient,
  createWSClient,
  httpBatchLink,
  httpLink,
  splitLink,
  wsLink,
  TRPCClientError,
} from '@trpc/client';
import WebSocket from 'ws';
import type { AppRouter } from '../../src/generated/router.js';
import { SKIP, liveEnv } from './support.js';

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
