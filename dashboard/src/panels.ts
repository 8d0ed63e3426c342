import {
  procedures,
  type AlertwireClient,
  type Identity,
  type ProcedurePath,
} from '../../clients/typescript/src/index.js';
import { presencePanel } from './presence-panel.js';
import { vitalsPanel } from './vitals-panel.js';

/**
 * Where the parts of the dashboard beside the alerts plug in: staff presence and a patient's
 * vitals (CONTRACT 10 and 8). A panel names the procedures it uses; it is mounted only when
 * the server's generated procedure table has all of them, so that no page ever shows a
 * control that cannot work. (What lives on an alert's card, its viewers and notes, is
 * alert-details.ts, gated the same way by `available`.)
 *
 * To add one: write a `Panel` (a file in src/), list it in `PANELS` below, give it a
 * `<section>` in index.html whose id is the panel's `id` (hidden until mounted), and rebuild.
 * `requires` is typed by the generated `ProcedurePath`: a panel that names a procedure the
 * router lacks does not compile.
 */
export interface Panel {
  readonly id: string;
  readonly requires: readonly ProcedurePath[];
  /** Start showing the hospital's data in `section`; returns how to stop. */
  mount(section: HTMLElement, context: PanelContext): () => void;
}

export interface PanelContext {
  readonly client: AlertwireClient;
  readonly hospitalId: string;
  /** Who is signed in (whoami). */
  readonly me: Identity;
}

export const PANELS: readonly Panel[] = [presencePanel, vitalsPanel];

/** Whether the server's procedure table has every one of `paths`. */
export function available(paths: readonly ProcedurePath[]): boolean {
  return paths.every((path) => path in procedures);
}

export function mountPanels(context: PanelContext, panels = PANELS): () => void {
  const stops: Array<() => void> = [];
  for (const panel of panels) {
    const section = document.getElementById(panel.id);
    if (section === null || !available(panel.requires)) continue;
    section.hidden = false;
    const stop = panel.mount(section, context);
    stops.push(() => {
      stop();
      section.replaceChildren();
      section.hidden = true;
    });
  }
  return () => {
    for (const stop of stops) stop();
  };
}
