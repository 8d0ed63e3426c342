import type { AlertwireClient, Reading, Unsubscribable } from '../../clients/typescript/src/index.js';
import { el, setText } from './dom.js';
import { elapsed } from './elapsed.js';
import type { Panel } from './panels.js';
import { sparkline, type Point } from './sparkline.js';

type Kind = Reading['kind'];

/** Display order and names; a wall screen reads "Heart rate", not `heart_rate`. */
const KINDS: ReadonlyArray<[Kind, string]> = [
  ['heart_rate', 'Heart rate'],
  ['spo2', 'SpO₂'],
  ['systolic_bp', 'Systolic BP'],
  ['diastolic_bp', 'Diastolic BP'],
  ['respiratory_rate', 'Respiratory rate'],
  ['temperature', 'Temperature'],
];
const NAMES = new Map(KINDS);
/** Points kept per kind for the chart (a monitor reporting every few seconds: a few minutes). */
const KEEP = 60;
const MAX_RATE_HZ = 2;

/**
 * A patient's vitals as they arrive: the latest value of each kind (`vitals.latest`, then
 * `vitals.subscribe` for that patient) and a small chart of the recent values of each kind
 * (seeded from `vitals.history`). The patient is chosen from the patients the hospital's
 * devices are assigned to (`devices.list`, kept fresh by `devices.subscribeToStatus`) or typed
 * in. The identifier stays on the page: it goes into no URL, storage or log.
 */
export const vitalsPanel: Panel = {
  id: 'vitals-panel',
  requires: ['vitals.latest', 'vitals.history', 'vitals.subscribe', 'devices.list', 'devices.subscribeToStatus'],
  mount(section, { client, hospitalId }) {
    const view = new VitalsView(section, client, hospitalId);
    return () => view.stop();
  },
};

const FOLLOW_EVENT = 'alertwire:follow-patient';

/** Whether the vitals panel is on the page (its procedures exist and it is mounted). */
export function vitalsShown(): boolean {
  return document.getElementById(vitalsPanel.id)?.hidden === false;
}

/** Show this patient's vitals in the panel (from an alert's card) and take the focus there. */
export function followPatient(patientId: string): void {
  document.dispatchEvent(new CustomEvent<string>(FOLLOW_EVENT, { detail: patientId }));
}

interface Tile {
  root: HTMLElement;
  value: HTMLElement;
  time: HTMLTimeElement;
  chart: HTMLElement;
  points: Array<Point & { reading: Reading }>;
}

class VitalsView {
  private readonly input: HTMLInputElement;
  private readonly options: HTMLDataListElement;
  private readonly note: HTMLElement;
  private readonly grid: HTMLElement;
  private readonly tiles = new Map<Kind, Tile>();
  private readonly patients = new Set<string>();
  private readonly devicesSub: Unsubscribable;
  private readonly ticker: ReturnType<typeof setInterval>;
  private vitalsSub: Unsubscribable | undefined;
  private readonly onFollow = (event: Event): void => {
    const patientId = (event as CustomEvent<unknown>).detail;
    if (typeof patientId !== 'string') return;
    this.input.value = patientId;
    this.follow(patientId);
    this.input.focus();
    this.input.scrollIntoView({ block: 'nearest' });
  };
  private patientId: string | undefined;
  private generation = 0;

