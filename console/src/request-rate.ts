/**
 * Requests per minute, worked out from the live events the console already receives (no
 * polling, which would itself be counted as requests). Each event carries a state, not a count:
 * the difference between two states of the same quota period or rate-limit window is the
 * number of units taken in between, however the server coalesced the events.
 */
import type { Quota, RateLimitState } from './queries';

const MINUTE_MS = 60_000;

/** Units of a REQUESTS quota taken between two of its states (0 across a period reset). */
export function quotaDelta(previous: Quota | undefined, next: Quota): number {
  if (!previous || next.meter !== 'REQUESTS' || previous.resetsAt !== next.resetsAt) return 0;
  return Math.max(0, next.used - previous.used);
}

/** Units of a rate-limit window taken between two of its states (0 when the window moved on). */
export function windowDelta(previous: RateLimitState | undefined, next: RateLimitState): number {
  if (!previous || previous.resetAt !== next.resetAt) return 0;
  return Math.max(0, previous.remaining - next.remaining);
}

export class RequestRate {
  /** Minute start (epoch ms) → units taken in that minute. */
  private readonly counts = new Map<number, number>();

  add(units: number, at: number): void {
    if (units <= 0) return;
    const minute = Math.floor(at / MINUTE_MS) * MINUTE_MS;
    this.counts.set(minute, (this.counts.get(minute) ?? 0) + units);
    // Keep two hours at most.
    for (const key of this.counts.keys()) if (key < minute - 120 * MINUTE_MS) this.counts.delete(key);
  }

  /** The last `minutes` whole minutes up to `now`, oldest first; times in Unix seconds. */
  series(now: number, minutes = 30): { times: number[]; values: number[] } {
    const last = Math.floor(now / MINUTE_MS) * MINUTE_MS;
    const times: number[] = [];
    const values: number[] = [];
    for (let minute = last - (minutes - 1) * MINUTE_MS; minute <= last; minute += MINUTE_MS) {
      times.push(minute / 1000);
      values.push(this.counts.get(minute) ?? 0);
    }
    return { times, values };
  }
}
