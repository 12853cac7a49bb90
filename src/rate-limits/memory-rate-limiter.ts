import type { RateLimitSpec } from '../api-keys/api-key.entity';
import { assertDistinctNames, consumeResult, ConsumeResult, RateLimiter, RateLimitWindowState, stateOf } from './rate-limiter';
import { advance, clear, emptyLog, giveBack, SlidingLog, take, viewOf } from './sliding-log';

interface StoredLog extends SlidingLog {
  /** The window length it was last used with, to know when it is garbage. */
  windowMs: number;
}

/**
 * After a sweep, the next runs max(SWEEP_EVERY, logs left) admitted consumes later: a sweep
 * costs O(logs), so amortised O(1) per consume, and garbage never outgrows the live logs.
 */
const SWEEP_EVERY = 1_024;

/**
 * Sliding windows in this process (embedded mode, and the fallback when Redis is down). Each
 * call runs synchronously to the end, so consume is atomic without locks. Logs whose units have
 * all left their window are swept away, amortised over consumes, so a stream of distinct
 * subjects (client addresses) does not grow memory without bound.
 */
export class MemoryRateLimiter implements RateLimiter {
  private readonly logs = new Map<string, StoredLog>();
  private consumesUntilSweep = SWEEP_EVERY;

  /** Windows held in memory (each at most MAX_ENTRIES entries). */
  get storedWindows(): number {
    return this.logs.size;
  }

  async consume(subject: string, limits: readonly RateLimitSpec[], cost: number, now: Date): Promise<ConsumeResult> {
    assertDistinctNames(limits);
    const nowMs = now.getTime();
    const logs = limits.map((limit) => this.logFor(subject, limit, nowMs));
    const views = logs.map((log, index) => viewOf(log, limits[index].limit, log.windowMs, cost));
    const admitted = views.every((view, index) => view.used + cost <= limits[index].limit);
    if (admitted) {
      logs.forEach((log, index) => {
        take(log, cost);
        this.logs.set(keyOf(subject, limits[index]), log);
        views[index] = viewOf(log, limits[index].limit, log.windowMs, cost);
      });
      this.sweepIfDue(nowMs);
    }
    return consumeResult(limits, views, admitted);
  }

  async refund(subject: string, limits: readonly RateLimitSpec[], cost: number, now: Date): Promise<void> {
    for (const limit of limits) {
      const log = this.logs.get(keyOf(subject, limit));
      if (log) giveBack(log, cost, now.getTime());
    }
  }

  async charge(subject: string, limits: readonly RateLimitSpec[], units: number, now: Date): Promise<void> {
    for (const limit of limits) {
      const log = this.logFor(subject, limit, now.getTime());
      take(log, units);
      this.logs.set(keyOf(subject, limit), log);
    }
  }

  async peek(subject: string, limits: readonly RateLimitSpec[], now: Date): Promise<RateLimitWindowState[]> {
    return limits.map((limit) => {
      const log = this.logFor(subject, limit, now.getTime());
      return stateOf(limit, viewOf(log, limit.limit, log.windowMs, 0));
    });
  }

  async reset(subject: string, limits: readonly RateLimitSpec[], now: Date): Promise<void> {
    for (const limit of limits) {
      const log = this.logFor(subject, limit, now.getTime());
      clear(log, now.getTime());
      this.logs.set(keyOf(subject, limit), log);
    }
  }

  /**
   * A copy of the stored log (or a fresh one) moved to `nowMs`. Only consumes that take, charges and
   * resets store it back, as the Redis script writes only then: a refusal or a peek changes nothing.
   */
  private logFor(subject: string, limit: RateLimitSpec, nowMs: number): StoredLog {
    const windowMs = limit.windowSeconds * 1000;
    const stored = this.logs.get(keyOf(subject, limit));
    const log: StoredLog = stored
      ? { highWater: stored.highWater, refundFloor: stored.refundFloor, entries: stored.entries.map(([takenAt, units]) => [takenAt, units]), windowMs }
      : { ...emptyLog(nowMs, windowMs), windowMs };
    advance(log, nowMs, windowMs);
    return log;
  }

  /**
   * Drops logs with nothing left in their window whose refund floor is past too: a log created
   * afresh later starts with a floor at least as high, so no refund can act on the wrong units.
   */
  private sweepIfDue(nowMs: number): void {
    this.consumesUntilSweep -= 1;
    if (this.consumesUntilSweep > 0) return;
    for (const [key, log] of this.logs) {
      const cutoff = nowMs - log.windowMs;
      const newest = log.entries[log.entries.length - 1];
      if ((!newest || newest[0] <= cutoff) && log.refundFloor <= cutoff) this.logs.delete(key);
    }
    this.consumesUntilSweep = Math.max(SWEEP_EVERY, this.logs.size);
  }
}

function keyOf(subject: string, limit: RateLimitSpec): string {
  return `${subject}\n${limit.name}`;
}
