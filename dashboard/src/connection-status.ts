import type { ConnectionStatus } from '../../clients/typescript/src/index.js';
import { setText } from './dom.js';

/**
 * The connection as words a glance across the room can take in. The element has role
 * `status`; its text holds "live", "reconnecting" or "polling" (CONTRACT 12).
 * The client says `connecting` both before the first connection and after a drop; only the
 * second is a reconnection.
 */
export class StatusLine {
  private wasOpen = false;

  constructor(private readonly node: HTMLElement) {}

  show(status: ConnectionStatus): void {
    if (status === 'open') this.wasOpen = true;
    const [text, kind] = describe(status, this.wasOpen);
    setText(this.node, text);
    this.node.dataset.state = kind;
  }
}

function describe(status: ConnectionStatus, wasOpen: boolean): [string, string] {
  switch (status) {
    case 'open':
      return ['Connection: live', 'live'];
    case 'connecting':
      return wasOpen ? ['Connection lost: reconnecting…', 'reconnecting'] : ['Connecting…', 'connecting'];
    case 'polling':
      return ['No live connection: polling every 5 s', 'polling'];
    case 'closed':
      return ['Signed out', 'closed'];
  }
}
