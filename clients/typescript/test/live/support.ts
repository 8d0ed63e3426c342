// Shared by the live tests, which pytest runs against a real server (tests/integration/test_node_live.py).
import { createServer, type Server, type Socket } from 'node:net';
import { connect } from 'node:net';

export interface LiveEnv {
  /** http://127.0.0.1:<port>/api/trpc of the real server. */
  url: string;
  port: number;
  /** Tokens minted by the test: a nurse of h1, and an admin of h1. */
  nurseToken: string;
  adminToken: string;
}

export function liveEnv(): LiveEnv | undefined {
  const url = process.env.ALERTWIRE_URL;
  const nurseToken = process.env.ALERTWIRE_NURSE_TOKEN;
  const adminToken = process.env.ALERTWIRE_ADMIN_TOKEN;
  if (!url || !nurseToken || !adminToken) return undefined;
  return { url, port: Number(new URL(url).port), nurseToken, adminToken };
}

export const SKIP = liveEnv() === undefined ? 'needs a running server (run through pytest)' : false;

/**
 * A TCP proxy in front of the server that the test controls: `cut()` drops every connection
 * and refuses new ones (a network outage), `refuseUpgrades()` answers WebSocket upgrades with
 * 403 and passes plain HTTP (a proxy or firewall without WebSocket support), `restore()`.
 */
export class TcpProxy {
  private mode: 'pass' | 'cut' | 'refuse-upgrades' = 'pass';
  private readonly sockets = new Set<Socket>();
  private server!: Server;
  upgradesRefused = 0;

  static async start(targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy();
    proxy.server = createServer((client) => proxy.accept(client, targetPort));
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  }

  url(path = '/api/trpc'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  cut(): void {
    this.mode = 'cut';
    this.dropAll();
  }

  refuseUpgrades(): void {
    this.mode = 'refuse-upgrades';
    this.dropAll();
  }

  restore(): void {
    this.mode = 'pass';
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private dropAll(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  private accept(client: Socket, targetPort: number): void {
    if (this.mode === 'cut') {
      client.destroy();
      return;
    }
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    client.on('error', () => client.destroy());
    client.once('data', (first: Buffer) => {
      if (this.mode === 'refuse-upgrades' && /\r\nupgrade:\s*websocket/i.test(first.toString('latin1'))) {
        this.upgradesRefused += 1;
        client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      const upstream = connect(targetPort, '127.0.0.1');
      this.sockets.add(upstream);
      upstream.on('close', () => {
        this.sockets.delete(upstream);
        client.destroy();
      });
      upstream.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
      upstream.write(first);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }
}

export async function until(predicate: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - started;
}

/** One JSON-RPC call over HTTP, straight to the server (not through the proxy). */
export async function rpc(env: LiveEnv, method: string, params: unknown, token = env.adminToken): Promise<unknown> {
  const response = await fetch(env.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body = (await response.json()) as { result?: unknown; error?: { code: number; message: string } };
  if (body.error) throw Object.assign(new Error(`${method}: ${body.error.message}`), { code: body.error.code });
  return body.result;
}
