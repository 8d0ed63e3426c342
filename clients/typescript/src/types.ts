import type { BackoffOptions } from './backoff.js';
import type { AlertwireError } from './errors.js';
import type { Poller } from './fallback.js';

/** `connecting` until the socket is open and authenticated; `polling` while the HTTP fallback serves. */
export type ConnectionStatus = 'connecting' | 'open' | 'polling' | 'closed';

// Handler properties are declared bivariantly so that both the DOM WebSocket and the `ws`
// package's class (whose event types are richer) are accepted.
type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

/** The part of the WebSocket API the client uses (browsers, Node 22+, the `ws` package). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string; signal?: AbortSignal },
) => Promise<{ status: number; text(): Promise<string> }>;

export type TokenSource = string | (() => string | null | undefined | Promise<string | null | undefined>);

export interface AlertwireClientOptions {
  /**
   * The endpoint, e.g. `https://alerts.example.org/api/trpc` or `ws://localhost:3001/api/trpc`.
   * The WebSocket and HTTP URLs are derived from it (http <-> ws, https <-> wss).
   */
  url: string;
  /** Override the derived WebSocket URL. */
  wsUrl?: string;
  /** Override the derived HTTP URL (JSON-RPC POST). */
  httpUrl?: string;
  /** A bearer JWT, or a function returning a fresh one (called on every connect and HTTP call). */
  token?: TokenSource;
  /**
   * A WebSocket implementation: the global one by default (browsers, Node 22+); in Node 20 pass
   * the `ws` package's (`import WebSocket from 'ws'`). `false`, or no WebSocket at all, is
   * HTTP-only: calls go over `POST`, subscriptions are served by polling, status `polling`.
   */
  WebSocket?: WebSocketConstructor | false;
  /** A fetch implementation; defaults to the global one. */
  fetch?: FetchLike;
  /** Reconnect back-off; defaults to 1 s doubling to 30 s with jitter. */
  backoff?: BackoffOptions;
  /** Give up opening a socket after this long (ms) and count it as failed. Default 4000. */
  connectTimeoutMs?: number;
  /** Fail a call with no reply after this long (ms). Default 15000. */
  requestTimeoutMs?: number;
  /**
   * After this long without a frame, send `PING`; without `PONG` within `timeoutMs` the socket
   * is considered dead and reopened. Default `{ intervalMs: 20000, timeoutMs: 5000 }`.
   */
  keepAlive?: { intervalMs: number; timeoutMs: number } | false;
  /** Poll over HTTP while the WebSocket cannot be opened. Default true. */
  fallback?: boolean;
  /** Interval (ms) of event polling in the fallback. Default 5000. */
  pollIntervalMs?: number;
  /** How subscriptions are served by polling, by subscription path. Defaults: the healthcare streams. */
  pollers?: Record<string, Poller>;
  /** Connection-level problems (failed authentication, malformed frames). */
  onError?: (error: AlertwireError) => void;
}

export interface SubscriptionHandlers<TEvent, TReset> {
  /** The subscription is live on the socket (again, after a reconnect) or in the fallback. */
  onStarted?: () => void;
  /** One event; for tracked streams `{ id, data }`. Duplicates (same id) are dropped. */
  onData?: (event: TEvent) => void;
  /**
   * The server could not replay from the last event id (`stream.reset`): refetch the state.
   * Without this handler the reset event goes to `onData`.
   */
  onReset?: (reset: TReset) => void;
  /** The subscription failed; it is over. */
  onError?: (error: AlertwireError) => void;
  /** The server ended the subscription normally. */
  onComplete?: () => void;
}

export interface Unsubscribable {
  unsubscribe(): void;
}
