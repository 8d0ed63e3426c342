import { procedures, type AlertwireClient, type ProcedurePath } from '../../clients/typescript/src/index.js';

/**
 * Where the parts of the dashboard that wait on procedures not yet in the server plug in:
 * staff presence and who is viewing an alert, notes on an alert, a patient's vitals
 * (CONTRACT 10 and 8). A panel names the procedures it uses; it is mounted only when the
 * server's generated procedure table has all of them, so a panel can land with its
 * procedures and no page ever shows a control that cannot work.
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
  mount(section: HTMLElement, client: AlertwireClient, hospitalId: string): () => void;
}

/** Empty until presence, notes or vitals procedures exist. */
export const PANELS: readonly Panel[] = [];

export function mountPanels(client: AlertwireClient, hospitalId: string, panels = PANELS): () => void {
  const stops: Array<() => void> = [];
  for (const panel of panels) {
    const section = document.getElementById(panel.id);
    if (section === null || !panel.requires.every((path) => path in procedures)) continue;
    section.hidden = false;
    const stop = panel.mount(section, client, hospitalId);
    stops.push(() => {
      stop();
      section.hidden = true;
    });
  }
  return () => {
    for (const stop of stops) stop();
  };
}
