import type { App } from '../app';
import type { Actor } from './actor';
import { VerifyCode } from './verify-code';
import { secondsUntil } from '../clock';

/**
 * Brute-force protection: keys that fail to authenticate (unknown, malformed, revoked, disabled,
 * expired: steps 1–3 of the pipeline) count per client address in a sliding window. While the
 * last 60 seconds hold 20 failures from an address, every key-authenticated request and
 * WebSocket connect from it is refused (429 RATE_LIMITED with Retry-After) before its key is
 * looked at. Counted by app.authFailureLimiter: shared through Redis in scale-out mode, and in
 * each instance's memory while Redis is down (the limit never lapses).
 */
export const AUTH_FAILURE_LIMIT = { name: 'auth-failures', limit: 20, windowSeconds: 60 } as const;

/** At most one `auth.failures_exceeded` audit entry per address in any span of the window. */
const AUDIT_LIMIT = { name: 'auth-failures-audited', limit: 1, windowSeconds: AUTH_FAILURE_LIMIT.windowSeconds } as const;

/** Refusals that say nothing about the caller's rights, only that the key does not work. */
const COUNTED: ReadonlySet<VerifyCode> = new Set([VerifyCode.NOT_FOUND, VerifyCode.REVOKED, VerifyCode.DISABLED, VerifyCode.EXPIRED]);

function subjectOf(ip: string | null): string {
  return `authfail:${ip ?? 'unknown'}`;
}

export interface AuthFailureBlock {
  /** Whole seconds (at least 1) until the oldest counted failure leaves the window. */
  retryAfterSeconds: number;
  message: string;
}

/** Whether `ip` has used up its failed authentications in the window ending now. */
export async function authFailureBlock(app: App, ip: string | null): Promise<AuthFailureBlock | null> {
  const now = app.clock.now();
  const [state] = await app.authFailureLimiter.peek(subjectOf(ip), [AUTH_FAILURE_LIMIT], now);
  if (state.remaining > 0) return null;
  const retryAfterSeconds = secondsUntil(state.resetAt, now);
  return {
    retryAfterSeconds,
    message: `Too many failed authentications from this address (${AUTH_FAILURE_LIMIT.limit} per ${AUTH_FAILURE_LIMIT.windowSeconds} s); retry in ${retryAfterSeconds} s`,
  };
}

/**
 * Counts a refused authentication of `ip` when its code is one that counts. The failure that
 * uses up the window writes an audit entry `auth.failures_exceeded` (at most one per address
 * per window length).
 */
export async function countAuthFailure(app: App, ip: string | null, code: VerifyCode): Promise<void> {
  if (!COUNTED.has(code)) return;
  const now = app.clock.now();
  const result = await app.authFailureLimiter.consume(subjectOf(ip), [AUTH_FAILURE_LIMIT], 1, now);
  if (!result.allowed || result.states[0].remaining > 0) return;
  if (!(await app.authFailureLimiter.consume(subjectOf(ip), [AUDIT_LIMIT], 1, now)).allowed) return;
  app.logger.warn({ ip, failures: AUTH_FAILURE_LIMIT.limit, windowSeconds: AUTH_FAILURE_LIMIT.windowSeconds }, 'too many failed authentications from one address');
  const nobody: Actor = { keyId: null, organizationId: null, scopes: [], isPlatformAdmin: false, inPlatformOrganization: false, superseded: false, ip };
  try {
    await app.audit.record(app.dataSource.manager, nobody, {
      action: 'auth.failures_exceeded',
      targetType: 'ip',
      targetId: null,
      organizationId: null,
      metadata: { failures: AUTH_FAILURE_LIMIT.limit, windowSeconds: AUTH_FAILURE_LIMIT.windowSeconds },
    });
  } catch (error) {
    // The request is refused anyway (401); a database hiccup must not turn that into a 500.
    app.logger.warn({ err: error, ip }, 'could not write the auth.failures_exceeded audit entry');
  }
}
