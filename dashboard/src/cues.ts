import type { Alert } from '../../clients/typescript/src/index.js';
import { setText } from './dom.js';

const MUTE_KEY = 'alertwire.muted';

/**
 * How a new alert makes itself known: every new alert is announced to screen readers through
 * a polite live region; a new critical alert also raises the banner and, unless muted, beeps.
 *
 * Browsers only let a page play sound after the user has interacted with it; the sign-in (or
 * any click on the page, the Mute button included) unlocks it. The choice to mute is kept for
 * the browser (localStorage), not only the tab: a ward screen stays quiet across a reload.
 */
export class Cues {
  private audio: AudioContext | undefined;
  private muted: boolean;

  constructor(
    private readonly muteButton: HTMLButtonElement,
    private readonly banner: HTMLElement,
    private readonly bannerText: HTMLElement,
    private readonly announcer: HTMLElement,
    private readonly urgentAnnouncer: HTMLElement,
  ) {
    this.muted = localStorage.getItem(MUTE_KEY) === 'true';
    this.drawMute();
    muteButton.addEventListener('click', () => {
      this.muted = !this.muted;
      localStorage.setItem(MUTE_KEY, String(this.muted));
      this.drawMute();
    });
    document.addEventListener('pointerdown', () => this.unlock(), { capture: true });
    document.addEventListener('keydown', () => this.unlock(), { capture: true });
  }

  /** A new alert arrived live (not from a snapshot). */
  newAlert(alert: Alert): void {
    const where = alert.location ? `, ${alert.location}` : '';
    if (alert.priority !== 'critical') {
      this.announce(`New ${alert.priority} alert: ${alert.title}${where}`);
      return;
    }
    // Critical alerts interrupt the screen reader (an assertive region); the others wait.
    say(this.urgentAnnouncer, `New critical alert: ${alert.title}${where}`);
    setText(this.bannerText, `New critical alert: ${alert.title}${where}`);
    this.banner.hidden = false;
    // Restart the banner's pulse for each new critical alert.
    this.banner.classList.remove('pulse');
    void this.banner.offsetWidth;
    this.banner.classList.add('pulse');
    if (!this.muted) this.beep();
  }

  /** The banner goes when no critical alert is left waiting for acknowledgement. */
  settle(alerts: Alert[]): void {
    if (!alerts.some((a) => a.priority === 'critical' && a.status === 'active')) this.banner.hidden = true;
  }

  announce(text: string): void {
    say(this.announcer, text);
  }

  private drawMute(): void {
    setText(this.muteButton, this.muted ? 'Unmute' : 'Mute');
    this.muteButton.title = this.muted ? 'Sound is off: turn it on' : 'Sound is on: turn it off';
  }

  private unlock(): void {
    if (this.audio === undefined && typeof AudioContext !== 'undefined') this.audio = new AudioContext();
    if (this.audio?.state === 'suspended') void this.audio.resume();
  }

  /** Three short tones at 880 Hz: distinct from a monitor's tone, not shrill. */
  private beep(): void {
    const audio = this.audio;
    if (audio === undefined || audio.state !== 'running') return;
    const start = audio.currentTime;
    for (let i = 0; i < 3; i++) {
      const at = start + i * 0.25;
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.3, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.18);
      tone.connect(gain).connect(audio.destination);
      tone.start(at);
      tone.stop(at + 0.2);
    }
  }
}

/** A fresh text node each time, so that the same words twice are still read twice. */
function say(region: HTMLElement, text: string): void {
  region.replaceChildren(document.createTextNode(text));
}
