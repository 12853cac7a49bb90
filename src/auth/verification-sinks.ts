import type { QuotaStatus } from '../quotas/quotas.service';
import type { RateLimitWindowState } from '../rate-limits/rate-limiter';

/**
 * What the verification pipeline tells the layers above it, through interfaces it owns: the
 * pipeline never imports the usage buffer or the live events it feeds (they implement these).
 */

/** A usage event: one GraphQL operation, verified request or recordUsage. */
export interface UsageEventInput {
  organizationId: string;
  apiKeyId: string;
  sessionId?: string | null;
  operation: string;
  statusCode?: number | null;
  isError: boolean;
  latencyMs?: number | null;
  tokens?: number;
  costUsd?: number;
}

/** A request a rate-limit window refused, for the key's rate-limit log. */
export interface RateLimitRefusal {
  apiKeyId: string;
  organizationId: string;
  name: string;
  limit: number;
  operation: string | null;
  ip: string | null;
}

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
