import { Coalescer } from './coalescer';
import { LivePubSub } from './pub-sub';
import { Topic } from './topics';
import type { ApiKeyEvents, ApiKeyEventType } from '../api-keys/api-key-events';
import type { QuotaStatus } from '../quotas/quota.entity';
import type { RateLimitEvents, RateLimitState } from '../rate-limits/rate-limiter';
import type { SessionEntity } from '../sessions/session.entity';
import type { ApiKeyEntity } from '../api-keys/api-key.entity';
import { apiKeyPayload, SessionPayload, sessionPayload } from './payloads';
import type { OrganizationEntity } from '../organizations/organization.entity';
import type { OrganizationEvents } from '../organizations/organization.service';
import type { SessionEvents } from '../sessions/session.service';
import type { VerificationEvents } from '../auth/verification-sinks';
import type { Clock } from '../clock';

/** Coalescing window: at most ~4 events per second per subject. */
export const COALESCE_MS = 250;

const band = (percent: number) => (percent >= 100 ? 2 : percent >= 80 ? 1 : 0);

/** A quota crossing 80 % or 100 % (either way, e.g. a period reset) goes out at once. */
export function quotaUrgent(previous: QuotaStatus | undefined, next: QuotaStatus): boolean {
  return !previous || band(previous.percentUsed) !== band(next.percentUsed) || next.used < previous.used;
}

/**
 * A window running out, having room again after running out, or starting afresh (a reset, or
 * every unit having left) goes out at once. Units leaving a sliding window one by one (remaining
 * and resetAt moving under steady traffic) are coalesced like any other change.
 */
export function rateLimitUrgent(previous: RateLimitState | undefined, next: RateLimitState): boolean {
  if (!previous) return true;
  const ranOut = next.remaining === 0 && previous.remaining !== 0;
  const roomAgain = next.remaining > 0 && previous.remaining === 0;
  const afresh = next.remaining === next.limit && previous.remaining < previous.limit;
  return ranOut || roomAgain || afresh;
}

/**
 * What services call when something clients watch has changed. Each state is computed once,
 * by the code that changed it, and published per subject (an organization or a key): every
 * subscriber of that subject receives the same payload, with no read per subscriber.
 */
export class LiveEvents implements ApiKeyEvents, OrganizationEvents, SessionEvents, RateLimitEvents, VerificationEvents {
  private readonly quotaStream: Coalescer<QuotaStatus>;
  private readonly rateLimitStream: Coalescer<RateLimitState>;
  private readonly sessionStream: Coalescer<SessionPayload>;

  constructor(private readonly pubSub: LivePubSub, private readonly clock: Clock) {
    this.quotaStream = new Coalescer((_key, status) => this.pubSub.publish(Topic.QUOTA_CHANGED, (status.apiKeyId ?? status.organizationId)!, status), quotaUrgent, COALESCE_MS);
    this.rateLimitStream = new Coalescer((_key, state) => this.pubSub.publish(Topic.RATE_LIMIT_CHANGED, state.apiKeyId, state), rateLimitUrgent, COALESCE_MS);
    this.sessionStream = new Coalescer(
      (_key, session) => this.pubSub.publish(Topic.SESSION_CHANGED, session.organizationId, session),
      (previous, next) => !previous || previous.status !== next.status,
      COALESCE_MS,
    );
  }

  quotas(statuses: readonly QuotaStatus[]): void {
    for (const status of statuses) {
      this.quotaStream.offer(`${status.apiKeyId ?? status.organizationId}|${status.meter}|${status.period}`, status);
    }
  }

  rateLimits(apiKeyId: string, states: ReadonlyArray<Omit<RateLimitState, 'apiKeyId'>>): void {
    for (const state of states) this.rateLimitStream.offer(`${apiKeyId}|${state.name}`, { ...state, apiKeyId });
  }

  session(session: SessionEntity): void {
    this.sessionStream.offer(session.id, sessionPayload(session));
  }

  apiKey(type: ApiKeyEventType, apiKey: ApiKeyEntity): void {
    this.pubSub.publish(Topic.API_KEY_CHANGED, apiKey.organizationId, { type, apiKey: apiKeyPayload(apiKey), at: this.clock.now() });
  }

  organization(organization: OrganizationEntity): void {
    this.pubSub.publish(Topic.ORGANIZATION_CHANGED, organization.id, { organizationId: organization.id, status: organization.status });
  }

  /** Sends coalesced states still waiting (shutdown). */
  flush(): void {
    this.quotaStream.flush();
    this.rateLimitStream.flush();
    this.sessionStream.flush();
  }
}
