import { AlertwireError } from './errors.js';
import type { FetchLike } from './types.js';

/** One JSON-RPC 2.0 call over `POST {url}` (CONTRACT 3a); resolves with `result`. */
export async function postJsonRpc(
  fetchImpl: FetchLike,
  url: string,
  id: number,
  method: string,
  params: unknown,
  token: string | undefined,
  timeoutMs: number,
): Promise<unknown> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const request: Record<string, unknown> = { jsonrpc: '2.0', id, method };
  if (params !== undefined) request.params = params;
  const controller = typeof AbortController === 'undefined' ? undefined : new AbortController();
  const timer = setTimeout(() => controller?.abort(), timeoutMs);
  let status: number;
  let text: string;
  try {
    const response = await fetchImpl(url, {
      method: 'POST',
      headers,
      body: JSON.stringify(request),
      ...(controller ? { signal: controller.signal } : {}),
    });
    status = response.status;
    text = await response.text();
  } catch (cause) {
    throw new AlertwireError(`HTTP request to ${method} failed`, 0, undefined, { cause });
  } finally {
    clearTimeout(timer);
  }
  let reply: unknown;
  try {
    reply = JSON.parse(text);
  } catch {
    throw new AlertwireError(`HTTP ${status} from ${method} without a JSON-RPC body`, 0);
  }
  if (typeof reply !== 'object' || reply === null) {
    throw new AlertwireError(`Malformed JSON-RPC reply from ${method}`, 0);
  }
  const body = reply as { result?: unknown; error?: unknown };
  if ('error' in body && body.error !== undefined) throw AlertwireError.fromRpc(body.error);
  if (!('result' in body)) throw new AlertwireError(`Malformed JSON-RPC reply from ${method}`, 0);
  return body.result;
}

/** `http(s)://` <-> `ws(s)://`, keeping host, path and query. */
export function swapScheme(url: string, to: 'ws' | 'http'): string {
  const match = /^(https?|wss?):/i.exec(url);
  if (!match) return url;
  const current = match[1]!.toLowerCase();
  const secure = current === 'https' || current === 'wss';
  const scheme = to === 'ws' ? (secure ? 'wss' : 'ws') : secure ? 'https' : 'http';
  return scheme + url.slice(current.length);
}
