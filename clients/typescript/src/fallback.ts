/**
 * How a subscription is served over plain HTTP while the WebSocket cannot be opened.
 *
 * `events`: call a query that returns `{ events, lastEventId }` from the last event id, every
 * `pollIntervalMs` (again at once when a page came back full). `snapshot`: call a query that
 * returns the current value, every `intervalMs(input)`.
 */
export type Poller = EventsPoller | SnapshotPoller;

export interface EventsPoller {
  kind: 'events';
  /** The query to call, e.g. `healthcare.getAlertEvents`. */
  path: string;
  /** Its input, given the subscription's input and the position to continue from. */
  input(subscriptionInput: unknown, lastEventId: string | undefined, limit: number): unknown;
  /** Whether an event belongs to this subscription (e.g. a single alert's). Default: all. */
  accept?(subscriptionInput: unknown, event: unknown): boolean;
}

export interface SnapshotPoller {
  kind: 'snapshot';
  path: string;
  input(subscriptionInput: unknown): unknown;
  intervalMs(subscriptionInput: unknown): number;
}

export interface EventPage {
  events: unknown[];
  lastEventId: string | null;
}

function field(input: unknown, name: string): unknown {
  return typeof input === 'object' && input !== null ? (input as Record<string, unknown>)[name] : undefined;
}

export const alertEventsPoller: EventsPoller = {
  kind: 'events',
  path: 'healthcare.getAlertEvents',
  input: (sub, lastEventId, limit) => ({
    hospitalId: field(sub, 'hospitalId'),
    ...(lastEventId === undefined ? {} : { lastEventId }),
    limit,
  }),
  accept: (sub, event) => {
    const alertId = field(sub, 'alertId');
    return alertId === undefined || alertId === null || field(event, 'type') === 'stream.reset'
      || field(event, 'alertId') === alertId;
  },
};

export const metricsPoller: SnapshotPoller = {
  kind: 'snapshot',
  path: 'healthcare.getMetrics',
  input: (sub) => ({ hospitalId: field(sub, 'hospitalId') }),
  intervalMs: (sub) => {
    const interval = field(sub, 'intervalMs');
    return typeof interval === 'number' && interval > 0 ? interval : 5000;
  },
};

export const defaultPollers: Record<string, Poller> = {
  'healthcare.subscribeToAlerts': alertEventsPoller,
  'healthcare.subscribeToMetrics': metricsPoller,
};

export function isEventPage(value: unknown): value is EventPage {
  const events = field(value, 'events');
  const last = field(value, 'lastEventId');
  return Array.isArray(events) && (last === null || typeof last === 'string' || last === undefined);
}
