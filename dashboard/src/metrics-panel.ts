import type { AlertwireClient, Metrics, Unsubscribable } from '../../clients/typescript/src/index.js';
import { setText } from './dom.js';

const INTERVAL_MS = 5000;

/** The hospital's figures, live (`subscribeToMetrics`: at once, on every change, every 5 s). */
export class MetricsPanel {
  private sub: Unsubscribable | undefined;

  constructor(
    private readonly fields: Record<'active' | 'critical' | 'staff' | 'rate' | 'response', HTMLElement>,
    /** Told the server's clock (`generatedAt`) with each snapshot. */
    private readonly onServerTime: (serverTimeMs: number) => void,
  ) {}

  start(client: AlertwireClient, hospitalId: string): void {
    this.stop();
    this.sub = client.healthcare.subscribeToMetrics.subscribe(
      { hospitalId, intervalMs: INTERVAL_MS },
      { onData: (metrics) => this.draw(metrics) },
    );
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
    for (const field of Object.values(this.fields)) setText(field, '–');
  }

  private draw(m: Metrics): void {
    const serverTime = Date.parse(m.generatedAt);
    if (!Number.isNaN(serverTime)) this.onServerTime(serverTime);
    setText(this.fields.active, String(m.activeAlerts));
    setText(this.fields.critical, String(m.criticalAlerts));
    setText(this.fields.staff, String(m.staffOnline));
    setText(this.fields.rate, m.responseRate === null ? '–' : `${Math.round(m.responseRate * 100)} %`);
    setText(this.fields.response, m.averageResponseTimeSeconds === null ? '–' : duration(m.averageResponseTimeSeconds));
  }
}

function duration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  return `${Math.round(seconds / 60)} min`;
}
