import {
  createAlertwireClient,
  defaultPollers,
  type Alert,
  type AlertwireClient,
  type AlertwireError,
  type Identity,
} from '../../clients/typescript/src/index.js';
import { AlertDetails } from './alert-details.js';
import { AlertList, type Action } from './alert-list.js';
import { StatusLine } from './connection-status.js';
import * as credentials from './credentials.js';
import { Cues } from './cues.js';
import { byId, el, setText } from './dom.js';
import { AlertFeed } from './feed.js';
import { MetricsPanel } from './metrics-panel.js';
import { available, mountPanels } from './panels.js';

/** Roles that may acknowledge, escalate and resolve (the README's roles table); `service`
 * accounts see the alerts read-only. The server checks again on every call. */
const ACTING_ROLES: ReadonlySet<Identity['role']> = new Set(['nurse', 'physician', 'charge_nurse', 'admin']);

/** While no WebSocket can be opened, a followed patient's vitals are polled (`vitals.latest`). */
const POLLERS = {
  ...defaultPollers,
  'vitals.subscribe': {
    kind: 'snapshot' as const,
    path: 'vitals.latest',
    input: (sub: unknown) => {
      const { hospitalId, patientId } = sub as { hospitalId: string; patientId: string };
      return { hospitalId, patientId };
    },
    intervalMs: () => 5000,
  },
};

const REFUSED = 'The token was refused or has expired. Sign in again.';

const page = {
  signIn: byId('sign-in', HTMLElement),
  signInForm: byId('sign-in-form', HTMLFormElement),
  token: byId('token', HTMLInputElement),
  signInProblem: byId('sign-in-problem', HTMLElement),
  board: byId('board', HTMLElement),
  controls: byId('controls', HTMLElement),
  who: byId('who', HTMLElement),
  hospital: byId('hospital', HTMLSelectElement),
  signOut: byId('sign-out', HTMLButtonElement),
  alerts: byId('alerts', HTMLElement),
  noAlerts: byId('no-alerts', HTMLElement),
};

const status = new StatusLine(byId('connection', HTMLElement));
const cues = new Cues(
  byId('mute', HTMLButtonElement),
  byId('critical-banner', HTMLElement),
  byId('critical-text', HTMLElement),
  byId('announcer', HTMLElement),
  byId('urgent-announcer', HTMLElement),
);
const metrics = new MetricsPanel(
  {
    active: byId('m-active', HTMLElement),
    critical: byId('m-critical', HTMLElement),
    staff: byId('m-staff', HTMLElement),
    rate: byId('m-rate', HTMLElement),
    response: byId('m-response', HTMLElement),
  },
  (serverTime) => {
    clockOffsetMs = serverTime - Date.now();
  },
);

/** Server time minus ours, from the metrics' `generatedAt`: "time since raised" counts on
 * the server's clock, so a wall screen whose clock is off still shows the right waits. */
let clockOffsetMs = 0;

interface Session {
  client: AlertwireClient;
  /** Known once `whoami` answered. */
  me: Identity | undefined;
  canAct: boolean;
  stopHospital: () => void;
  ended: boolean;
}
let session: Session | undefined;

function showSignIn(problem?: string): void {
  page.board.hidden = true;
  page.controls.hidden = true;
  page.signIn.hidden = false;
  setText(page.who, '');
  setText(page.signInProblem, problem ?? '');
  page.signInProblem.hidden = problem === undefined;
  status.show('closed');
  page.token.focus();
}

function signOut(problem?: string): void {
  if (session !== undefined) {
    session.ended = true;
    session.stopHospital();
    session.client.close();
    session = undefined;
  }
  credentials.forget();
  showSignIn(problem);
}

