import type {
  Alert,
  AlertEvent,
  AlertwireClient,
  AlertwireError,
  Unsubscribable,
} from '../../clients/typescript/src/index.js';
import { AlertBoard, type Change } from './board.js';

const PAGE_LIMIT = 500;

export interface FeedListener {
  /** The board was (re)loaded from a snapshot: draw it whole, no cues. */
  onLoaded(board: AlertBoard): void;
  /** A live event (or the reply to our own action) changed the board. */
  onChange(board: AlertBoard, alert: Alert, change: Change): void;
  /** Every event of the stream as it comes (notes and history on the cards use it). */
  onEvent?(event: AlertEvent): void;
  onError(error: AlertwireError | Error): void;
}

/**
 * A hospital's open alerts: a snapshot (`listAlerts`, active and acknowledged) and then the
 * stream from exactly where the snapshot stands (`subscribeToAlerts` with its `lastEventId`).
 * The client re-sends the subscription with the last event id after a drop and drops events
 * it has delivered already; the board's versions make any overlap harmless. After
 * `stream.reset` (the history since our position is gone) the snapshot is loaded again.
 */
export class AlertFeed {
  readonly board = new AlertBoard();
  private sub: Unsubscribable | undefined;
  private generation = 0;

  constructor(
    private readonly client: AlertwireClient,
    private readonly hospitalId: string,
    private readonly listener: FeedListener,
  ) {}

  start(): void {
    void this.reload();
  }

  stop(): void {
    this.generation += 1;
    this.sub?.unsubscribe();
    this.sub = undefined;
  }

  /** An alert as a mutation returned it: shown at once, even while the stream is polled. */
  merge(alert: Alert): void {
    const change = this.board.apply(alert);
    if (change !== 'ignored') this.listener.onChange(this.board, alert, change);
  }

  private async reload(): Promise<void> {
    // The old stream stops first: nothing it delivers can land on top of the new snapshot.
    this.stop();
    const generation = this.generation;
    let snapshot: { items: Alert[]; lastEventId: string };
    try {
      snapshot = await this.snapshot();
    } catch (error) {
      if (generation === this.generation) this.listener.onError(error as Error);
      return;
    }
    if (generation !== this.generation) return;
    this.board.load(snapshot.items);
    this.listener.onLoaded(this.board);
    this.sub = this.client.healthcare.subscribeToAlerts.subscribe(
      { hospitalId: this.hospitalId, lastEventId: snapshot.lastEventId },
      {
        onData: ({ data }) => {
          if (generation !== this.generation || data.type === 'stream.reset') return;
          this.merge(data.alert);
          this.listener.onEvent?.(data);
        },
        onReset: () => {
          if (generation === this.generation) void this.reload();
        },
        onError: (error) => {
          if (generation === this.generation) this.listener.onError(error);
        },
      },
    );
  }

  /**
   * Active and acknowledged alerts, every page of each. Each query reports the position it
   * read from; the stream starts from the older of the two, so that no event is missed, and
   * the events both snapshots already hold are ignored by version.
   */
  private async snapshot(): Promise<{ items: Alert[]; lastEventId: string }> {
    const [active, acknowledged] = await Promise.all([
      this.pages('active'),
      this.pages('acknowledged'),
    ]);
    // Event ids are fixed-width digit strings (CONTRACT 4): as strings they sort as positions.
    const lastEventId =
      active.lastEventId < acknowledged.lastEventId ? active.lastEventId : acknowledged.lastEventId;
    return { items: [...active.items, ...acknowledged.items], lastEventId };
  }

  private async pages(status: 'active' | 'acknowledged'): Promise<{ items: Alert[]; lastEventId: string }> {
    const items: Alert[] = [];
    let cursor: string | null = null;
    let first: string | undefined;
    do {
      const page = await this.client.healthcare.listAlerts.query({
        hospitalId: this.hospitalId,
        status,
        limit: PAGE_LIMIT,
        ...(cursor === null ? {} : { cursor }),
      });
      first ??= page.lastEventId;
      items.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== null);
    return { items, lastEventId: first };
  }
}
