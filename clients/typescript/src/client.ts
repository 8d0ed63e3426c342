import { Connection } from './connection.js';
import { AlertwireError } from './errors.js';
import { procedures, subscriptions, type ProcedureKind, type ProcedureTree } from './generated/procedures.js';
import type { AlertwireClientOptions, ConnectionStatus, SubscriptionHandlers, Unsubscribable } from './types.js';

/** The shape of one entry of the generated `ProcedureTree`. */
interface ProcedureEntry {
  kind: ProcedureKind;
  input: unknown;
  output: unknown;
  tracked: boolean;
}

/** A procedure without input takes no argument; one whose input is all optional may omit it. */
type InputArgs<TInput> = [TInput] extends [void]
  ? [input?: undefined]
  : undefined extends TInput
    ? [input?: TInput]
    : [input: TInput];

/** What `onData` receives: `{ id, data }` for tracked streams, the event itself otherwise. */
export type SubscriptionEvent<T extends ProcedureEntry> = T['tracked'] extends true
  ? { id: string; data: T['output'] }
  : T['output'];

/**
 * The `stream.reset` member of a stream's event type, if it has one (what `onReset` receives).
 * Not called `StreamReset`: that name is the schema type, exported from the package root.
 */
export type SubscriptionReset<T extends ProcedureEntry> = Extract<T['output'], { type: 'stream.reset' }>;

export type DecoratedProcedure<T extends ProcedureEntry> = T['kind'] extends 'query'
  ? { query(...args: InputArgs<T['input']>): Promise<T['output']> }
  : T['kind'] extends 'mutation'
    ? { mutate(...args: InputArgs<T['input']>): Promise<T['output']> }
    : {
        subscribe(
          input: T['input'],
          handlers: SubscriptionHandlers<SubscriptionEvent<T>, SubscriptionReset<T>>,
        ): Unsubscribable;
      };

export type DecoratedTree<T> = {
  [K in keyof T]: T[K] extends ProcedureEntry ? DecoratedProcedure<T[K]> : DecoratedTree<T[K]>;
};

export interface ConnectionControls {
  /** `connecting`, `open`, `polling` (HTTP fallback) or `closed`. */
  readonly status: ConnectionStatus;
  /** Call `listener` on every status change; returns a function that stops it. */
  onStatusChange(listener: (status: ConnectionStatus) => void): () => void;
  /** Close the socket, stop polling and end every subscription (no callbacks). */
  close(): void;
}

export type AlertwireClient = DecoratedTree<ProcedureTree> & ConnectionControls;

const CONTROL_NAMES = new Set(['status', 'onStatusChange', 'close']);

interface SubscriptionInfo {
  tracked: boolean;
  resumable: boolean;
}

/**
 * A client for every procedure of the generated router, over the JSON-RPC 2.0 dialect:
 * `client.healthcare.getMetrics.query({ hospitalId })`, `.mutate(input)`,
 * `.subscribe(input, { onData, onReset, onError })`.
 */
export function createAlertwireClient(options: AlertwireClientOptions): AlertwireClient {
  const connection = new Connection(options);
  const root: Record<string, unknown> = {};
  const info = subscriptions as Record<string, SubscriptionInfo | undefined>;
  for (const [path, kind] of Object.entries(procedures) as Array<[string, ProcedureKind]>) {
    const segments = path.split('.');
    const leaf = segments.pop()!;
    if (CONTROL_NAMES.has(segments[0] ?? leaf)) {
      throw new AlertwireError(`The procedure path ${path} clashes with the client's own members`);
    }
    let node = root;
    for (const segment of segments) {
      node = (node[segment] ??= {}) as Record<string, unknown>;
    }
    node[leaf] = decorate(connection, path, kind, info[path]);
  }
  Object.defineProperty(root, 'status', { get: () => connection.getStatus(), enumerable: true });
  root.onStatusChange = (listener: (status: ConnectionStatus) => void) => connection.onStatusChange(listener);
  root.close = () => connection.close();
  return root as unknown as AlertwireClient;
}

function decorate(
  connection: Connection,
  path: string,
  kind: ProcedureKind,
  info: SubscriptionInfo | undefined,
): Record<string, unknown> {
  switch (kind) {
    case 'query':
      return { query: (input?: unknown) => connection.call(path, input) };
    case 'mutation':
      return { mutate: (input?: unknown) => connection.call(path, input) };
    case 'subscription':
      return {
        subscribe: (input: unknown, handlers: SubscriptionHandlers<unknown, unknown>) =>
          connection.subscribe({
            path,
            input,
            tracked: info?.tracked ?? false,
            resumable: info?.resumable ?? false,
            handlers,
          }),
      };
  }
}
