import type { ApiKeyEntity, KeyEnvironment, RateLimitSpec } from '../api-keys/api-key.entity';
import type { SessionEntity, SessionStatus } from '../sessions/session.entity';
import type { QuotaStatus } from '../quotas/quota.entity';
import type { RateLimitState } from '../rate-limits/rate-limiter';
import type { ApiKeyEventType } from '../api-keys/api-key-events';

/**
 * What live events carry, in process and through Redis: explicit wire payloads, never entities.
 * A key's payload holds exactly what a client may read of it through the ApiKey type (no secret
 * hash, no internal chain fields); dates travel as ISO strings over Redis and are revived here,
 * by the payload's own type.
 */
export interface ApiKeyPayload {
  id: string;
  organizationId: string;
  name: string;
  environment: KeyEnvironment;
  hint: string;
  scopes: string[];
  ipAllowlist: string[];
  rateLimits: RateLimitSpec[];
  maxCostPerRequest: number | null;
  meta: Record<string, unknown> | null;
  ownerEmail: string | null;
  externalId: string | null;
  expiresAt: Date | null;
  disabled: boolean;
  revokedAt: Date | null;
  revokedReason: string | null;
  revokedBy: string | null;
  rotatedFromId: string | null;
  lastUsedAt: Date | null;
  requestCount: number;
  createdAt: Date;
}

export interface ApiKeyEvent {
  type: ApiKeyEventType;
  apiKey: ApiKeyPayload;
  at: Date;
}

export interface SessionPayload {
  id: string;
  organizationId: string;
  apiKeyId: string;
  status: SessionStatus;
  tokenLimit: number;
  tokensUsed: number;
  tokensHeld: number;
  requestCount: number;
  priceUsd: number;
  startedAt: Date;
  expiresAt: Date;
  endedAt: Date | null;
}

export function apiKeyPayload(key: ApiKeyEntity): ApiKeyPayload {
  return {
    id: key.id, organizationId: key.organizationId, name: key.name, environment: key.environment, hint: key.hint,
    scopes: [...key.scopes], ipAllowlist: [...key.ipAllowlist], rateLimits: key.rateLimits.map((limit) => ({ ...limit })),
    maxCostPerRequest: key.maxCostPerRequest, meta: key.meta, ownerEmail: key.ownerEmail, externalId: key.externalId,
    expiresAt: key.expiresAt, disabled: key.disabled, revokedAt: key.revokedAt, revokedReason: key.revokedReason,
    revokedBy: key.revokedBy, rotatedFromId: key.rotatedFromId, lastUsedAt: key.lastUsedAt, requestCount: key.requestCount,
    createdAt: key.createdAt,
  };
}

export function sessionPayload(session: SessionEntity): SessionPayload {
  return {
    id: session.id, organizationId: session.organizationId, apiKeyId: session.apiKeyId, status: session.status,
    tokenLimit: session.tokenLimit, tokensUsed: session.tokensUsed, tokensHeld: session.tokensHeld, requestCount: session.requestCount, priceUsd: session.priceUsd,
    startedAt: session.startedAt, expiresAt: session.expiresAt, endedAt: session.endedAt,
  };
}

/** A Date in process, an ISO string after Redis. */
function date(value: Date | string): Date;
function date(value: Date | string | null): Date | null;
function date(value: Date | string | null): Date | null {
  return value === null || value instanceof Date ? value : new Date(value);
}

export function reviveApiKeyEvent(event: ApiKeyEvent): ApiKeyEvent {
  const key = event.apiKey;
  return {
    type: event.type,
    at: date(event.at),
    apiKey: { ...key, expiresAt: date(key.expiresAt), revokedAt: date(key.revokedAt), lastUsedAt: date(key.lastUsedAt), createdAt: date(key.createdAt) },
  };
}

export function reviveSession(session: SessionPayload): SessionPayload {
  return { ...session, startedAt: date(session.startedAt), expiresAt: date(session.expiresAt), endedAt: date(session.endedAt) };
}

export function reviveQuotaStatus(status: QuotaStatus): QuotaStatus {
  return { ...status, resetsAt: date(status.resetsAt) };
}

export function reviveRateLimitState(state: RateLimitState): RateLimitState {
  return { ...state, resetAt: date(state.resetAt) };
}
