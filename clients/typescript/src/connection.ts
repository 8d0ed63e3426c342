import { backoffDelay } from './backoff.js';
import { AlertwireError, UNAUTHORIZED, isErrorObject } from './errors.js';
import { defaultPollers, isEventPage, type Poller } from './fallback.js';
import { postJsonRpc, swapScheme } from './http.js';
import { RecentIds } from './recent.js';
import type {
  AlertwireClientOptions,
  ConnectionStatus,
  FetchLike,
  SubscriptionHandlers,
  Unsubscribable,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';

const PAGE_SIZE = 100;
const EARLY_LIMIT = 1000;

type Timer = ReturnType<typeof setTimeout>;

export interface SubscriptionSpec {
  path: string;
  input: unknown;
  /** Events carry ids: deliver `{ id, data }` and resume from the last one. */
  tracked: boolean;
  /** The input accepts `lastEventId`. */
  resumable: boolean;
  handlers: SubscriptionHandlers<unknown, unknown>;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: AlertwireError): void;
  timer: Timer;
}

interface Frame {
  id?: unknown;
  method?: unknown;
  params?: unknown;
  result?: unknown;
  error?: unknown;
}

class Subscription {
  active = true;
  lastEventId: string | undefined;
  readonly seen = new RecentIds();
  /** The server's id for it on the current socket, once the reply came. */
  sid: string | undefined;
  starting = false;
  /** Bumped to stop a poll loop; answers of an older loop are ignored. */
  pollGeneration = 0;
  polling = false;
  pollTimer: Timer | undefined;

  constructor(readonly spec: SubscriptionSpec) {
    const given = field(spec.input, 'lastEventId');
    if (typeof given === 'string' && given !== '') this.lastEventId = given;
  }
}

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined;
}

function isReset(data: unknown): boolean {
  return field(data, 'type') === 'stream.reset';
}

function noop(): void {}

/**
 * One logical connection: a WebSocket speaking JSON-RPC 2.0 (CONTRACT 3a) that is reopened with
 * back-off, and an HTTP fallback used while it cannot be opened.
 *
 * Calls go over the socket when it is open and authenticated, otherwise over HTTP POST.
 * Subscriptions survive reconnects: each is re-sent with its last event id and duplicates are
 * dropped by id. While no socket can be opened, subscriptions with a poller are served by polling.
 */
export class Connection {
  private status: ConnectionStatus = 'connecting';
  private readonly listeners = new Set<(status: ConnectionStatus) => void>();
  private readonly WebSocketImpl: WebSocketConstructor | null; // null: HTTP only
  private readonly fetchImpl: FetchLike | undefined;
  private readonly wsUrl: string;
  private readonly httpUrl: string;
  private readonly pollers: Record<string, Poller>;
  private socket: WebSocketLike | null = null;
  private ready = false;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly subscriptions = new Set<Subscription>();
  private readonly bySid = new Map<string, Subscription>();
  private readonly early = new Map<string, Array<{ id: unknown; data: unknown }>>();
  private attempt = 0;
  private reconnectTimer: Timer | undefined;
  private idleTimer: Timer | undefined;
  private pongTimer: Timer | undefined;
  private polling = false;
  private closed = false;

  constructor(private readonly options: AlertwireClientOptions) {
    const impl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (impl === undefined || impl === false) {
      if (options.fallback === false) {
        throw new AlertwireError(
          'No WebSocket implementation and no HTTP fallback: pass one as the `WebSocket` option (e.g. the `ws` package in Node 20)',
        );
      }
    }
    this.WebSocketImpl = impl === undefined || impl === false ? null : impl;
    this.fetchImpl = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
    this.wsUrl = options.wsUrl ?? swapScheme(options.url, 'ws');
    this.httpUrl = options.httpUrl ?? swapScheme(options.url, 'http');
    this.pollers = options.pollers ?? defaultPollers;
    this.connect();
  }

  // --- public surface ----------------------------------------------------------------------

  getStatus(): ConnectionStatus {
    return this.status;
  }

