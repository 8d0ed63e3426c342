import type { Alert } from '../../clients/typescript/src/index.js';
import { el, setText } from './dom.js';
import { elapsed } from './elapsed.js';

export type Action = 'acknowledge' | 'escalate' | 'resolve';

/** Which buttons an alert in this status offers (CONTRACT 4, the alert lifecycle). */
const ACTIONS: Record<Alert['status'], Action[]> = {
  active: ['acknowledge', 'escalate', 'resolve'],
  acknowledged: ['escalate', 'resolve'],
  resolved: [],
};

const LABELS: Record<Action, string> = {
  acknowledge: 'Acknowledge',
  escalate: 'Escalate',
  resolve: 'Resolve',
};

/** What else a card shows (viewers, notes): drawn into a part of the card the list never
 * redraws, so that a half-written note survives every update of the alert. */
export interface CardExtension {
  /** Fill `slot` for this alert; returns how to stop when the card goes. */
  attach(alert: Alert, slot: HTMLElement): () => void;
}

interface Card {
  article: HTMLElement;
  title: HTMLElement;
  badge: HTMLElement;
  state: HTMLElement;
  where: HTMLElement;
  message: HTMLElement;
  since: HTMLTimeElement;
  actions: HTMLElement;
  problem: HTMLElement;
  /** The alert's version and the role's rights the card was last drawn with. */
  drawn: string;
  busy: boolean;
  detach: () => void;
}

/**
 * The alert cards, one `<article>` per alert named by its title. Cards are kept per alert id
 * and updated in place, so that a card being read, or a button that has the keyboard focus,
 * is not replaced each time anything else changes.
 */
export class AlertList {
  private readonly cards = new Map<string, Card>();

  constructor(
    private readonly root: HTMLElement,
    private readonly empty: HTMLElement,
    private readonly canAct: boolean,
    private readonly act: (alert: Alert, action: Action) => Promise<void>,
    private readonly extension?: CardExtension,
  ) {}

  render(alerts: Alert[], fresh: ReadonlySet<string> = new Set()): void {
    const focused = document.activeElement;
    const wanted = new Set(alerts.map((a) => a.id));
    for (const [id, card] of this.cards) {
      if (!wanted.has(id)) {
        card.detach();
        card.article.remove();
        this.cards.delete(id);
      }
    }
    let previous: Element | null = null;
    for (const alert of alerts) {
      const card = this.cards.get(alert.id) ?? this.create(alert);
      this.update(card, alert);
      if (fresh.has(alert.id)) this.flash(card, alert);
      const expected: Element | null = previous === null ? this.root.firstElementChild : previous.nextElementSibling;
      if (expected !== card.article) {
        if (previous === null) this.root.prepend(card.article);
        else previous.after(card.article);
      }
      previous = card.article;
    }
    // Moving an element blurs it: give the focus back.
    if (focused instanceof HTMLElement && focused !== document.activeElement && focused.isConnected) focused.focus();
    this.empty.hidden = alerts.length > 0;
    this.tick(Date.now());
  }

  /** Take every card down (the hospital changed or the page signs out). */
  clear(): void {
    for (const card of this.cards.values()) {
      card.detach();
      card.article.remove();
    }
    this.cards.clear();
  }

  /** Refresh the "time since raised" of every card. */
  tick(now: number): void {
    for (const card of this.cards.values()) {
      setText(card.since, elapsed(card.since.dateTime, now));
    }
  }

  private create(alert: Alert): Card {
    const titleId = `alert-${alert.id}-title`;
    const title = el('h3', { id: titleId, class: 'alert-title' });
    const badge = el('span', { class: 'badge' });
    const state = el('span', { class: 'state' });
    const since = el('time', { class: 'since' });
    const where = el('p', { class: 'where' });
    const message = el('p', { class: 'message' });
    const actions = el('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' });
    const problem = el('p', { class: 'problem', role: 'alert', hidden: true });
    const extra = el('div', { class: 'extra' });
    const article = el(
      'article',
      { class: 'alert', 'aria-labelledby': titleId, tabindex: '-1' },
      el('header', {}, badge, title, since),
      el('div', { class: 'details' }, state, where),
      message,
      actions,
      problem,
      extra,
    );
    const card: Card = {
      article,
      title,
      badge,
      state,
      where,
      message,
      since,
      actions,
      problem,
      drawn: '',
      busy: false,
      detach: () => {},
    };
    this.cards.set(alert.id, card);
    if (this.extension !== undefined) card.detach = this.extension.attach(alert, extra);
    return card;
  }

  private update(card: Card, alert: Alert): void {
    const key = `${alert.version}`;
    if (card.drawn === key) return;
    card.drawn = key;
    card.article.className = `alert priority-${alert.priority} status-${alert.status}`;
    setText(card.title, alert.title);
    setText(card.badge, alert.priority.toUpperCase());
    card.since.dateTime = alert.createdAt;
    setText(card.state, describeState(alert));
    setText(card.where, [alert.location, alert.patientId && `patient ${alert.patientId}`].filter(Boolean).join(' · '));
    setText(card.message, alert.message ?? '');
    card.message.hidden = !alert.message;
    this.drawActions(card, alert);
  }

  private drawActions(card: Card, alert: Alert): void {
    const focusedAction = card.actions.contains(document.activeElement)
      ? (document.activeElement as HTMLElement).dataset.action
      : undefined;
    const buttons = this.canAct
      ? ACTIONS[alert.status].map((action) => {
          const button = el('button', { type: 'button', class: `action ${action}`, 'data-action': action }, LABELS[action]);
          if (card.busy) button.setAttribute('aria-disabled', 'true');
          button.addEventListener('click', () => void this.run(card, alert, action));
          return button;
        })
      : [];
    card.actions.replaceChildren(...buttons);
    card.actions.hidden = buttons.length === 0;
    if (focusedAction !== undefined) {
      // The button pressed may be gone (an acknowledged alert has no Acknowledge): keep the
      // focus on the same card, on the same action if it is still offered.
      const same = buttons.find((b) => b.dataset.action === focusedAction);
      (same ?? buttons[0] ?? card.article).focus();
    }
  }

  private async run(card: Card, alert: Alert, action: Action): Promise<void> {
    if (card.busy) return;
    card.busy = true;
    card.problem.hidden = true;
    // aria-disabled, not disabled: a disabled button loses the keyboard focus.
    setBusy(card, true);
    try {
      await this.act(alert, action);
    } catch (error) {
      setText(card.problem, `${LABELS[action]} failed: ${(error as Error).message}`);
      card.problem.hidden = false;
    } finally {
      setBusy(card, false);
    }
  }

  private flash(card: Card, alert: Alert): void {
    const names = alert.priority === 'critical' ? ['fresh', 'fresh-critical'] : ['fresh'];
    card.article.classList.add(...names);
    card.article.addEventListener('animationend', () => card.article.classList.remove(...names), { once: true });
  }
}

function setBusy(card: Card, busy: boolean): void {
  card.busy = busy;
  for (const button of card.actions.querySelectorAll('button')) {
    if (busy) button.setAttribute('aria-disabled', 'true');
    else button.removeAttribute('aria-disabled');
  }
}

function describeState(alert: Alert): string {
  const level = alert.escalationLevel > 0 ? ` · escalated ×${alert.escalationLevel}` : '';
  if (alert.status === 'acknowledged') return `Acknowledged by ${alert.acknowledgedBy ?? 'someone'}${level}`;
  return `Waiting for acknowledgement${level}`;
}
