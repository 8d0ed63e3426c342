// A small JSON-RPC 2.0 server with the shape of Alertwire's alert stream, for unit tests:
// auth, a query, a tracked subscription with replay, the polling queries, and knobs to drop
// sockets, refuse upgrades and end subscriptions.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';

interface StoredEvent {
  id: string;
  hospitalId: string;
  data: Record<string, unknown>;
}

interface Request {
  id?: number | string | null;
  method: string;
  params?: Record<string, unknown>;
}

interface LiveSubscription {
  socket: WebSocket;
  sid: string;
  hospitalId: string;
}

export class MockServer {
  readonly events: StoredEvent[] = [];
  /** Every JSON-RPC request received, WebSocket and HTTP, in order. */
  readonly received: Array<{ via: 'ws' | 'http'; request: Request }> = [];
  refuseUpgrades = false;
  /** Events older than this index are no longer replayable (stream.reset). */
  retainedFrom = 0;
  private readonly http: Server;
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly live = new Map<string, LiveSubscription>();
  private readonly sockets = new Set<WebSocket>();
  private nextSid = 1;

  private constructor() {
    this.http = createServer((req, res) => void this.onHttp(req, res));
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (this.refuseUpgrades) {
        socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws));
    });
  }

  static async start(): Promise<MockServer> {
    const server = new MockServer();
    await new Promise<void>((resolve) => server.http.listen(0, '127.0.0.1', resolve));
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.http.address() as AddressInfo).port}/api/trpc`;
  }

  get openSockets(): number {
    return this.sockets.size;
  }

  methods(via?: 'ws' | 'http'): string[] {
    return this.received.filter((r) => via === undefined || r.via === via).map((r) => r.request.method);
  }

  publish(hospitalId = 'h1', extra: Record<string, unknown> = {}): string {
    const id = String(this.events.length + 1).padStart(6, '0');
    const event = { id, hospitalId, data: { id, type: 'alert.created', hospitalId, alertId: `a${id}`, ...extra } };
    this.events.push(event);
    for (const sub of this.live.values()) {
      if (sub.hospitalId === hospitalId) this.notify(sub, event);
    }
    return id;
  }

  /** Cut every socket without a close handshake. */
  dropAll(): void {
    for (const socket of this.sockets) socket.terminate();
  }

  /** The server ends every live subscription, optionally with an error. */
  endAll(error?: Record<string, unknown>): void {
    for (const sub of this.live.values()) {
      sub.socket.send(JSON.stringify({ jsonrpc: '2.0', method: 'subscription.end', params: { subscription: sub.sid, ...(error ? { error } : {}) } }));
    }
    this.live.clear();
  }

  broadcast(frame: unknown): void {
    for (const socket of this.sockets) socket.send(JSON.stringify(frame));
  }

  async stop(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private onSocket(socket: WebSocket): void {
    this.sockets.add(socket);
    socket.on('close', () => {
      this.sockets.delete(socket);
      for (const [sid, sub] of this.live) if (sub.socket === socket) this.live.delete(sid);
    });
    socket.on('message', (raw) => {
      const text = String(raw);
      if (text === 'PING') {
        socket.send('PONG');
        return;
      }
      const request = JSON.parse(text) as Request;
      this.received.push({ via: 'ws', request });
      const reply = this.handle(request, socket);
      if (request.id !== undefined) socket.send(JSON.stringify({ jsonrpc: '2.0', id: request.id, ...reply.body }));
      reply.after?.();
    });
  }

  private async onHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const request = JSON.parse(Buffer.concat(chunks).toString()) as Request;
    this.received.push({ via: 'http', request });
    const reply = this.handle(request, undefined);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id: request.id, ...reply.body }));
  }

  private handle(request: Request, socket: WebSocket | undefined): { body: Record<string, unknown>; after?: () => void } {
    const params = request.params ?? {};
    switch (request.method) {
      case 'auth.authenticate':
        if (params.token === 'bad') return { body: { error: rpcError(-32001, 'UNAUTHORIZED', 401, 'Invalid token') } };
        return { body: { result: { sub: 'u1', role: 'nurse', hospitals: ['h1'], expiresAt: '2100-01-01T00:00:00Z' } } };
      case 'system.ping':
        return { body: { result: 'pong' } };
      case 'healthcare.getAlertEvents':
        return { body: { result: this.page(String(params.hospitalId), params.lastEventId as string | undefined, Number(params.limit ?? 100)) } };
      case 'healthcare.getMetrics':
        return { body: { result: { hospitalId: params.hospitalId, activeAlerts: this.events.length } } };
      case 'subscription.stop': {
        const existed = this.live.delete(String(params.subscription));
        return { body: { result: existed } };
      }
      case 'healthcare.subscribeToAlerts': {
        if (socket === undefined) return { body: { error: rpcError(-32601, 'NOT_FOUND', 404, 'Use the WebSocket') } };
        if (params.hospitalId === 'forbidden') return { body: { error: rpcError(-32003, 'FORBIDDEN', 403, 'Forbidden') } };
        const sub = { socket, sid: `s${this.nextSid++}`, hospitalId: String(params.hospitalId) };
        const after = params.lastEventId as string | undefined;
        return {
          body: { result: { subscription: sub.sid } },
          after: () => {
            if (after !== undefined) this.replay(sub, after);
            this.live.set(sub.sid, sub);
          },
        };
      }
      default:
        return { body: { error: rpcError(-32601, 'NOT_FOUND', 404, `No procedure ${request.method}`) } };
    }
  }

  private replay(sub: LiveSubscription, after: string): void {
    const index = this.events.findIndex((e) => e.id === after);
    if (index < this.retainedFrom - 1) {
      const newest = this.events.at(-1)?.id ?? '0';
      this.notify(sub, { id: newest, hospitalId: sub.hospitalId, data: { id: newest, type: 'stream.reset', hospitalId: sub.hospitalId, reason: 'gone' } });
      return;
    }
    for (const event of this.events.slice(index + 1)) {
      if (event.hospitalId === sub.hospitalId) this.notify(sub, event);
    }
  }

  private page(hospitalId: string, after: string | undefined, limit: number): { events: unknown[]; lastEventId: string | null } {
    const mine = this.events.filter((e) => e.hospitalId === hospitalId);
    if (after === undefined) return { events: [], lastEventId: mine.at(-1)?.id ?? null };
    const events = mine.filter((e) => e.id > after).slice(0, limit);
    return { events: events.map((e) => e.data), lastEventId: events.at(-1)?.id ?? after };
  }

  private notify(sub: LiveSubscription, event: StoredEvent): void {
    sub.socket.send(JSON.stringify({ jsonrpc: '2.0', method: 'subscription', params: { subscription: sub.sid, id: event.id, data: event.data } }));
  }
}

function rpcError(code: number, name: string, httpStatus: number, message: string): Record<string, unknown> {
  return { code, message, data: { code: name, httpStatus } };
}

/** Resolve when `predicate` holds, polling every 10 ms; reject after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