  onStatusChange(listener: (status: ConnectionStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A query or mutation: over the socket when it is open, otherwise over HTTP. */
  async call(path: string, input: unknown): Promise<unknown> {
    if (this.closed) throw new AlertwireError('The client is closed');
    if (this.ready && this.socket !== null) return this.request(this.socket, path, input);
    return this.http(path, input);
  }

  subscribe(spec: SubscriptionSpec): Unsubscribable {
    if (this.closed) throw new AlertwireError('The client is closed');
    const sub = new Subscription(spec);
    this.subscriptions.add(sub);
    if (this.ready) this.startOnSocket(sub);
    else if (this.polling) this.startPolling(sub);
    return { unsubscribe: () => this.unsubscribe(sub) };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    for (const sub of this.subscriptions) {
      sub.active = false;
      this.stopPolling(sub);
    }
    this.subscriptions.clear();
    const socket = this.socket;
    if (socket !== null) this.drop(socket, 1000, 'client closed');
    this.setStatus('closed');
  }

  // --- the socket ----------------------------------------------------------------------------

  private connect(): void {
    this.reconnectTimer = undefined;
    if (this.closed) return;
    if (this.WebSocketImpl === null) {
      this.enterPolling(); // HTTP only, for good: no socket to retry
      return;
    }
    if (!this.polling) this.setStatus('connecting');
    let socket: WebSocketLike;
    try {
      socket = new this.WebSocketImpl(this.wsUrl);
    } catch (cause) {
      this.report(new AlertwireError('Cannot create a WebSocket', 0, undefined, { cause }));
      this.lost(false);
      return;
    }
    this.socket = socket;
    const timeout = setTimeout(() => this.drop(socket, 1000, 'connect timeout'), this.options.connectTimeoutMs ?? 4000);
    socket.onopen = () => {
      clearTimeout(timeout);
      void this.authenticate(socket);
    };
    socket.onmessage = (event) => this.receive(socket, event.data);
    socket.onerror = noop; // a close event follows
    socket.onclose = () => {
      clearTimeout(timeout);
      if (this.socket === socket) this.lost(this.ready);
    };
  }

  /** Close `socket` and treat it as gone now, without waiting for the close handshake. */
  private drop(socket: WebSocketLike, code: number, reason: string): void {
    socket.onopen = socket.onmessage = socket.onclose = null;
    socket.onerror = noop;
    try {
      socket.close(code, reason);
    } catch {
      // already closing
    }
    if (this.socket === socket) this.lost(this.ready);
  }

  private lost(wasReady: boolean): void {
    this.socket = null;
    this.ready = false;
    clearTimeout(this.idleTimer);
    clearTimeout(this.pongTimer);
    const error = new AlertwireError('The connection was lost before the reply came');
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      this.pending.delete(id);
      pending.reject(error);
    }
    for (const sub of this.subscriptions) {
      sub.sid = undefined;
      sub.starting = false;
    }
    this.bySid.clear();
    this.early.clear();
    if (this.closed) return;
    if (!wasReady && this.options.fallback !== false) this.enterPolling();
    else if (!this.polling) this.setStatus('connecting');
    const delay = backoffDelay(this.attempt, this.options.backoff);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private async authenticate(socket: WebSocketLike): Promise<void> {
    let token: string | undefined;
    try {
      token = await this.token();
      if (token !== undefined && this.socket === socket) {
        await this.request(socket, 'auth.authenticate', { token });
      }
    } catch (error) {
      if (this.socket === socket) {
        this.report(error instanceof AlertwireError ? error : new AlertwireError('Authentication failed', 0, undefined, { cause: error }));
        this.drop(socket, 1000, 'authentication failed');
      }
      return;
    }
    if (this.socket !== socket) return;
    this.ready = true;
    this.attempt = 0;
    this.leavePolling();
    this.setStatus('open');
    this.touch(socket);
    for (const sub of this.subscriptions) this.startOnSocket(sub);
  }

  private request(socket: WebSocketLike, method: string, params: unknown): Promise<unknown> {
    const id = this.nextId++;
    const timeoutMs = this.options.requestTimeoutMs ?? 15000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new AlertwireError(`No reply to ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      const frame: Record<string, unknown> = { jsonrpc: '2.0', id, method };
      if (params !== undefined) frame.params = params;
      try {
        socket.send(JSON.stringify(frame));
      } catch (cause) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new AlertwireError(`Cannot send ${method}`, 0, undefined, { cause }));
      }
    });
  }

  private receive(socket: WebSocketLike, raw: unknown): void {
    if (this.socket !== socket) return;
    this.touch(socket);
    const text = typeof raw === 'string' ? raw : String(raw);
    if (text === 'PING') {
      socket.send('PONG');
      return;
    }
    if (text === 'PONG') return;
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.report(new AlertwireError('Malformed frame from the server', -32700));
      return;
    }
    for (const frame of Array.isArray(message) ? message : [message]) {
      if (typeof frame === 'object' && frame !== null) this.handle(socket, frame as Frame);
    }
  }

  private handle(socket: WebSocketLike, frame: Frame): void {
    if (typeof frame.id === 'number' && this.pending.has(frame.id)) {
      const pending = this.pending.get(frame.id)!;
      this.pending.delete(frame.id);
      clearTimeout(pending.timer);
      if (frame.error !== undefined) pending.reject(AlertwireError.fromRpc(frame.error));
      else pending.resolve(frame.result);
      return;
    }
    switch (frame.method) {
      case 'subscription':
        this.notification(frame.params);
        return;
      case 'subscription.end':
        this.ended(frame.params);
        return;
      case 'server.reconnect':
        this.drop(socket, 1000, 'server asked to reconnect');
        return;
      default:
        if (frame.error !== undefined) this.report(AlertwireError.fromRpc(frame.error));
    }
  }

  /** Keep-alive: after a quiet spell send PING; no answer in time means the link is dead. */
  private touch(socket: WebSocketLike): void {
    const keepAlive = this.options.keepAlive ?? { intervalMs: 20000, timeoutMs: 5000 };
    clearTimeout(this.idleTimer);
    clearTimeout(this.pongTimer);
    if (keepAlive === false) return;
    this.idleTimer = setTimeout(() => {
      if (this.socket !== socket) return;
      try {
        socket.send('PING');
      } catch {
        // the close event follows
      }
      this.pongTimer = setTimeout(() => this.drop(socket, 1000, 'keep-alive timeout'), keepAlive.timeoutMs);
    }, keepAlive.intervalMs);
  }

  // --- subscriptions on the socket -----------------------------------------------------------

  private startOnSocket(sub: Subscription): void {
    const socket = this.socket;
    if (socket === null || !this.ready || !sub.active || sub.starting || sub.sid !== undefined) return;
    sub.starting = true;
    this.request(socket, sub.spec.path, this.subscribeParams(sub)).then(
      (result) => {
        if (this.socket !== socket) return;
        sub.starting = false;
        const raw = field(result, 'subscription');
        const sid = typeof raw === 'string' || typeof raw === 'number' ? String(raw) : undefined;
        if (sid === undefined) {
          this.finish(sub, new AlertwireError('Malformed subscription reply', -32603));
          return;
        }
        if (!sub.active) {
          this.stopOnSocket(socket, sid);
          return;
        }
        sub.sid = sid;
        this.bySid.set(sid, sub);
        this.guard(() => sub.spec.handlers.onStarted?.());
        const early = this.early.get(sid) ?? [];
        this.early.delete(sid);
        for (const event of early) this.deliver(sub, event.data, event.id);
      },
      (error: AlertwireError) => {
        if (this.socket !== socket) return; // the socket went away: re-sent on the next one
        sub.starting = false;
        this.finish(sub, error);
      },
    );
  }

  private subscribeParams(sub: Subscription): unknown {
    const { input, resumable } = sub.spec;
    if (!resumable || sub.lastEventId === undefined) return input;
    const base = typeof input === 'object' && input !== null ? input : {};
    return { ...base, lastEventId: sub.lastEventId };
  }

  private stopOnSocket(socket: WebSocketLike, sid: string): void {
    this.bySid.delete(sid);
    this.early.delete(sid);
    this.request(socket, 'subscription.stop', { subscription: sid }).catch(noop);
  }

  private notification(params: unknown): void {
    const sid = String(field(params, 'subscription'));
    const event = { id: field(params, 'id'), data: field(params, 'data') };
    const sub = this.bySid.get(sid);
    if (sub !== undefined) {
      this.deliver(sub, event.data, event.id);
      return;
    }
    // An event that overtook the subscription's reply: keep it until the reply comes.
    const queue = this.early.get(sid) ?? [];
    if (queue.length < EARLY_LIMIT) queue.push(event);
    this.early.set(sid, queue);
  }

  private ended(params: unknown): void {
    const sid = String(field(params, 'subscription'));
    const sub = this.bySid.get(sid);
    this.bySid.delete(sid);
    this.early.delete(sid);
    if (sub === undefined) return;
    sub.sid = undefined;
    const error = field(params, 'error');
    // An expired token ends the subscriptions and then closes the socket (4001): they are
    // re-sent on the next connection with a fresh token.
    if (isErrorObject(error) && error.code === UNAUTHORIZED) return;
    this.finish(sub, error === undefined || error === null ? undefined : AlertwireError.fromRpc(error));
  }

  private unsubscribe(sub: Subscription): void {
    if (!sub.active) return;
    sub.active = false;
    this.subscriptions.delete(sub);
    this.stopPolling(sub);
    if (sub.sid !== undefined && this.socket !== null && this.ready) this.stopOnSocket(this.socket, sub.sid);
  }

  private finish(sub: Subscription, error?: AlertwireError): void {
    if (!sub.active) return;
    sub.active = false;
    this.subscriptions.delete(sub);
    this.stopPolling(sub);
    const { handlers } = sub.spec;
    this.guard(() => (error ? handlers.onError?.(error) : handlers.onComplete?.()));
  }

  private deliver(sub: Subscription, data: unknown, id: unknown): void {
    if (!sub.active) return;
    const eventId = typeof id === 'string' && id !== '' ? id : undefined;
    if (eventId !== undefined) {
      if (!sub.seen.add(eventId)) return;
      sub.lastEventId = eventId;
    }
    const { handlers, tracked } = sub.spec;
    if (isReset(data) && handlers.onReset) {
      const reset = data;
      this.guard(() => handlers.onReset?.(reset));
      return;
    }
    const event = tracked && eventId !== undefined ? { id: eventId, data } : data;
    this.guard(() => handlers.onData?.(event));
  }

  // --- the HTTP fallback ---------------------------------------------------------------------

  private enterPolling(): void {
    if (this.polling) return;
    this.polling = true;
    this.setStatus('polling');
    for (const sub of this.subscriptions) this.startPolling(sub);
  }

  private leavePolling(): void {
    this.polling = false;
    for (const sub of this.subscriptions) this.stopPolling(sub);
  }

  private startPolling(sub: Subscription): void {
    const poller = this.pollers[sub.spec.path];
    if (poller === undefined || sub.polling || !sub.active) return;
    sub.polling = true;
    const generation = ++sub.pollGeneration;
    const current = () => sub.active && sub.pollGeneration === generation;
    this.guard(() => sub.spec.handlers.onStarted?.());
    const tick = async (): Promise<void> => {
      let again = false;
      try {
        again = await this.pollOnce(sub, poller, current);
      } catch {
        // Transient (the network is what made us poll): try again on the next tick.
      }
      if (!current()) return;
      const interval =
        poller.kind === 'events' ? (this.options.pollIntervalMs ?? 5000) : poller.intervalMs(sub.spec.input);
      sub.pollTimer = setTimeout(() => void tick(), again ? 0 : interval);
    };
    void tick();
  }

  private stopPolling(sub: Subscription): void {
    sub.polling = false;
    sub.pollGeneration += 1;
    clearTimeout(sub.pollTimer);
    sub.pollTimer = undefined;
  }

  /** One poll; true when another page is waiting. */
  private async pollOnce(sub: Subscription, poller: Poller, current: () => boolean): Promise<boolean> {
    const input = sub.spec.input;
    if (poller.kind === 'snapshot') {
      const value = await this.http(poller.path, poller.input(input));
      if (current()) this.deliver(sub, value, undefined);
      return false;
    }
    const from = sub.lastEventId;
    const page = await this.http(poller.path, poller.input(input, from, PAGE_SIZE));
    if (!current()) return false;
    if (!isEventPage(page)) throw new AlertwireError(`Malformed reply from ${poller.path}`, -32603);
    // Without a position the stream starts now, as a new subscription on the socket would.
    if (from !== undefined) {
      for (const event of page.events) {
        if (!current()) return false;
        if (poller.accept?.(input, event) ?? true) this.deliver(sub, event, field(event, 'id'));
      }
    }
    if (typeof page.lastEventId === 'string' && page.lastEventId !== '') sub.lastEventId = page.lastEventId;
    return from !== undefined && page.events.length >= PAGE_SIZE;
  }

  private async http(path: string, input: unknown): Promise<unknown> {
    if (this.fetchImpl === undefined) throw new AlertwireError('No fetch implementation: pass one as the `fetch` option');
    const token = await this.token();
    return postJsonRpc(this.fetchImpl, this.httpUrl, this.nextId++, path, input, token, this.options.requestTimeoutMs ?? 15000);
  }

  // --- helpers -------------------------------------------------------------------------------

  private async token(): Promise<string | undefined> {
    const source = this.options.token;
    const value = typeof source === 'function' ? await source() : source;
    return value ?? undefined;
  }

  private setStatus(status: ConnectionStatus): void {
    if (this.status === status) return;
    this.status = status;
    for (const listener of [...this.listeners]) this.guard(() => listener(status));
  }

  private report(error: AlertwireError): void {
    this.guard(() => this.options.onError?.(error));
  }

  /** Run a user callback; its exception must not break the connection's own bookkeeping. */
  private guard(callback: () => void): void {
    try {
      callback();
    } catch (error) {
      setTimeout(() => {
        throw error;
      }, 0);
    }
  }
}
