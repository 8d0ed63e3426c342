import type { Alert } from '../../clients/typescript/src/index.js';

/** Most urgent first; within a priority, newest first. */
const URGENCY: Record<Alert['priority'], number> = { critical: 0, high: 1, medium: 2, low: 3 };

export function compareAlerts(a: Alert, b: Alert): number {
  const byPriority = URGENCY[a.priority] - URGENCY[b.priority];
  if (byPriority !== 0) return byPriority;
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
  return a.id < b.id ? 1 : -1;
}

/** What applying one event did, for the cues (new alert, new critical alert). */
export type Change = 'added' | 'changed' | 'removed' | 'ignored';

/**
 * The open alerts (active and acknowledged) of one hospital, merged from a snapshot and the
 * event stream that continues it.
 *
 * Every alert carries a `version` that grows with each change, and the board remembers the
 * newest version it has seen of every alert (resolved ones included). An event replayed after
 * a reconnect, or one the snapshot already reflects, is older or equal and is ignored, so the
 * board never shows an alert twice nor goes back to an older state, whatever the order in
 * which a snapshot, the stream and the replies to our own actions overlap. (One number per
 * alert seen since the last load: a shift's worth is small.)
 */
export class AlertBoard {
  private readonly open = new Map<string, Alert>();
  private readonly versions = new Map<string, number>();

  /** Replace everything with a snapshot (the first load, or a reload after `stream.reset`). */
  load(items: Alert[]): void {
    this.open.clear();
    this.versions.clear();
    for (const alert of items) this.put(alert);
  }

  /** An alert as an event or a mutation's reply carries it. */
  apply(alert: Alert): Change {
    const seen = this.versions.get(alert.id);
    if (seen !== undefined && seen >= alert.version) return 'ignored';
    const had = this.open.has(alert.id);
    this.put(alert);
    if (alert.status === 'resolved') return had ? 'removed' : 'ignored';
    return had ? 'changed' : 'added';
  }

  get(id: string): Alert | undefined {
    return this.open.get(id);
  }

  sorted(): Alert[] {
    return [...this.open.values()].sort(compareAlerts);
  }

  private put(alert: Alert): void {
    this.versions.set(alert.id, alert.version);
    if (alert.status === 'resolved') this.open.delete(alert.id);
    else this.open.set(alert.id, alert);
  }
}
