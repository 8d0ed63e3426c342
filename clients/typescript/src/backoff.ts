export interface BackoffOptions {
  /** First delay (ms). Default 1000. */
  initialDelayMs?: number;
  /** Cap (ms). Default 30000. */
  maxDelayMs?: number;
  /** Fraction of the delay taken off at random, 0..1. Default 0.5 ("equal jitter"). */
  jitter?: number;
}

/**
 * Delay before reconnect attempt `attempt` (0-based): `initial * 2^attempt`, capped, then
 * reduced by a random share of up to `jitter` so that many clients do not retry in step.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initial = options.initialDelayMs ?? 1000;
  const max = options.maxDelayMs ?? 30000;
  const jitter = Math.min(Math.max(options.jitter ?? 0.5, 0), 1);
  const base = Math.min(initial * 2 ** Math.min(attempt, 30), max);
  return Math.round(base * (1 - jitter * random()));
}
