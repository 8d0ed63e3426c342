import type {
  Alert,
  AlertEvent,
  AlertViewer,
  AlertwireClient,
  AuditEntry,
  Identity,
  Unsubscribable,
} from '../../clients/typescript/src/index.js';
import type { CardExtension } from './alert-list.js';
import { el, setText } from './dom.js';
import { followPatient, vitalsShown } from './vitals-panel.js';

/** Viewers lapse 30 s after the last `presence.viewing`; repeat well within that. */
const LOOK_EVERY_MS = 15_000;
/** Typing lapses after 6 s on the server; say it again at most this often while keys come. */
const TYPING_EVERY_MS = 3_000;
/** Keys within this long count as still typing when the regular look is sent. */
const TYPING_FOR_MS = 5_000;

const EVENT_WORDS: Record<AuditEntry['type'], string> = {
  'alert.created': 'raised',
  'alert.acknowledged': 'acknowledged',
  'alert.escalated': 'escalated',
  'alert.updated': 'updated',
  'alert.resolved': 'resolved',
  'alert.noted': 'note',
};

export interface DetailRights {
  /** May write notes (clinical roles and admins; not service accounts). */
  canNote: boolean;
  /** Says it is looking at an alert (`presence.viewing`; not service accounts). */
  canView: boolean;
}

/**
 * Behind each alert card's "Details" button: who else is looking at the alert, its history
 * (the audit trail, on demand) and, for clinical roles, a note form. The latest note stays on
 * the card as notes arrive (`alert.noted` on the hospital's stream, fed in by `event`).
 *
 * One alert is open at a time: opening one is looking at it. While it is open (and the page is
 * visible) `presence.viewing` is repeated every 15 s, with `typing` while a note is being
 * written, and `presence.subscribeToAlert` shows the others looking at it; closing it says so
 * at once. A service token gets the same view read-only: no note form, no viewing calls.
 *
 * Notes are clinical text: they go only into the page and the `addNote` call's body, never into
 * a URL, storage or the console.
 */
export class AlertDetails implements CardExtension {
  private readonly cards = new Map<string, DetailCard>();
  private opened: DetailCard | undefined;
  private readonly onVisibility = (): void => this.opened?.visibilityChanged();

  constructor(
    readonly client: AlertwireClient,
    readonly me: Identity,
    readonly rights: DetailRights,
    /** The alert as `addNote` returned it, for the board (its version grew). */
    readonly merge: (alert: Alert) => void,
    /** Say something to screen readers (the page's polite live region). */
    readonly announce: (text: string) => void,
  ) {
    document.addEventListener('visibilitychange', this.onVisibility);
  }

  attach(alert: Alert, slot: HTMLElement): () => void {
    const card = new DetailCard(this, alert, slot);
    this.cards.set(alert.id, card);
    return () => {
      if (this.opened === card) this.opened = undefined;
      card.close();
      this.cards.delete(alert.id);
    };
  }

  /** An event of the hospital's stream, or the one our own note made. */
  event(event: AlertEvent): void {
    this.cards.get(event.alertId)?.event(event);
  }

  stop(): void {
    document.removeEventListener('visibilitychange', this.onVisibility);
  }

  /** @internal the card being opened closes the one open before. */
  opening(card: DetailCard): void {
    if (this.opened !== undefined && this.opened !== card) this.opened.close();
    this.opened = card;
  }

  /** @internal */
  closed(card: DetailCard): void {
    if (this.opened === card) this.opened = undefined;
  }
}

class DetailCard {
  private readonly toggle: HTMLButtonElement;
  private readonly panel: HTMLElement;
  private readonly latestNote: HTMLElement;
  private readonly viewers: HTMLElement;
  private readonly historyButton: HTMLButtonElement;
  private readonly history: HTMLOListElement;
  private readonly problem: HTMLElement;
  private readonly textarea: HTMLTextAreaElement | undefined;
  /** The trail as loaded, plus events since; null while not shown. */
  private entries: Map<string, AuditEntry> | null = null;
  private latestNoteId = '';
  private viewersSub: Unsubscribable | undefined;
  private lookTimer: ReturnType<typeof setInterval> | undefined;
  private lastKeyAt = 0;
  private typingSentAt = 0;
  private busy = false;

  private readonly alertId: string;

