import type { RateLimitSpec } from '../api-keys/api-key.entity';
import type { WindowView } from './sliding-log';

/** One named window of one subject, as clients see it. */
export interface RateLimitWindowState {
  name: string;
  limit: number;
  windowSeconds: number;
  /** After the request that asked (0 when it ran out). */
  remaining: number;
  /** When the next unit frees up (with nothing taken: when a unit taken now would). */
  resetAt: Date;
}

/** A window of one key, as live events and rateLimitStatus carry it. */
export interface RateLimitState extends RateLimitWindowState {
  apiKeyId: string;
}

/** Who hears of windows that moved (live subscribers). */
export interface RateLimitEvents {
  rateLimits(apiKeyId: string, states: readonly RateLimitWindowState[]): void;
}

export type ConsumeResult =
  | { allowed: true; states: RateLimitWindowState[] }
  | {
    allowed: false;
    /** Every window as it stands (the refused request took nothing). */
    states: RateLimitWindowState[];
    /** The window that keeps the request out longest. */
    refusedBy: RateLimitWindowState;
    /**
     * The earliest time a request of the same cost can be admitted, if nothing else is taken
     * meanwhile; null when the cost is above a window's limit (waiting does not help).
     */
    retryAt: Date | null;
  };

/**
 * Sliding-window rate limits for a subject (a key's lineage, a client address) with several
 * named windows: no span of `windowSeconds` ever admits more than `limit` units in a window
 * (sliding-log.ts). Implementations: in process (memory-rate-limiter.ts) and Redis, atomic
 * across instances (redis-rate-limiter.ts). Time is always the caller's `now` (the injected
 * clock). Window names are distinct within one call; a window is identified by subject + name.
 */
export interface RateLimiter {
  /** Takes `cost` from every window, all or nothing: a refused request consumes nothing. */
  consume(subject: string, limits: readonly RateLimitSpec[], cost: number, now: Date): Promise<ConsumeResult>;
  /**
   * Gives back what an admitted request took (a later pipeline step refused it). `now` is the
   * time its consume was called with.
   */
  refund(subject: string, limits: readonly RateLimitSpec[], cost: number, now: Date): Promise<void>;
  /**
   * Takes `units` from every window even past its limit: usage that already happened (a
   * settled reservation using more tokens than it held), so later requests wait for it.
   */
  charge(subject: string, limits: readonly RateLimitSpec[], units: number, now: Date): Promise<void>;
  /** Current state without consuming. */
  peek(subject: string, limits: readonly RateLimitSpec[], now: Date): Promise<RateLimitWindowState[]>;
  /** Starts each window afresh: everything taken so far is forgotten. */
  reset(subject: string, limits: readonly RateLimitSpec[], now: Date): Promise<void>;
}

/** Throws when two windows of one call share a name (they would share one log). */
export function assertDistinctNames(limits: readonly RateLimitSpec[]): void {
  const names = new Set(limits.map((limit) => limit.name));
  if (names.size !== limits.length) throw new Error(`rate limit names must be distinct within a subject (got ${limits.map((limit) => limit.name).join(', ')})`);
}

export function stateOf(limit: RateLimitSpec, view: WindowView): RateLimitWindowState {
  return {
    name: limit.name,
    limit: limit.limit,
    windowSeconds: limit.windowSeconds,
    remaining: Math.max(0, limit.limit - view.used),
    resetAt: new Date(view.resetAtMs),
  };
}

/**
 * The answer to a consume, from each window's view: before taking (`admitted` false; the
 * views' admitAtMs say when the cost fits) or after taking (`admitted` true).
 */
export function consumeResult(limits: readonly RateLimitSpec[], views: readonly WindowView[], admitted: boolean): ConsumeResult {
  const states = limits.map((limit, index) => stateOf(limit, views[index]));
  if (admitted) return { allowed: true, states };
  // Units only leave a window while nothing is taken, so the cost fits everywhere once it fits
  // in the window that frees up last.
  let refusedBy = 0;
  for (let index = 1; index < views.length; index += 1) {
    if (later(views[index].admitAtMs, views[refusedBy].admitAtMs)) refusedBy = index;
  }
  const admitAtMs = views[refusedBy].admitAtMs;
  return { allowed: false, states, refusedBy: states[refusedBy], retryAt: admitAtMs === null ? null : new Date(admitAtMs) };
}

/** Whether admission time `a` is later than `b` (null: never, the latest of all). */
function later(a: number | null, b: number | null): boolean {
  if (b === null) return false;
  return a === null || a > b;
}

