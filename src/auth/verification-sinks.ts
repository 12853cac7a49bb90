import type { QuotaStatus } from '../quotas/quota.entity';
import type { RateLimitWindowState } from '../rate-limits/rate-limiter';
import type { RateLimitRefusal, UsageEventInput } from '../usage/usage-buffer';
import type { QuotaAlerts } from '../quotas/quota-alerts';

/**
 * What the verification pipeline tells others, through interfaces it owns: the usage buffer (a
 * store beneath it) and the live events (a service above it) implement them, so the pipeline is
 * tested and wired without either.
 */

/** Analytics written later in batches (the usage buffer): never quota counters. */
export interface VerificationRecorder {
  /** Step 11: a verified use of a key (lastUsedAt, requestCount). */
  touchKey(apiKeyId: string): void;
  record(event: UsageEventInput): void;
  refused(refusal: RateLimitRefusal): void;
}

/** States that moved, for live subscribers (coalesced above). */
export interface VerificationEvents {
  rateLimits(apiKeyId: string, states: readonly RateLimitWindowState[]): void;
  quotas(statuses: readonly QuotaStatus[]): void;
}

/**
 * Alerts for backends (the webhook outbox, above): quota thresholds and exhaustion (QuotaAlerts),
 * and windows running out. Nothing is computed or written for an organization nobody listens to.
 */
export interface VerificationAlerts extends QuotaAlerts {
  /**
   * Windows this admitted request left with 0 remaining (`subject`: the key's lineage, whose
   * windows they are): RATE_LIMIT_EXHAUSTED, once per window length. Never throws.
   */
  windowsRanOut(key: { id: string; organizationId: string }, subject: string, windows: readonly RateLimitWindowState[], now: Date): Promise<void>;
}
