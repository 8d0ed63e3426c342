import { useEffect, useState } from 'react';
import { createAlertwireClient, type Alert, type ConnectionStatus, type Unsubscribable } from '@alertwire/client';

const client = createAlertwireClient({
  url: 'https://alerts.example.org/api/trpc',
  token: () => localStorage.getItem('jwt'),
});
const upsert = (list: Alert[], alert: Alert) => [alert, ...list.filter((a) => a.id !== alert.id)];

/** A hospital's alerts, kept current, and the connection status. */
export function useAlerts(hospitalId: string) {
  const [alerts, setAlerts] = useState<Alert[]>([]);
  const [status, setStatus] = useState<ConnectionStatus>(client.status);
  useEffect(() => client.onStatusChange(setStatus), []);
  useEffect(() => {
    let active = true;
    let sub: Unsubscribable | undefined;
    const refetch = async () => {
      const page = await client.healthcare.listAlerts.query({ hospitalId });
      if (active) setAlerts(page.items);
      return page.lastEventId; // where this snapshot stands in the event stream
    };
    setAlerts([]);
    refetch().then((lastEventId) => {
      if (!active) return;
      sub = client.healthcare.subscribeToAlerts.subscribe({ hospitalId, lastEventId }, {
        onData: ({ data }) => {
          if (data.type !== 'stream.reset') setAlerts((list) => upsert(list, data.alert));
        },
        onReset: () => refetch().catch(console.error), // history was lost: take a fresh snapshot
        onError: (error) => console.error(error.kind, error.message),
      });
    }, console.error);
    return () => { active = false; sub?.unsubscribe(); };
  }, [hospitalId]);
  return { alerts, status };
}
