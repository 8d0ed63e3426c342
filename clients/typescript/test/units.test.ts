import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay } from '../src/backoff.js';
import { AlertwireError } from '../src/errors.js';
import { alertEventsPoller, metricsPoller } from '../src/fallback.js';
import { swapScheme } from '../src/http.js';
import { RecentIds } from '../src/recent.js';

test('backoff: 1 s doubling to 30 s, jitter takes off at most half', () => {
  const top = (n: number) => backoffDelay(n, {}, () => 0);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 20].map(top), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  const bottom = (n: number) => backoffDelay(n, {}, () => 1);
  assert.deepEqual([0, 1, 5].map(bottom), [500, 1000, 15000]);
  assert.equal(backoffDelay(2, { initialDelayMs: 10, maxDelayMs: 25, jitter: 0 }), 25);
  for (let i = 0; i < 100; i += 1) {
    const d = backoffDelay(3);
    assert.ok(d >= 4000 && d <= 8000, String(d));
  }
});

test('recent ids: drops repeats, forgets the oldest beyond capacity', () => {
  const ids = new RecentIds(2);
  assert.equal(ids.add('a'), true);
  assert.equal(ids.add('a'), false);
  ids.add('b');
  ids.add('c');
  assert.equal(ids.has('a'), false);
  assert.equal(ids.has('c'), true);
});

test('scheme swap keeps host, path and query', () => {
  assert.equal(swapScheme('http://h:1/api/trpc?x=1', 'ws'), 'ws://h:1/api/trpc?x=1');
  assert.equal(swapScheme('https://h/api/trpc', 'ws'), 'wss://h/api/trpc');
  assert.equal(swapScheme('wss://h/api/trpc', 'http'), 'https://h/api/trpc');
  assert.equal(swapScheme('ws://h/api/trpc', 'http'), 'http://h/api/trpc');
  assert.equal(swapScheme('ws://h/api/trpc', 'ws'), 'ws://h/api/trpc');
});

test('errors carry the code and data of the server', () => {
  const error = AlertwireError.fromRpc({ code: -32003, message: 'no', data: { code: 'FORBIDDEN', httpStatus: 403 } });
  assert.equal(error.code, -32003);
  assert.equal(error.kind, 'FORBIDDEN');
  assert.equal(error.data?.httpStatus, 403);
  assert.equal(AlertwireError.fromRpc('junk').code, -32603);
  assert.equal(new AlertwireError('lost').kind, 'CLIENT');
});

test('default pollers map subscription inputs to the polling queries', () => {
  assert.deepEqual(alertEventsPoller.input({ hospitalId: 'h1', alertId: 'a1' }, '5', 100), {
    hospitalId: 'h1',
    lastEventId: '5',
    limit: 100,
  });
  assert.deepEqual(alertEventsPoller.input({ hospitalId: 'h1' }, undefined, 10), { hospitalId: 'h1', limit: 10 });
  const only = { hospitalId: 'h1', alertId: 'a1' };
  assert.equal(alertEventsPoller.accept?.(only, { alertId: 'a1' }), true);
  assert.equal(alertEventsPoller.accept?.(only, { alertId: 'a2' }), false);
  assert.equal(alertEventsPoller.accept?.(only, { type: 'stream.reset' }), true);
  assert.equal(metricsPoller.intervalMs({ hospitalId: 'h1', intervalMs: 250 }), 250);
  assert.equal(metricsPoller.intervalMs({ hospitalId: 'h1' }), 5000);
});
