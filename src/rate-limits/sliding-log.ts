/**
 * The sliding-window algorithm behind every rate limit: a window's log of the units it admitted,
 * by the millisecond they were taken. A request of `cost` is admitted at time t when the units
 * taken in (t - window, t] plus `cost` fit in the limit; so no span of `window` ever holds more
 * than `limit` admitted units.
 *
 * Memory stays bounded (at most `maxEntries` entries, whatever the limit) by merging the two
 * adjacent entries closest in time into the LATER one. That only ever makes units count for
 * longer, never shorter: a merged log may refuse a little early, it never admits too much.
 * Refunds and resets keep the same direction (see giveBack and clear).
 *
 * Pure functions over plain data, mirrored step for step by the Lua script of the Redis
 * limiter (redis-rate-limiter.ts); test/unit/sliding-log.test.ts pins the behaviour and
 * test/redis-rate-limiter.test.ts checks that both agree.
 */

/** Entries a window keeps before merging (a window then stays under about 1.5 KB, whatever its limit). */
export const MAX_ENTRIES = 64;

export interface SlidingLog {
  /**
   * The latest time (ms) the log was moved to (by a limiter: the latest admission or reset). The
   * log's clock never goes back: a caller whose clock lags (another instance, a test moving time
   * backwards) is treated as being at this time, so a lagging clock can never reopen units.
   */
  highWater: number;
  /**
   * Units taken at or before this time (ms) are not given back by a refund: they may already
   * have left the log (expired or reset), and removing someone else's units instead would
   * under-count.
   */
  refundFloor: number;
  /** [takenAtMs, units], oldest first, times strictly increasing, units > 0. */
  entries: Array<[number, number]>;
}

/** What a window looks like to a request of `cost`, at the log's current time. */
export interface WindowView {
  /** Units taken in the window. */
  used: number;
  /** When the next unit frees up (the oldest entry leaves); with none taken, when a unit taken now would. */
  resetAtMs: number;
  /** The earliest time a request of `cost` fits (now when it fits already); null when `cost` exceeds the limit. */
  admitAtMs: number | null;
}

/** A log with nothing taken, as of `nowMs`. Refunds of anything taken before it existed are ignored. */
export function emptyLog(nowMs: number, windowMs: number): SlidingLog {
  return { highWater: nowMs, refundFloor: nowMs - windowMs, entries: [] };
}

/** Moves the log to `nowMs` (never back) and drops the units that left the window. */
export function advance(log: SlidingLog, nowMs: number, windowMs: number): void {
  if (nowMs > log.highWater) log.highWater = nowMs;
  const cutoff = log.highWater - windowMs;
  if (cutoff > log.refundFloor) log.refundFloor = cutoff;
  let first = 0;
  while (first < log.entries.length && log.entries[first][0] <= cutoff) first += 1;
  if (first > 0) log.entries.splice(0, first);
}

/** The window at the log's current time (call advance first). */
export function viewOf(log: SlidingLog, limit: number, windowMs: number, cost: number): WindowView {
  let used = 0;
  for (const [, units] of log.entries) used += units;
  const resetAtMs = log.entries.length > 0 ? log.entries[0][0] + windowMs : log.highWater + windowMs;
  let admitAtMs: number | null = null;
  if (used + cost <= limit) {
    admitAtMs = log.highWater;
  } else if (cost <= limit) {
    let left = used;
    for (const [takenAt, units] of log.entries) {
      left -= units;
      if (left + cost <= limit) {
        admitAtMs = takenAt + windowMs;
        break;
      }
    }
  }
  return { used, resetAtMs, admitAtMs };
}

/** Records `cost` units at the log's current time, merging when the log grows past `maxEntries`. */
export function take(log: SlidingLog, cost: number, maxEntries = MAX_ENTRIES): void {
  if (cost <= 0) return;
  const last = log.entries[log.entries.length - 1];
  if (last && last[0] === log.highWater) last[1] += cost;
  else log.entries.push([log.highWater, cost]);
  if (log.entries.length <= maxEntries) return;
  // Merge the closest pair (the first such pair on ties) into its later entry.
  let best = 0;
  let gap = log.entries[1][0] - log.entries[0][0];
  for (let index = 1; index < log.entries.length - 1; index += 1) {
    const next = log.entries[index + 1][0] - log.entries[index][0];
    if (next < gap) {
      best = index;
      gap = next;
    }
  }
  log.entries[best + 1][1] += log.entries[best][1];
  log.entries.splice(best, 1);
}

/**
 * Gives back `cost` units that a request took at `takenAtMs` (the `now` its consume was called
 * with). Its units sit in an entry at or after that time (merges only move units later), so the
 * earliest units at or after it are removed: the log left behind never counts fewer units at
 * any time than the exact one would. When those units may be gone already (taken at or before
 * refundFloor), nothing is given back.
 */
export function giveBack(log: SlidingLog, cost: number, takenAtMs: number): boolean {
  if (takenAtMs <= log.refundFloor || cost <= 0) return false;
  let left = cost;
  let index = log.entries.findIndex(([takenAt]) => takenAt >= takenAtMs);
  if (index < 0) return false;
  while (left > 0 && index < log.entries.length) {
    const entry = log.entries[index];
    const removed = Math.min(entry[1], left);
    entry[1] -= removed;
    left -= removed;
    if (entry[1] === 0) log.entries.splice(index, 1);
    else index += 1;
  }
  return true;
}

/**
 * Starts the window afresh at `nowMs` (resetRateLimit, an operator's override). Refunds of units
 * taken before this millisecond are ignored (those units are gone); a request that took units in
 * this very millisecond before the reset gets them back from units taken after it.
 */
export function clear(log: SlidingLog, nowMs: number): void {
  if (nowMs > log.highWater) log.highWater = nowMs;
  log.entries = [];
  if (log.highWater - 1 > log.refundFloor) log.refundFloor = log.highWater - 1;
}
