import { retryAfterSeconds } from '@keyward/client/wire';

/**
 * Source of the current time. Everything that expires, rotates or resets asks a Clock,
 * never `Date.now()` directly, so tests can move time without sleeping.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** Whole seconds from `now` until `at`, at least 1: what Retry-After says (the wire contract's rule). */
export function secondsUntil(at: Date, now: Date): number {
  return retryAfterSeconds(at.getTime(), now.getTime());
}

/** A clock that only moves when told to; for tests and benchmarks. */
export class ManualClock implements Clock {
  private current: number;

  constructor(start: Date | string = '2026-01-15T12:00:00.000Z') {
    this.current = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  set(to: Date | string): void {
    this.current = new Date(to).getTime();
  }

  advance(ms: number): void {
    this.current += ms;
  }
}
