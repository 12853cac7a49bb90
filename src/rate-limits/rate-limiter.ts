import { RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type Redis from 'ioredis';
import type { RateLimitSpec } from '../api-keys/api-key.entity';

/** One named window of one subject, as clients see it. */
export interface RateLimitWindowState {
  name: string;
  limit: number;
  windowSeconds: number;
  /** After the request that asked (0 when it ran out). */
  remaining: number;
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
  | { allowed: false; states: RateLimitWindowState[]; refusedBy: RateLimitWindowState };

/**
 * Fixed-window rate limits for a subject (a key's lineage) with several named windows.
 * Implementations: in process (below) and Redis (scale-out), both on rate-limiter-flexible.
 */
export interface RateLimiter {
  /** Takes `cost` from every window, all or nothing: a refused request consumes nothing. */
  consume(subject: string, limits: readonly RateLimitSpec[], cost: number, now: Date): Promise<ConsumeResult>;
  /** Gives back what an admitted request took (a later pipeline step refused it). */
  refund(subject: string, limits: readonly RateLimitSpec[], cost: number, now: Date): Promise<void>;
  /** Current state without consuming. */
  peek(subject: string, limits: readonly RateLimitSpec[], now: Date): Promise<RateLimitWindowState[]>;
  /** Starts the current window of each limit afresh. */
  reset(subject: string, limits: readonly RateLimitSpec[], now: Date): Promise<void>;
}

/** The window `now` falls in: windows are aligned to the epoch, so every instance agrees. */
export function windowOf(limit: RateLimitSpec, now: Date): { index: number; resetAt: Date } {
  const windowMs = limit.windowSeconds * 1000;
  const index = Math.floor(now.getTime() / windowMs);
  return { index, resetAt: new Date((index + 1) * windowMs) };
}

/**
 * RateLimiter on rate-limiter-flexible. The window index comes from the injected clock and is
 * part of the storage key, so windows roll over by that clock (testable without sleeping);
 * the store's own expiry (the window length) only garbage-collects finished windows.
 */
export class FlexibleRateLimiter implements RateLimiter {
  private readonly limiters = new Map<string, RateLimiterAbstract>();

  /** `create` builds a store-backed limiter for `points` per `duration` seconds. */
  constructor(private readonly create: (points: number, duration: number) => RateLimiterAbstract) {}

  static inMemory(): FlexibleRateLimiter {
    return new FlexibleRateLimiter((points, duration) => new RateLimiterMemory({ points, duration, keyPrefix: 'kw_rl' }));
  }

  /**
   * Shared by every instance through Redis. When Redis cannot be reached, consume() throws
   * (fail-closed: the caller answers UNAVAILABLE) unless `failOpen`, in which case each
   * instance falls back to its own in-memory limiter until Redis is back.
   */
  static redis(client: Redis, failOpen: boolean): FlexibleRateLimiter {
    return new FlexibleRateLimiter((points, duration) => new RateLimiterRedis({
      storeClient: client,
      points,
      duration,
      keyPrefix: 'kw_rl',
      rejectIfRedisNotReady: true,
      ...(failOpen && { insuranceLimiter: new RateLimiterMemory({ points, duration, keyPrefix: 'kw_rl_insurance' }) }),
    }));
  }

  private limiterFor(limit: RateLimitSpec): RateLimiterAbstract {
    const id = `${limit.limit}/${limit.windowSeconds}`;
    let limiter = this.limiters.get(id);
    if (!limiter) {
      limiter = this.create(limit.limit, limit.windowSeconds);
      this.limiters.set(id, limiter);
    }
    return limiter;
  }

  private storageKey(subject: string, limit: RateLimitSpec, now: Date): string {
    return `${subject}:${limit.name}:${windowOf(limit, now).index}`;
  }

  private state(limit: RateLimitSpec, consumed: number, now: Date): RateLimitWindowState {
    return {
      name: limit.name,
      limit: limit.limit,
      windowSeconds: limit.windowSeconds,
      remaining: Math.max(0, limit.limit - consumed),
      resetAt: windowOf(limit, now).resetAt,
    };
  }

  async consume(subject: string, limits: readonly RateLimitSpec[], cost: number, now: Date): Promise<ConsumeResult> {
    const taken: RateLimitSpec[] = [];
    const states: RateLimitWindowState[] = [];
    for (const limit of limits) {
      const key = this.storageKey(subject, limit, now);
      try {
        const result = await this.limiterFor(limit).consume(key, cost);
        taken.push(limit);
        states.push(this.state(limit, result.consumedPoints, now));
      } catch (rejection) {
        if (!(rejection instanceof RateLimiterRes)) {
          await this.refund(subject, taken, cost, now);
          throw rejection; // the store failed: not a refusal
        }
        // The store counted the refused points too; give back everything this request took.
        await this.refund(subject, [...taken, limit], cost, now);
        const current = await this.peek(subject, limits, now);
        return { allowed: false, states: current, refusedBy: current.find((state) => state.name === limit.name)! };
      }
    }
    return { allowed: true, states };
  }

  async peek(subject: string, limits: readonly RateLimitSpec[], now: Date): Promise<RateLimitWindowState[]> {
    return Promise.all(limits.map(async (limit) => {
      const result = await this.limiterFor(limit).get(this.storageKey(subject, limit, now));
      return this.state(limit, result?.consumedPoints ?? 0, now);
    }));
  }

  async reset(subject: string, limits: readonly RateLimitSpec[], now: Date): Promise<void> {
    await Promise.all(limits.map((limit) => this.limiterFor(limit).delete(this.storageKey(subject, limit, now))));
  }

  async refund(subject: string, limits: readonly RateLimitSpec[], cost: number, now: Date): Promise<void> {
    await Promise.all(limits.map((limit) => this.limiterFor(limit).reward(this.storageKey(subject, limit, now), cost)));
  }
}