  constructor(
    section: HTMLElement,
    private readonly client: AlertwireClient,
    private readonly hospitalId: string,
  ) {
    const title = el('h2', { id: 'vitals-title' }, 'Patient vitals');
    this.input = el('input', {
      id: 'patient',
      list: 'patient-options',
      autocomplete: 'off',
      spellcheck: 'false',
      maxlength: '128',
      required: true,
    });
    this.options = el('datalist', { id: 'patient-options' });
    const form = el(
      'form',
      { class: 'patient-form' },
      el('label', { for: 'patient' }, 'Patient'),
      this.input,
      this.options,
      el('button', { type: 'submit' }, 'Show vitals'),
    );
    this.note = el('p', { class: 'panel-note' }, 'Choose a patient to follow their vitals.');
    this.grid = el('div', { class: 'vitals' });
    section.setAttribute('aria-labelledby', 'vitals-title');
    section.replaceChildren(title, form, this.note, this.grid);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const patientId = this.input.value.trim();
      if (patientId !== '') this.follow(patientId);
    });
    void this.loadPatients();
    this.devicesSub = client.devices.subscribeToStatus.subscribe(
      { hospitalId },
      {
        onData: (device) => {
          if (device.patientId !== null) this.addPatients([device.patientId]);
        },
      },
    );
    this.ticker = setInterval(() => this.tick(), 5000);
    document.addEventListener(FOLLOW_EVENT, this.onFollow);
  }

  stop(): void {
    this.generation += 1;
    document.removeEventListener(FOLLOW_EVENT, this.onFollow);
    clearInterval(this.ticker);
    this.devicesSub.unsubscribe();
    this.vitalsSub?.unsubscribe();
    this.vitalsSub = undefined;
  }

  private async loadPatients(): Promise<void> {
    try {
      const devices = await this.client.devices.list.query({ hospitalId: this.hospitalId });
      this.addPatients(devices.flatMap((d) => (d.patientId === null ? [] : [d.patientId])));
    } catch {
      // The list only helps to choose; a patient can still be typed in.
    }
  }

  private addPatients(ids: string[]): void {
    const before = this.patients.size;
    for (const id of ids) this.patients.add(id);
    if (this.patients.size === before) return;
    const sorted = [...this.patients].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    this.options.replaceChildren(...sorted.map((id) => el('option', { value: id })));
  }

  private follow(patientId: string): void {
    this.vitalsSub?.unsubscribe();
    const generation = ++this.generation;
    const current = (): boolean => generation === this.generation;
    this.patientId = patientId;
    this.tiles.clear();
    this.grid.replaceChildren();
    setText(this.note, `Loading the vitals of ${patientId}…`);
    const input = { hospitalId: this.hospitalId, patientId };
    void this.client.vitals.latest
      .query(input)
      .then((latest) => {
        if (!current()) return;
        this.take(latest.readings);
        for (const reading of latest.readings) void this.backfill(reading.kind, current);
        this.describe();
      })
      .catch((error: Error) => current() && setText(this.note, `Vitals could not be loaded: ${error.message}`));
    this.vitalsSub = this.client.vitals.subscribe.subscribe(
      { ...input, maxRateHz: MAX_RATE_HZ },
      {
        onData: (update) => {
          if (!current() || update.patientId !== patientId) return;
          this.take(update.readings);
          this.describe();
        },
        onError: (error) => current() && setText(this.note, `Live vitals stopped: ${error.message}`),
      },
    );
  }

  /** Recent values of one kind for its chart (the latest came with `vitals.latest`). */
  private async backfill(kind: Kind, current: () => boolean): Promise<void> {
    if (this.patientId === undefined) return;
    try {
      const page = await this.client.vitals.history.query({
        hospitalId: this.hospitalId,
        patientId: this.patientId,
        kind,
        limit: KEEP,
      });
      if (current()) this.take(page.items);
    } catch {
      // The chart starts from what arrives live instead.
    }
  }

  private take(readings: readonly Reading[]): void {
    const touched = new Set<Kind>();
    for (const reading of readings) {
      const time = Date.parse(reading.measuredAt);
      if (Number.isNaN(time)) continue;
      const tile = this.tiles.get(reading.kind) ?? this.createTile(reading.kind);
      // Kept oldest first, one point per measurement time: the snapshot, history and live
      // updates overlap, and a value seen twice is drawn once.
      const at = tile.points.findIndex((p) => p.time >= time);
      if (at >= 0 && tile.points[at]!.time === time) continue;
      tile.points.splice(at < 0 ? tile.points.length : at, 0, { time, value: reading.value, reading });
      if (tile.points.length > KEEP) tile.points.splice(0, tile.points.length - KEEP);
      touched.add(reading.kind);
    }
    for (const kind of touched) this.drawTile(kind);
  }

  private createTile(kind: Kind): Tile {
    const name = NAMES.get(kind) ?? kind;
    const value = el('p', { class: 'vital-value' });
    const time = el('time', { class: 'vital-time' });
    const chart = el('div', { class: 'vital-chart' });
    const root = el('div', { class: `vital kind-${kind}`, role: 'group', 'aria-label': name }, el('h3', {}, name), value, time, chart);
    const tile: Tile = { root, value, time, chart, points: [] };
    this.tiles.set(kind, tile);
    // Tiles keep the fixed order of KINDS, whatever order the readings came in.
    const order = KINDS.map(([k]) => k);
    const next = [...this.tiles.entries()]
      .filter(([k]) => order.indexOf(k) > order.indexOf(kind))
      .sort(([a], [b]) => order.indexOf(a) - order.indexOf(b))[0];
    if (next === undefined) this.grid.append(root);
    else next[1].root.before(root);
    return tile;
  }

  private drawTile(kind: Kind): void {
    const tile = this.tiles.get(kind);
    const latest = tile?.points[tile.points.length - 1];
    if (tile === undefined || latest === undefined) return;
    const { value, unit, measuredAt } = latest.reading;
    setText(tile.value, `${format(value)} ${unit}`);
    tile.time.dateTime = measuredAt;
    setText(tile.time, elapsed(measuredAt, Date.now()));
    const values = tile.points.map((p) => p.value);
    const label =
      `${NAMES.get(kind) ?? kind}, last ${values.length} readings, ` +
      `from ${format(Math.min(...values))} to ${format(Math.max(...values))} ${unit}`;
    tile.chart.replaceChildren(sparkline(tile.points, label));
  }

  private describe(): void {
    if (this.patientId === undefined) return;
    setText(
      this.note,
      this.tiles.size === 0
        ? `No readings yet for ${this.patientId}: they appear here as they arrive.`
        : `Vitals of ${this.patientId}, live.`,
    );
  }

  private tick(): void {
    const now = Date.now();
    for (const tile of this.tiles.values()) {
      if (tile.time.dateTime !== '') setText(tile.time, elapsed(tile.time.dateTime, now));
    }
  }
}

function format(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}
