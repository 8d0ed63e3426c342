import { createAlertwireClient, type Reading, type VitalsUpdate } from '@alertwire/client';

const client = createAlertwireClient({
  url: 'https://alerts.example.org/api/trpc',
  token: () => localStorage.getItem('jwt'),
});

/** One patient's vitals on a bedside screen: the latest value of each kind, kept current. */
export function watchVitals(hospitalId: string, patientId: string, show: (latest: Map<string, Reading>) => void) {
  const latest = new Map<string, Reading>();
  // The latest value of each kind at once, then the kinds that changed: at most twice a
  // second here (maxRateHz), and never a backlog (a slow screen gets the newest values).
  return client.vitals.subscribe.subscribe(
    { hospitalId, patientId, kinds: ['heart_rate', 'spo2', 'systolic_bp', 'diastolic_bp'], maxRateHz: 2 },
    {
      onData: (update: VitalsUpdate) => {
        for (const reading of update.readings) latest.set(reading.kind, reading);
        show(latest);
      },
      onError: (error) => console.error(error.kind, error.message),
    },
  );
}

/** A gateway (a `service` token) reporting a monitor's readings; breaches come back as alerts. */
export async function report(hospitalId: string, patientId: string) {
  const { accepted, alerts } = await client.vitals.report.mutate({
    hospitalId,
    patientId,
    deviceId: 'monitor-12',
    readings: [
      { kind: 'heart_rate', value: 72, unit: 'bpm' },
      { kind: 'systolic_bp', value: 152, unit: 'mmHg' },
    ],
  });
  return { accepted, raised: alerts.map((alert) => alert.type) };
}