  constructor(
    private readonly owner: AlertDetails,
    alert: Alert,
    slot: HTMLElement,
  ) {
    const alertId = alert.id;
    this.alertId = alertId;
    const panelId = `alert-${alertId}-details`;
    this.latestNote = el('p', { class: 'latest-note', hidden: true });
    // Described by the alert's title (alert-list.ts names it so): "Details, Fall in room 4".
    this.toggle = el(
      'button',
      {
        type: 'button',
        class: 'details-toggle',
        'aria-expanded': 'false',
        'aria-controls': panelId,
        'aria-describedby': `alert-${alertId}-title`,
      },
      'Details',
    );
    this.viewers = el('p', { class: 'viewers' });
    const historyId = `alert-${alertId}-history`;
    this.historyButton = el('button', { type: 'button', 'aria-expanded': 'false', 'aria-controls': historyId }, 'Show history');
    this.history = el('ol', { id: historyId, class: 'history', hidden: true, 'aria-label': 'History' });
    this.problem = el('p', { class: 'problem', role: 'alert', hidden: true });
    const parts: HTMLElement[] = [this.viewers, this.historyButton];
    const patientId = alert.patientId;
    if (patientId && vitalsShown()) {
      // The alert's patient in the vitals panel (the alert's own patient: fixed at raising).
      const vitals = el('button', { type: 'button', 'aria-describedby': `alert-${alertId}-title` }, 'Patient vitals');
      vitals.addEventListener('click', () => followPatient(patientId));
      parts.push(vitals);
    }
    parts.push(this.history);
    if (owner.rights.canNote) {
      const noteId = `alert-${alertId}-note`;
      // No spelling service: a browser's enhanced spell check sends the text away.
      this.textarea = el('textarea', { id: noteId, rows: '2', maxlength: '2000', spellcheck: 'false', autocomplete: 'off' });
      const form = el(
        'form',
        { class: 'note-form' },
        el('label', { for: noteId }, 'Note'),
        this.textarea,
        el('button', { type: 'submit' }, 'Add note'),
      );
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        void this.addNote();
      });
      this.textarea.addEventListener('input', () => this.typed());
      this.textarea.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          form.requestSubmit();
        }
      });
      parts.push(form);
    }
    parts.push(this.problem);
    this.panel = el('div', { id: panelId, class: 'details-panel', hidden: true }, ...parts);
    this.panel.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        this.close();
        this.toggle.focus();
      }
    });
    slot.replaceChildren(this.latestNote, this.toggle, this.panel);
    this.toggle.addEventListener('click', () => (this.isOpen ? this.close() : this.open()));
    this.historyButton.addEventListener('click', () => {
      if (this.entries === null) void this.loadHistory();
      else this.hideHistory();
    });
  }

  private get isOpen(): boolean {
    return !this.panel.hidden;
  }

  open(): void {
    if (this.isOpen) return;
    this.owner.opening(this);
    this.panel.hidden = false;
    this.toggle.setAttribute('aria-expanded', 'true');
    setText(this.viewers, '');
    this.viewersSub = this.owner.client.presence.subscribeToAlert.subscribe(
      { alertId: this.alertId },
      {
        onData: (event) => this.drawViewers(event.viewers),
        onError: (error) => setText(this.viewers, `Who else is viewing is not known: ${error.message}`),
      },
    );
    this.startLooking();
  }

  close(): void {
    if (!this.isOpen) return;
    this.owner.closed(this);
    this.panel.hidden = true;
    this.toggle.setAttribute('aria-expanded', 'false');
    this.viewersSub?.unsubscribe();
    this.viewersSub = undefined;
    this.stopLooking(true);
  }

  visibilityChanged(): void {
    if (!this.isOpen) return;
    // A hidden tab is nobody looking: stop saying so, and say it again on return.
    if (document.hidden) this.stopLooking(true);
    else this.startLooking();
  }

  event(event: AlertEvent): void {
    if (event.type === 'alert.noted' && event.note !== null && event.id > this.latestNoteId) {
      this.latestNoteId = event.id;
      setText(this.latestNote, `Latest note, ${event.actorId}: ${event.note}`);
      this.latestNote.hidden = false;
    }
    if (this.entries !== null && !this.entries.has(event.id)) {
      this.entries.set(event.id, {
        eventId: event.id,
        type: event.type,
        actorId: event.actorId,
        occurredAt: event.occurredAt,
        detail: event.note,
      });
      this.drawHistory();
    }
  }

  private startLooking(): void {
    if (!this.owner.rights.canView || this.lookTimer !== undefined || document.hidden) return;
    this.look();
    this.lookTimer = setInterval(() => this.look(), LOOK_EVERY_MS);
  }

  private stopLooking(sayGone: boolean): void {
    if (this.lookTimer === undefined) return;
    clearInterval(this.lookTimer);
    this.lookTimer = undefined;
    if (sayGone) this.send({ viewing: false });
  }

  private look(): void {
    this.send({ typing: Date.now() - this.lastKeyAt < TYPING_FOR_MS });
  }

  private typed(): void {
    const now = Date.now();
    this.lastKeyAt = now;
    if (this.lookTimer !== undefined && now - this.typingSentAt >= TYPING_EVERY_MS) {
      this.typingSentAt = now;
      this.send({ typing: true });
    }
  }

  private send(state: { typing?: boolean; viewing?: boolean }): void {
    // Best effort: a look that fails lapses by itself, and the next one is 15 s away.
    this.owner.client.presence.viewing.mutate({ alertId: this.alertId, ...state }).catch(() => {});
  }

  private drawViewers(viewers: readonly AlertViewer[]): void {
    const others = viewers.filter((v) => v.sub !== this.owner.me.sub);
    this.viewers.classList.toggle('others', others.length > 0);
    setText(
      this.viewers,
      others.length === 0
        ? 'No one else is viewing this alert.'
        : `Also viewing: ${others.map((v) => (v.typing ? `${v.name} (writing a note)` : v.name)).join(', ')}`,
    );
  }

  private async loadHistory(): Promise<void> {
    this.problem.hidden = true;
    try {
      const trail = await this.owner.client.healthcare.getAuditTrail.query({ alertId: this.alertId });
      // Events that came while the trail loaded are kept (the map holds each once).
      const entries = new Map(trail.entries.map((e) => [e.eventId, e]));
      for (const [id, entry] of this.entries ?? []) if (!entries.has(id)) entries.set(id, entry);
      this.entries = entries;
      for (const entry of entries.values()) {
        if (entry.type === 'alert.noted' && entry.detail !== null && entry.eventId > this.latestNoteId) {
          this.latestNoteId = entry.eventId;
          setText(this.latestNote, `Latest note, ${entry.actorId}: ${entry.detail}`);
          this.latestNote.hidden = false;
        }
      }
      this.drawHistory();
      this.history.hidden = false;
      this.historyButton.setAttribute('aria-expanded', 'true');
      setText(this.historyButton, 'Hide history');
    } catch (error) {
      this.showProblem(`The history could not be loaded: ${(error as Error).message}`);
    }
  }

  private hideHistory(): void {
    this.entries = null;
    this.history.hidden = true;
    this.history.replaceChildren();
    this.historyButton.setAttribute('aria-expanded', 'false');
    setText(this.historyButton, 'Show history');
  }

  private drawHistory(): void {
    if (this.entries === null) return;
    const sorted = [...this.entries.values()].sort((a, b) => (a.eventId < b.eventId ? -1 : 1));
    this.history.replaceChildren(
      ...sorted.map((entry) => {
        const when = el('time', { datetime: entry.occurredAt }, clock(entry.occurredAt));
        const what = entry.type === 'alert.noted' ? `Note by ${entry.actorId}` : `${cap(EVENT_WORDS[entry.type])} by ${entry.actorId}`;
        return el('li', {}, when, ` ${what}`, ...(entry.detail === null ? [] : [': ', el('q', {}, entry.detail)]));
      }),
    );
  }

  private async addNote(): Promise<void> {
    const textarea = this.textarea;
    if (textarea === undefined || this.busy) return;
    const text = textarea.value.trim();
    if (text === '') {
      this.showProblem('Write the note first.');
      textarea.focus();
      return;
    }
    this.busy = true;
    this.problem.hidden = true;
    try {
      const noted = await this.owner.client.healthcare.addNote.mutate({ alertId: this.alertId, text });
      if (textarea.value.trim() === text) textarea.value = '';
      // Written: no longer typing, and the next key says so again at once.
      this.lastKeyAt = 0;
      this.typingSentAt = 0;
      if (this.lookTimer !== undefined) this.send({ typing: false });
      this.owner.merge(noted.alert);
      this.event(noted);
      this.owner.announce('Note added.');
    } catch (error) {
      this.showProblem(`The note was not added: ${(error as Error).message}`);
    } finally {
      this.busy = false;
    }
  }

  private showProblem(text: string): void {
    setText(this.problem, text);
    this.problem.hidden = false;
  }
}

function clock(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function cap(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}
