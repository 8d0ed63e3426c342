import type { PresenceEvent, PresenceMember } from '../../clients/typescript/src/index.js';
import { el, setText } from './dom.js';
import type { Panel } from './panels.js';

const STATUS_ORDER: Record<PresenceMember['status'], number> = { online: 0, busy: 1, away: 2 };
const STATUS_WORDS: Record<PresenceMember['status'], string> = { online: 'Online', busy: 'Busy', away: 'Away' };

/**
 * Who is on shift in the hospital: the staff connected now, with their role, status and how
 * many devices they are on, kept live from `presence.subscribe` (a snapshot, then changes;
 * after a reconnect the server sends a fresh snapshot, which replaces the list). Service
 * accounts are never listed by the server. Presence has no HTTP fallback: while the page is
 * polling the list says it may be out of date rather than pretending to be live.
 */
export const presencePanel: Panel = {
  id: 'presence-panel',
  requires: ['presence.subscribe'],
  mount(section, { client, hospitalId, me }) {
    const title = el('h2', { id: 'presence-title' }, 'Staff on shift');
    const count = el('span', { class: 'count' });
    title.append(' ', count);
    const stale = el('p', { class: 'panel-note', hidden: true }, 'Not live while polling: may be out of date.');
    const list = el('ul', { class: 'staff', 'aria-labelledby': 'presence-title' });
    const empty = el('p', { class: 'empty' }, 'Loading…');
    section.setAttribute('aria-labelledby', 'presence-title');
    section.replaceChildren(title, stale, list, empty);

    const members = new Map<string, PresenceMember>();
    const draw = (): void => {
      const sorted = [...members.values()].sort(
        (a, b) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status] || a.name.localeCompare(b.name) || (a.sub < b.sub ? -1 : 1),
      );
      list.replaceChildren(...sorted.map((m) => row(m, m.sub === me.sub)));
      setText(count, `(${sorted.length})`);
      setText(empty, 'No staff connected.');
      empty.hidden = sorted.length > 0;
    };
    const sub = client.presence.subscribe.subscribe(
      { hospitalId },
      {
        onData: (event: PresenceEvent) => {
          if (event.type === 'presence.snapshot') {
            members.clear();
            for (const m of event.members) members.set(m.sub, m);
          } else if (event.type === 'presence.changed') {
            members.set(event.member.sub, event.member);
          } else {
            members.delete(event.sub);
          }
          draw();
        },
        onError: (error) => {
          setText(empty, `Presence could not be loaded: ${error.message}`);
          empty.hidden = false;
        },
      },
    );
    const stopStatus = client.onStatusChange((status) => {
      stale.hidden = status !== 'polling';
    });
    stale.hidden = client.status !== 'polling';
    return () => {
      stopStatus();
      sub.unsubscribe();
    };
  },
};

function row(member: PresenceMember, isMe: boolean): HTMLLIElement {
  const devices = member.devices === 1 ? '1 device' : `${member.devices} devices`;
  const details = [member.role.replace('_', ' '), devices];
  return el(
    'li',
    { class: `member status-${member.status}` },
    el('span', { class: 'member-name' }, isMe ? `${member.name} (you)` : member.name),
    el('span', { class: 'member-status' }, STATUS_WORDS[member.status]),
    el('span', { class: 'member-details' }, details.join(' · ')),
    ...(member.activity ? [el('span', { class: 'member-activity' }, member.activity)] : []),
  );
}
