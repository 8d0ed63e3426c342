import { createAlertwireClient, type PresenceMember } from '@alertwire/client';

const client = createAlertwireClient({
  url: 'https://alerts.example.org/api/trpc',
  token: () => localStorage.getItem('jwt'),
});

// Who is on shift in h1, kept current.
const staff = new Map<string, PresenceMember>();
client.presence.subscribe.subscribe({ hospitalId: 'h1' }, {
  onData: (event) => {
    if (event.type === 'presence.snapshot') {
      staff.clear();
      for (const member of event.members) staff.set(member.sub, member);
    } else if (event.type === 'presence.changed') {
      staff.set(event.member.sub, event.member);
    } else {
      staff.delete(event.sub);
    }
  },
});
await client.presence.set.mutate({ status: 'busy', activity: 'In theatre until 14:00' });

// Looking at an alert: say so every 20 s while it is on screen; see who else is.
const alertId = 'al_123';
const look = () => client.presence.viewing.mutate({ alertId });
await look();
const timer = setInterval(() => { look().catch(console.error); }, 20_000);
const viewers = client.presence.subscribeToAlert.subscribe({ alertId }, {
  onData: (event) => console.log(event.viewers.map((v) => `${v.name}${v.typing ? ' (typing)' : ''}`)),
});
await client.presence.viewing.mutate({ alertId, typing: true });

// A note in the alert's record, and the record itself.
const noted = await client.healthcare.addNote.mutate({ alertId, text: 'Family informed.' });
console.log(noted.type, noted.note);
const trail = await client.healthcare.getAuditTrail.query({ alertId });
for (const entry of trail.entries) console.log(entry.occurredAt, entry.actorId, entry.type, entry.detail);

// The inbox: every device hears new ones, reads and the unread count; resumes by itself.
const inbox = client.notifications.subscribe.subscribe({}, {
  onData: ({ data }) => {
    if (data.type === 'notification.new') console.log(data.notification.kind, data.notification.title);
    if (data.type === 'notification.count') console.log('unread', data.unread);
  },
});
const page = await client.notifications.list.query({ unreadOnly: true });
await client.notifications.markRead.mutate({ ids: page.items.map((n) => n.id) });

clearInterval(timer);
await client.presence.viewing.mutate({ alertId, viewing: false });
viewers.unsubscribe();
inbox.unsubscribe();
client.close();
