export { createAlertwireClient } from './client.js';
export type {
  AlertwireClient,
  ConnectionControls,
  DecoratedProcedure,
  DecoratedTree,
  SubscriptionEvent,
  SubscriptionReset,
} from './client.js';
export { backoffDelay, type BackoffOptions } from './backoff.js';
export { AlertwireError, type RpcErrorData, type RpcErrorObject } from './errors.js';
export {
  alertEventsPoller,
  defaultPollers,
  metricsPoller,
  type EventPage,
  type EventsPoller,
  type Poller,
  type SnapshotPoller,
} from './fallback.js';
export type {
  AlertwireClientOptions,
  ConnectionStatus,
  FetchLike,
  SubscriptionHandlers,
  TokenSource,
  Unsubscribable,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
export { procedures, subscriptions } from './generated/procedures.js';
export type { ProcedureKind, ProcedurePath, ProcedureTree } from './generated/procedures.js';
export type * from './generated/schemas.js';
