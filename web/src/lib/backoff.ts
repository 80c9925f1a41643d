/**
 * Reconnect backoff for live connections: exponential with "full jitter" (a random delay
 * between zero and the capped exponential), reset after a connection that stayed up.
 */

export interface BackoffOptions {
  /** First ceiling in ms. */
  baseMs: number;
  /** Largest ceiling in ms. */
  maxMs: number;
  /** Multiplier of the ceiling per failed attempt. */
  factor: number;
  /** A connection up at least this long resets the attempts. */
  stableMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  baseMs: 500,
  maxMs: 30_000,
  factor: 2,
  stableMs: 10_000,
};

export class Backoff {
  private attempts = 0;

  constructor(
    private readonly options: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  /** The ceiling of the next delay, before jitter. */
  ceiling(): number {
    const { baseMs, maxMs, factor } = this.options;
    return Math.min(maxMs, baseMs * factor ** this.attempts);
  }

  /** The delay before the next attempt, in ms; counts the attempt. */
  next(): number {
    const delay = Math.floor(this.random() * this.ceiling());
    this.attempts += 1;
    return delay;
  }

  /** The connection closed after being up for `upMs`: forget the failures if it was stable. */
  closedAfter(upMs: number): void {
    if (upMs >= this.options.stableMs) this.attempts = 0;
  }

  reset(): void {
    this.attempts = 0;
  }

  get failures(): number {
    return this.attempts;
  }
}
