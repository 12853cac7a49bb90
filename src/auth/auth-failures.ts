import type { App } from '../app';
import type { RateLimitWindowState } from '../rate-limits/rate-limiter';
import type { Actor } from './actor';
import { VerifyCode } from './verify-code';
import { secondsUntil } from '../clock';

/**
 * Brute-force protection: keys that fail to authenticate (unknown, malformed, revoked, disabled,
 * expired: steps 1–3 of the pipeline) count per client address. Past the limit, every
 * key-authenticated request and WebSocket connect from that address is refused (429
 * RATE_LIMITED with Retry-After) before its key is looked at, until the window ends. Windows
 * are app.rateLimiter's (epoch-aligned, shared through Redis in scale-out mode).
 */
export const AUTH_FAILURE_LIMIT = { name: 'auth-failures', limit: 20, windowSeconds: 60 } as const;

/** Refusals that say nothing about the caller's rights, only that the key does not work. */
const COUNTED: ReadonlySet<VerifyCode> = new Set([VerifyCode.NOT_FOUND, VerifyCode.REVOKED, VerifyCode.DISABLED, VerifyCode.EXPIRED]);

const LIMITS = [AUTH_FAILURE_LIMIT];

function subjectOf(ip: string | null): string {
  return `authfail:${ip ?? 'unknown'}`;
}

export interface AuthFailureBlock {
  /** Whole seconds (at least 1) until the window ends. */
  retryAfterSeconds: number;
  message: string;
}

/** Whether `ip` used up its failed authentications in the current window. */
export async function authFailureBlock(app: App, ip: string | null): Promise<AuthFailureBlock | null> {
  const now = app.clock.now();
  let state: RateLimitWindowState;
  try {
    [state] = await app.rateLimiter.peek(subjectOf(ip), LIMITS, now);
  } catch (error) {
    // The shared store is down. Keys are still verified (their own rate limits fail closed);
    // refusing every request here would take down keys that have no rate limits at all.
    app.logger.warn({ err: error, ip }, 'could not check failed authentications');
    return null;
  }
  if (state.remaining > 0) return null;
  const retryAfterSeconds = secondsUntil(state.resetAt, now);
  return {
    retryAfterSeconds,
    message: `Too many failed authentications from this address (${AUTH_FAILURE_LIMIT.limit} per ${AUTH_FAILURE_LIMIT.windowSeconds} s); retry in ${retryAfterSeconds} s`,
  };
}

/**
 * Counts a refused authentication of `ip` when its code is one that counts. The failure that
 * uses up the window writes one audit entry `auth.failures_exceeded` (one per address and window).
 */
export async function countAuthFailure(app: App, ip: string | null, code: VerifyCode): Promise<void> {
  if (!COUNTED.has(code)) return;
  try {
    const result = await app.rateLimiter.consume(subjectOf(ip), LIMITS, 1, app.clock.now());
    if (!result.allowed || result.states[0].remaining > 0) return;
    app.logger.warn({ ip, failures: AUTH_FAILURE_LIMIT.limit, windowSeconds: AUTH_FAILURE_LIMIT.windowSeconds }, 'too many failed authentications from one address');
    const nobody: Actor = { keyId: null, organizationId: null, scopes: [], isPlatformAdmin: false, inPlatformOrganization: false, superseded: false, ip };
    await app.audit.record(app.dataSource.manager, nobody, {
      action: 'auth.failures_exceeded',
      targetType: 'ip',
      targetId: null,
      organizationId: null,
      metadata: { failures: AUTH_FAILURE_LIMIT.limit, windowSeconds: AUTH_FAILURE_LIMIT.windowSeconds },
    });
  } catch (error) {
    // The request is refused anyway (401); a store hiccup must not turn that into a 500.
    app.logger.warn({ err: error, ip }, 'could not count a failed authentication');
  }
}
