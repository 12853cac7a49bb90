import type { Actor } from '../auth/actor';
import type { VerifyKey, VerifyKeyResult, VerifyKeyService } from '../auth/verify-key.service';
import type { UsageBuffer } from './usage-buffer';

/**
 * `verifyKey` with every outcome counted for UsageSummary.byOutcome. Who an outcome belongs to:
 * - a known key (VALID or any refusal naming it): that key and its organization;
 * - no known key (NOT_FOUND: unknown, malformed, deleted, or another organization's key): the
 *   verifying caller's organization, with no key. A tenant verifying keys sees them in its own
 *   organization; the platform's services verifying for everyone see them in the platform
 *   organization. An unknown key is never attributed to an organization it might belong to.
 * Only verifyKey is counted: keyward's own API calls are usage events (requests / errors by
 * operation), and every verification by code is in /metrics.
 */
export class CountedVerifyKeyService {
  constructor(private readonly inner: VerifyKeyService, private readonly buffer: UsageBuffer) {}

  async verify(actor: Actor, input: VerifyKey): Promise<VerifyKeyResult> {
    const result = await this.inner.verify(actor, input);
    const organizationId = result.organizationId ?? actor.organizationId;
    if (organizationId) this.buffer.countOutcome(organizationId, result.keyId, result.code);
    return result;
  }
}
