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
    // A snapshot, then the stream from exactly where the snapshot stands. After a reset (the
    // history was lost) the same again, with the old stream stopped first: no event applied
    // while the new snapshot loads can be overwritten by it.
    const start = async () => {
      sub?.unsubscribe();
      sub = undefined;
      const page = await client.healthcare.listAlerts.query({ hospitalId });
      if (!active) return;
      setAlerts(page.items);
      sub = client.healthcare.subscribeToAlerts.subscribe(
        { hospitalId, lastEventId: page.lastEventId },
        {
          onData: ({ data }) => {
            if (data.type !== 'stream.reset') setAlerts((list) => upsert(list, data.alert));
          },
          onReset: () => { start().catch(console.error); },
          onError: (error) => console.error(error.kind, error.message),
        },
      );
    };
    setAlerts([]);
    start().catch(console.error);
    return () => { active = false; sub?.unsubscribe(); };
  }, [hospitalId]);
  return { alerts, status };
}