async function signIn(): Promise<void> {
  let current: Session | undefined; // set right below; the client may report before that
  const client = createAlertwireClient({
    url: new URL('/api/trpc', location.href).href,
    token: () => credentials.savedToken(),
    pollers: POLLERS,
    onError: (error: AlertwireError) => {
      // A token refused when the socket (re)authenticates: it is wrong, expired or revoked.
      if (error.kind === 'UNAUTHORIZED' && current !== undefined && current === session) signOut(REFUSED);
    },
  });
  current = { client, me: undefined, canAct: false, stopHospital: () => {}, ended: false };
  session = current;
  const mine = current;
  client.onStatusChange((s) => {
    if (mine === session) status.show(s);
  });
  status.show(client.status);
  // A refused token ends the session; anything else (the server is down or restarting, as
  // after a power cut on the ward) is retried, so that a wall screen signs itself back in.
  let me: Identity | undefined;
  for (let attempt = 0; me === undefined; attempt++) {
    try {
      me = await client.system.whoami.query();
    } catch (error) {
      if (mine !== session) return;
      if ((error as AlertwireError).kind === 'UNAUTHORIZED') {
        signOut(REFUSED);
        return;
      }
      setText(page.who, 'Cannot reach the server: trying again…');
      await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 1000 * 2 ** attempt)));
      if (mine !== session) return;
    }
  }
  if (mine.ended) return;
  page.signIn.hidden = true;
  page.board.hidden = false;
  page.controls.hidden = false;
  const canAct = ACTING_ROLES.has(me.role);
  mine.canAct = canAct;
  mine.me = me;
  setText(page.who, `${me.sub} · ${me.role.replace('_', ' ')}${canAct ? '' : ' · read-only'}`);
  const saved = credentials.savedHospital();
  page.hospital.replaceChildren(...me.hospitals.map((id) => el('option', { value: id }, id)));
  page.hospital.value = saved !== null && me.hospitals.includes(saved) ? saved : (me.hospitals[0] ?? '');
  openHospital(mine, page.hospital.value);
}

function openHospital(current: Session, hospitalId: string): void {
  current.stopHospital();
  const { me, canAct } = current;
  if (hospitalId === '' || me === undefined) return;
  credentials.saveHospital(hospitalId);
  const { client } = current;
  const act = async (alert: Alert, action: Action): Promise<void> => {
    const alertId = alert.id;
    const updated =
      action === 'acknowledge'
        ? await client.healthcare.acknowledgeAlert.mutate({ alertId })
        : action === 'escalate'
          ? await client.healthcare.escalateAlert.mutate({ alertId })
          : await client.healthcare.resolveAlert.mutate({ alertId });
    feed.merge(updated);
  };
  // Viewers, notes and the history on each card; a service token sees them read-only.
  const details = available(['presence.subscribeToAlert', 'presence.viewing', 'healthcare.addNote', 'healthcare.getAuditTrail'])
    ? new AlertDetails(client, me, { canNote: canAct, canView: canAct }, (alert) => feed.merge(alert), (text) =>
        cues.announce(text),
      )
    : undefined;
  const list = new AlertList(page.alerts, page.noAlerts, canAct, act, details);
  const feed = new AlertFeed(client, hospitalId, {
    onLoaded: (board) => {
      const alerts = board.sorted();
      list.render(alerts);
      cues.settle(alerts);
    },
    onChange: (board, alert, change) => {
      const alerts = board.sorted();
      list.render(alerts, change === 'added' ? new Set([alert.id]) : undefined);
      if (change === 'added') cues.newAlert(alert);
      cues.settle(alerts);
    },
    onEvent: (event) => details?.event(event),
    onError: (error) => cues.announce(`Alerts could not be loaded: ${error.message}`),
  });
  page.alerts.replaceChildren();
  feed.start();
  metrics.start(client, hospitalId);
  const unmount = mountPanels({ client, hospitalId, me });
  const ticker = setInterval(() => list.tick(Date.now() + clockOffsetMs), 1000);
  current.stopHospital = () => {
    clearInterval(ticker);
    unmount();
    metrics.stop();
    feed.stop();
    list.clear();
    details?.stop();
    current.stopHospital = () => {};
  };
}

page.signInForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = page.token.value.trim();
  page.token.value = '';
  if (token === '') {
    showSignIn('Paste a token first.');
    return;
  }
  credentials.saveToken(token);
  void signIn();
});
page.signOut.addEventListener('click', () => signOut());
page.hospital.addEventListener('change', () => {
  if (session !== undefined) openHospital(session, page.hospital.value);
});

credentials.takeTokenFromFragment();
if (credentials.savedToken() !== null) void signIn();
else showSignIn();
