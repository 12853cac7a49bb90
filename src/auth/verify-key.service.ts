import { isIP } from 'node:net';
import { Actor } from './actor';
import { Consumption, Credentials, KeyVerifier, VerificationOutcome } from './key-verifier';
import { normalizeIp } from './ip-allowlist';
import { VerifyCode } from './verify-code';
import { KeyEnvironment } from '../api-keys/api-key.entity';
import { QuotaStatus } from '../quotas/quota.service';
import { RateLimitState } from '../rate-limits/rate-limiter';
import { SessionEntity } from '../sessions/session.entity';
import { BadUserInputError } from '../errors';
import { LIMITS, optionalText, requireInt, validateScopes } from '../validation';

export interface VerifyKey {
  key: string;
  cost?: number | null;
  requiredScopes?: string[] | null;
  ip?: string | null;
  operation?: string | null;
  requireSession?: boolean | null;
  recordEvent?: boolean | null;
}

export interface VerifyKeyResult {
  valid: boolean;
  code: VerifyCode;
  keyId: string | null;
  organizationId: string | null;
  environment: KeyEnvironment | null;
  scopes: string[] | null;
  expiresAt: Date | null;
  rateLimits: RateLimitState[];
  quotas: QuotaStatus[];
  session: SessionEntity | null;
  meta: Record<string, unknown> | null;
}

/** The `verifyKey` mutation: checks the input, runs the pipeline for the presented key, shapes the result. */
/** Where verifyKey outcomes are counted (the usage buffer, flushed with usage). */
export interface OutcomeCounter {
  countOutcome(organizationId: string, apiKeyId: string | null, code: VerifyCode): void;
}

export class VerifyKeyService {
  constructor(private readonly verifier: KeyVerifier, private readonly outcomes: OutcomeCounter) {}

  async verify(actor: Actor, input: VerifyKey): Promise<VerifyKeyResult> {
    const { credentials, consumption } = this.request(actor, input);
    const outcome = await this.verifier.verify({ ...credentials, ...consumption });
    this.count(actor, outcome);
    return this.result(outcome);
  }

  /** The checked input as the pipeline takes it (also reserveUsage's). */
  request(actor: Actor, input: VerifyKey): { credentials: Credentials; consumption: Consumption } {
    if (typeof input.key !== 'string') throw new BadUserInputError('key', 'must be a string');
    const cost = requireInt('cost', input.cost ?? 1, 1, LIMITS.maxCostPerRequest);
    const requiredScopes = validateScopes('requiredScopes', input.requiredScopes ?? []);
    const operation = optionalText('operation', input.operation, 200) ?? null;
    let ip: string | null = null;
    if (input.ip != null) {
      ip = normalizeIp(input.ip);
      if (isIP(ip) === 0) throw new BadUserInputError('ip', `"${String(input.ip).slice(0, 60)}" is not an IP address`);
    }
    return {
      credentials: {
        secret: input.key,
        ip,
        // Platform-organization keys verify keys of every organization; others only their own.
        organizationId: actor.inPlatformOrganization ? null : actor.organizationId,
      },
      consumption: {
        scopeRequirements: requiredScopes.map((scope) => [scope]),
        cost,
        requireSession: input.requireSession ?? false,
        operation,
        recordUsageEvent: input.recordEvent ?? true,
      },
    };
  }

  /** An outcome as verifyKey answers it. */
  result(outcome: VerificationOutcome): VerifyKeyResult {
    const key = outcome.key;
    return {
      valid: outcome.valid,
      code: outcome.code,
      keyId: key?.id ?? null,
      organizationId: key?.organizationId ?? null,
      environment: key?.environment ?? null,
      scopes: key?.scopes ?? null,
      expiresAt: key?.expiresAt ?? null,
      rateLimits: key ? outcome.rateLimits.map((state) => ({ apiKeyId: key.id, ...state })) : [],
      quotas: outcome.quotas,
      session: outcome.session,
      meta: key?.meta ?? null,
    };
  }

  /**
   * Every outcome is counted for UsageSummary.byOutcome, and belongs to: a known key (VALID or
   * any refusal naming it) — that key and its organization; no known key (NOT_FOUND: unknown,
   * malformed, deleted, or another organization's) — the verifying caller's organization, with
   * no key, so an unknown key is never attributed to an organization it might belong to.
   * Only verifyKey is counted: keyward's own API calls are usage events, and every
   * verification by code is in /metrics.
   */
  count(actor: Actor, outcome: VerificationOutcome): void {
    const owner = outcome.key?.organizationId ?? actor.organizationId;
    if (owner) this.outcomes.countOutcome(owner, outcome.key?.id ?? null, outcome.code);
  }
}
