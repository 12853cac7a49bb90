import { DataSource, EntityManager, IsNull } from 'typeorm';
import { ApiKeyEntity, ApiKeyStatus, KeyEnvironment, RateLimitSpec } from './api-key.entity';
import { generateSecret, hashSecret, hintFor } from '../auth/key-format';
import { OrganizationEntity } from '../organizations/organization.entity';
import { lockOrganization } from '../organizations/organization-lock';
import { Actor } from '../auth/actor';
import {
  assertDominates, assertGrantable, assertNotSuperseded, assertOrganizationAccess, canAccessOrganization, platformScopesIn,
} from '../auth/authorization';
import { isValidScope, PRESET_SCOPES, ScopePreset } from '../auth/scopes';
import { AuditLogService } from '../audit-log/audit-log.service';
import { QuotaService, QuotaSpec, validateQuotas } from '../quotas/quota.service';
import { Clock } from '../clock';
import { newId } from '../ids';
import { Transactions } from '../db/data-source';
import { ORGANIZATION_WINDOW_PREFIX } from '../rate-limits/effective-limits';
import { KeyCache } from '../auth/key-cache';
import { ApiKeyAlerts, ApiKeyEvents, ApiKeyEventType } from './api-key-events';
import { BadUserInputError, ErrorCode, KeywardError, NotFoundError } from '../errors';
import { Page, pageRequest, toPage } from '../pagination';
import {
  LIMITS, optionalEmail, optionalText, requireExpiry, requireInt, requireText, requireUnique,
  validateIpAllowlist, validateMeta, validateScopes,
} from '../validation';

/** Applied when a key is created without `rateLimits`; an explicit list (even empty) replaces them. */
export const DEFAULT_RATE_LIMITS: readonly RateLimitSpec[] = [
  { name: 'per-minute', limit: 60, windowSeconds: 60 },
  { name: 'per-hour', limit: 1000, windowSeconds: 3600 },
];

/** What a key's create and update both set. */
interface ApiKeySettings {
  ipAllowlist?: string[] | null;
  rateLimits?: RateLimitSpec[] | null;
  quotas?: QuotaSpec[] | null;
  maxCostPerRequest?: number | null;
  meta?: Record<string, unknown> | null;
  ownerEmail?: string | null;
  externalId?: string | null;
}

export interface CreateApiKey extends ApiKeySettings {
  organizationId?: string | null;
  name: string;
  environment?: KeyEnvironment | null;
  scopes?: string[] | null;
  preset?: ScopePreset | null;
  expiresInDays?: number | null;
  expiresAt?: Date | null;
}

/** Absent (undefined) leaves a field alone; null clears the nullable ones. */
export interface UpdateApiKey extends ApiKeySettings {
  name?: string | null;
  scopes?: string[] | null;
  expiresAt?: Date | null;
}

export interface ApiKeyFilter {
  organizationId?: string | null;
  status?: ApiKeyStatus | null;
  environment?: KeyEnvironment | null;
  /** Case-insensitive match on name, ownerEmail, externalId or hint. */
  search?: string | null;
}

export interface CreatedApiKey {
  apiKey: ApiKeyEntity;
  /** Shown once; only its HMAC is stored. */
  secret: string;
}

export interface RotatedApiKey extends CreatedApiKey {
  previousKeyExpiresAt: Date;
}

export function validateRateLimits(field: string, limits: readonly RateLimitSpec[], owner: 'key' | 'organization' = 'key'): RateLimitSpec[] {
  if (limits.length > LIMITS.rateLimitsPerKey) {
    throw new BadUserInputError(field, `at most ${LIMITS.rateLimitsPerKey} rate limits (got ${limits.length})`);
  }
  const validated = limits.map((limit, index) => ({
    name: requireText(`${field}[${index}].name`, limit.name, 64),
    limit: requireInt(`${field}[${index}].limit`, limit.limit, 1, LIMITS.maxRateLimit),
    windowSeconds: requireInt(`${field}[${index}].windowSeconds`, limit.windowSeconds, 1, LIMITS.maxWindowSeconds),
  }));
  if (owner === 'key') {
    const reserved = validated.findIndex((limit) => limit.name.startsWith(ORGANIZATION_WINDOW_PREFIX));
    if (reserved >= 0) throw new BadUserInputError(`${field}[${reserved}].name`, `names starting with "${ORGANIZATION_WINDOW_PREFIX}" are reserved for the organization's keyRateLimits`);
  }
  requireUnique(field, validated.map((limit) => limit.name));
  return validated;
}

/** Escape LIKE wildcards; `!` is the escape character on both SQLite and MySQL. */
function likePattern(search: string): string {
  return `%${search.toLowerCase().replace(/[!%_]/g, (c) => `!${c}`)}%`;
}

/** Scopes a create asks for: explicit ones plus a preset's; READ when neither is given. */
function requestedScopes(input: CreateApiKey): string[] {
  return [
    ...(input.scopes ?? []),
    ...(input.preset ? PRESET_SCOPES[input.preset] : []),
    ...(input.scopes == null && input.preset == null ? PRESET_SCOPES[ScopePreset.READ] : []),
  ];
}

type NewKeySettings = Pick<ApiKeyEntity, 'name' | 'environment' | 'scopes' | 'expiresAt' | 'ipAllowlist' | 'rateLimits' | 'maxCostPerRequest' | 'meta' | 'ownerEmail' | 'externalId'> & {
  quotas: QuotaSpec[];
};

/** The input of a create, checked field by field (BAD_USER_INPUT naming the field). */
function validNewKey(input: CreateApiKey, requested: readonly string[], now: Date): NewKeySettings {
  const scopes = validateScopes('scopes', requested);
  const name = requireText('name', input.name, LIMITS.nameLength);
  if (input.expiresInDays != null && input.expiresAt != null) {
    throw new BadUserInputError('expiresAt', 'give either expiresAt or expiresInDays, not both');
  }
  let expiresAt: Date | null = null;
  if (input.expiresInDays != null) {
    const days = requireInt('expiresInDays', input.expiresInDays, 1, LIMITS.maxExpiresInDays);
    expiresAt = new Date(now.getTime() + days * 86_400_000);
  } else if (input.expiresAt != null) {
    expiresAt = requireExpiry('expiresAt', input.expiresAt, now);
  }
  return {
    name,
    environment: input.environment ?? KeyEnvironment.LIVE,
    scopes,
    expiresAt,
    ipAllowlist: validateIpAllowlist('ipAllowlist', input.ipAllowlist ?? []),
    rateLimits: input.rateLimits == null ? [...DEFAULT_RATE_LIMITS] : validateRateLimits('rateLimits', input.rateLimits),
    quotas: validateQuotas('quotas', input.quotas ?? []),
    maxCostPerRequest: input.maxCostPerRequest == null ? null : requireInt('maxCostPerRequest', input.maxCostPerRequest, 1, LIMITS.maxCostPerRequest),
    meta: validateMeta('meta', input.meta) ?? null,
    ownerEmail: optionalEmail('ownerEmail', input.ownerEmail) ?? null,
    externalId: optionalText('externalId', input.externalId, LIMITS.externalIdLength) ?? null,
  };
}

/** What ApiKeyService is built from (app.ts wires it). */
export interface ApiKeyServiceDependencies {
  dataSource: DataSource;
  transactions: Transactions;
  audit: AuditLogService;
  quotas: QuotaService;
  clock: Clock;
  pepper: string;
  keyCache: KeyCache;
  events: ApiKeyEvents;
  /** Revocations and rotations, into the webhook outbox inside their transaction. */
  alerts: ApiKeyAlerts;
}

export class ApiKeyService {
  constructor(private readonly deps: ApiKeyServiceDependencies) {}

  /**
   * Runs a change; once it committed, drops the touched keys from the verification cache and
   * tells live subscribers (and the socket registry, which closes sockets of keys that stop working).
   */
  private async changing<T>(work: (tx: EntityManager) => Promise<T>, event: (result: T) => { type: ApiKeyEventType; key: ApiKeyEntity; touched: string[] }): Promise<T> {
    const result = await this.deps.transactions.run(work);
    const { type, key, touched } = event(result);
    this.deps.keyCache.invalidateKeys(touched);
    this.deps.events.apiKey(type, key);
    return result;
  }

  /** A key the actor may see; another organization's key is NOT_FOUND, never data. */
  async get(actor: Actor, id: string, manager: EntityManager = this.deps.dataSource.manager): Promise<ApiKeyEntity> {
    const key = await manager.getRepository(ApiKeyEntity).findOneBy({ id, deletedAt: IsNull() });
    if (!key || !canAccessOrganization(actor, key.organizationId)) throw new NotFoundError('API key');
    return key;
  }

  async list(actor: Actor, filter: ApiKeyFilter = {}, first?: number | null, after?: string | null): Promise<Page<ApiKeyEntity>> {
    const request = pageRequest(first, after);
    const organizationId = filter.organizationId ?? (actor.isPlatformAdmin ? null : actor.organizationId);
    if (organizationId) assertOrganizationAccess(actor, organizationId);
    const now = this.deps.clock.now();

    const query = this.deps.dataSource.getRepository(ApiKeyEntity).createQueryBuilder('k').where('k.deleted_at IS NULL');
    if (organizationId) query.andWhere('k.organization_id = :organizationId', { organizationId });
    if (filter.environment) query.andWhere('k.environment = :environment', { environment: filter.environment });
    switch (filter.status) {
      case ApiKeyStatus.REVOKED:
        query.andWhere('k.revoked_at IS NOT NULL');
        break;
      case ApiKeyStatus.DISABLED:
        query.andWhere('k.revoked_at IS NULL AND k.disabled = 1');
        break;
      case ApiKeyStatus.EXPIRED:
        query.andWhere('k.revoked_at IS NULL AND k.disabled = 0 AND k.expires_at IS NOT NULL AND k.expires_at <= :now', { now });
        break;
      case ApiKeyStatus.ACTIVE:
        query.andWhere('k.revoked_at IS NULL AND k.disabled = 0 AND (k.expires_at IS NULL OR k.expires_at > :now)', { now });
        break;
    }
    if (filter.search != null && filter.search.trim() !== '') {
      const search = requireText('filter.search', filter.search, LIMITS.nameLength);
      query.andWhere(
        "(LOWER(k.name) LIKE :q ESCAPE '!' OR LOWER(k.owner_email) LIKE :q ESCAPE '!' OR LOWER(k.external_id) LIKE :q ESCAPE '!' OR LOWER(k.hint) LIKE :q ESCAPE '!')",
        { q: likePattern(search) },
      );
    }
    const totalCount = await query.clone().getCount();
    if (request.afterId) query.andWhere('k.id < :after', { after: request.afterId });
    const rows = await query.orderBy('k.id', 'DESC').limit(request.first + 1).getMany();
    return toPage(rows, request, totalCount);
  }

  /**
   * A new key and its secret (shown once). Checked in order: the caller (superseded, tenancy,
   * escalation), then the input, then — in the transaction, with the organization locked —
   * platform-only scopes and the organization's key limit.
   */
  async create(actor: Actor, input: CreateApiKey, manager?: EntityManager): Promise<CreatedApiKey> {
    assertNotSuperseded(actor, 'create keys');
    const organizationId = input.organizationId ?? actor.organizationId;
    if (!organizationId) throw new BadUserInputError('organizationId', 'is required');
    assertOrganizationAccess(actor, organizationId);
    const requested = requestedScopes(input);
    // Escalation before input: a malformed scope is bad input, a well-formed one beyond the caller is refused.
    assertGrantable(actor, requested.filter((scope) => typeof scope === 'string' && isValidScope(scope)));
    const now = this.deps.clock.now();
    const settings = validNewKey(input, requested, now);

    const work = async (tx: EntityManager): Promise<CreatedApiKey> => {
      const organization = await lockOrganization(tx, organizationId);
      assertNoPlatformScopes(organization, settings.scopes);
      await this.assertRoomForKey(tx, organization);
      const secret = generateSecret(settings.environment);
      const key = await this.insertKey(tx, organizationId, settings, secret, now);
      await this.deps.audit.record(tx, actor, {
        action: 'api_key.create',
        targetType: 'api_key',
        targetId: key.id,
        organizationId,
        metadata: { name: key.name, environment: key.environment, scopes: key.scopes, hint: key.hint, expiresAt: key.expiresAt?.toISOString() ?? null },
      });
      return { apiKey: key, secret };
    };
    if (manager) return work(manager); // the caller's transaction (init) publishes nothing
    const created = await this.deps.transactions.run(work);
    this.deps.events.apiKey(ApiKeyEventType.CREATED, created.apiKey);
    return created;
  }

  /** `maxKeys` counts keys that are neither deleted, revoked nor replaced by rotation. */
  private async assertRoomForKey(tx: EntityManager, organization: OrganizationEntity): Promise<void> {
    const active = await tx.getRepository(ApiKeyEntity).createQueryBuilder('k')
      .where('k.organization_id = :organizationId AND k.deleted_at IS NULL AND k.revoked_at IS NULL AND k.replaced_by_id IS NULL', { organizationId: organization.id })
      .getCount();
    if (active >= organization.maxKeys) {
      throw new KeywardError(ErrorCode.KEY_LIMIT_EXCEEDED, `The organization already has ${active} of its ${organization.maxKeys} keys; revoke or delete one first`);
    }
  }

  private async insertKey(tx: EntityManager, organizationId: string, settings: NewKeySettings, secret: string, now: Date): Promise<ApiKeyEntity> {
    const { quotas, ...columns } = settings;
    const id = newId('key', now);
    const key = tx.getRepository(ApiKeyEntity).create({
      ...columns,
      id,
      lineageId: id,
      organizationId,
      secretHash: hashSecret(this.deps.pepper, secret),
      hint: hintFor(secret),
      disabled: false,
      revokedAt: null,
      revokedReason: null,
      revokedBy: null,
      rotatedFromId: null,
      replacedById: null,
      deletedAt: null,
      lastUsedAt: null,
      requestCount: 0,
      createdAt: now,
      updatedAt: now,
    });
    await tx.insert(ApiKeyEntity, key);
    await this.deps.quotas.replace(tx, { apiKeyId: key.id }, quotas);
    return key;
  }

  /** For keys created inside another service's transaction: tell live subscribers once it committed. */
  announceCreated(key: ApiKeyEntity): void {
    this.deps.events.apiKey(ApiKeyEventType.CREATED, key);
  }

  async update(actor: Actor, id: string, input: UpdateApiKey): Promise<ApiKeyEntity> {
    assertNotSuperseded(actor, 'change keys');
    const now = this.deps.clock.now();
    return this.changing(async (tx) => {
      const key = await this.getChangeable(actor, id, tx, 'update');
      if (input.scopes != null) assertGrantable(actor, input.scopes.filter((scope) => typeof scope === 'string' && isValidScope(scope)));
      const { changes, quotas } = this.validUpdate(key, input, now);
      if (changes.scopes) {
        const organization = await tx.getRepository(OrganizationEntity).findOneByOrFail({ id: key.organizationId });
        assertNoPlatformScopes(organization, changes.scopes);
      }
      Object.assign(key, changes, { updatedAt: now });
      if (quotas !== undefined) await this.deps.quotas.replace(tx, { apiKeyId: id }, quotas);
      return this.saveAudited(tx, actor, key, 'api_key.update', { changed: [...Object.keys(changes), ...(quotas ? ['quotas'] : [])].sort() });
    }, (key) => ({ type: ApiKeyEventType.UPDATED, key, touched: [id] }));
  }

  /** The input of an update, checked field by field (after tenancy, dominance and escalation). */
  private validUpdate(key: ApiKeyEntity, input: UpdateApiKey, now: Date): { changes: Partial<ApiKeyEntity>; quotas: QuotaSpec[] | undefined } {
    const changes: Partial<ApiKeyEntity> = {};
    if (input.name != null) changes.name = requireText('name', input.name, LIMITS.nameLength);
    if (input.scopes != null) changes.scopes = validateScopes('scopes', input.scopes);
    if (input.expiresAt !== undefined) {
      // A rotated-out secret ends when its grace ends; nothing may move that (or revive it).
      if (key.replacedById) {
        throw new BadUserInputError('expiresAt', `this key was rotated (replaced by ${key.replacedById}); its old secret stops at its previousKeyExpiresAt (${key.expiresAt?.toISOString()}), which cannot be moved`);
      }
      changes.expiresAt = input.expiresAt === null ? null : requireExpiry('expiresAt', input.expiresAt, now);
    }
    if (input.ipAllowlist != null) changes.ipAllowlist = validateIpAllowlist('ipAllowlist', input.ipAllowlist);
    if (input.rateLimits != null) changes.rateLimits = validateRateLimits('rateLimits', input.rateLimits);
    if (input.maxCostPerRequest !== undefined) {
      changes.maxCostPerRequest = input.maxCostPerRequest === null ? null : requireInt('maxCostPerRequest', input.maxCostPerRequest, 1, LIMITS.maxCostPerRequest);
    }
    if (input.meta !== undefined) changes.meta = validateMeta('meta', input.meta) ?? null;
    if (input.ownerEmail !== undefined) changes.ownerEmail = optionalEmail('ownerEmail', input.ownerEmail) ?? null;
    if (input.externalId !== undefined) changes.externalId = optionalText('externalId', input.externalId, LIMITS.externalIdLength) ?? null;
    const quotas = input.quotas == null ? undefined : validateQuotas('quotas', input.quotas);
    return { changes, quotas };
  }

  async setEnabled(actor: Actor, id: string, enabled: boolean): Promise<ApiKeyEntity> {
    assertNotSuperseded(actor, 'change keys');
    return this.changing(async (tx) => {
      const key = await this.getChangeable(actor, id, tx, enabled ? 'enable' : 'disable');
      key.disabled = !enabled;
      key.updatedAt = this.deps.clock.now();
      return this.saveAudited(tx, actor, key, enabled ? 'api_key.enable' : 'api_key.disable');
    }, (key) => ({ type: enabled ? ApiKeyEventType.ENABLED : ApiKeyEventType.DISABLED, key, touched: [id] }));
  }

  async revoke(actor: Actor, id: string, reason: string): Promise<ApiKeyEntity> {
    assertNotSuperseded(actor, 'change keys');
    return this.changing(async (tx) => {
      const key = await this.getChangeable(actor, id, tx, 'revoke');
      const why = requireText('reason', reason, LIMITS.reasonLength);
      const now = this.deps.clock.now();
      key.revokedAt = now;
      key.revokedReason = why;
      key.revokedBy = actor.keyId;
      key.updatedAt = now;
      await this.saveAudited(tx, actor, key, 'api_key.revoke', { reason: why });
      await this.deps.alerts.keyRevoked(tx, key);
      return key;
    }, (key) => ({ type: ApiKeyEventType.REVOKED, key, touched: [id] }));
  }

  /**
   * A new secret with the same settings, counters and quotas. The old secret keeps working
   * for `gracePeriodSeconds` (0: not at all), then is refused as EXPIRED.
   */
  async rotate(actor: Actor, id: string, gracePeriodSeconds = 0): Promise<RotatedApiKey> {
    assertNotSuperseded(actor, 'change keys');
    return this.changing(async (tx) => {
      const old = await this.getChangeable(actor, id, tx, 'rotate');
      const grace = requireInt('gracePeriodSeconds', gracePeriodSeconds ?? 0, 0, LIMITS.maxGracePeriodSeconds);
      if (old.replacedById) throw new BadUserInputError('id', `this key was already rotated; rotate ${old.replacedById} instead`);
      const now = this.deps.clock.now();
      const graceEnd = new Date(now.getTime() + grace * 1000);
      const previousKeyExpiresAt = old.expiresAt && old.expiresAt < graceEnd ? old.expiresAt : graceEnd;
      const secret = generateSecret(old.environment);
      const fresh = tx.getRepository(ApiKeyEntity).create({
        ...old,
        id: newId('key', now),
        lineageId: old.lineageId ?? old.id,
        secretHash: hashSecret(this.deps.pepper, secret),
        hint: hintFor(secret),
        rotatedFromId: old.id,
        replacedById: null,
        createdAt: now,
        updatedAt: now,
      });
      old.replacedById = fresh.id;
      old.expiresAt = previousKeyExpiresAt;
      old.updatedAt = now;
      await tx.save(old);
      await tx.insert(ApiKeyEntity, fresh);
      await this.deps.quotas.transfer(tx, old.id, fresh.id);
      await this.deps.audit.record(tx, actor, {
        action: 'api_key.rotate',
        targetType: 'api_key',
        targetId: old.id,
        organizationId: old.organizationId,
        metadata: { newKeyId: fresh.id, hint: fresh.hint, gracePeriodSeconds: grace, previousKeyExpiresAt: previousKeyExpiresAt.toISOString() },
      });
      await this.deps.alerts.keyRotated(tx, fresh, old.id, previousKeyExpiresAt);
      return { apiKey: fresh, secret, previousKeyExpiresAt };
    }, (rotated) => ({ type: ApiKeyEventType.ROTATED, key: rotated.apiKey, touched: [id, rotated.apiKey.id] }));
  }

  /** Soft delete: the key stops working and leaves listings; its usage history stays. */
  async delete(actor: Actor, id: string): Promise<boolean> {
    assertNotSuperseded(actor, 'change keys');
    const deleted = await this.changing(async (tx) => {
      const key = await this.get(actor, id, tx);
      assertDominates(actor, key, 'delete');
      const now = this.deps.clock.now();
      key.deletedAt = now;
      key.updatedAt = now;
      return this.saveAudited(tx, actor, key, 'api_key.delete');
    }, (key) => ({ type: ApiKeyEventType.DELETED, key, touched: [id] }));
    return Boolean(deleted);
  }

  /** Writes a changed key and its audit entry, in the change's transaction. */
  private async saveAudited(tx: EntityManager, actor: Actor, key: ApiKeyEntity, action: string, metadata?: Record<string, unknown>): Promise<ApiKeyEntity> {
    await tx.save(key);
    await this.deps.audit.record(tx, actor, { action, targetType: 'api_key', targetId: key.id, organizationId: key.organizationId, ...(metadata && { metadata }) });
    return key;
  }

  /**
   * A key the actor may change: tenancy (NOT_FOUND), dominance (FORBIDDEN), and revoked keys
   * are final — nothing about them changes any more.
   */
  private async getChangeable(actor: Actor, id: string, tx: EntityManager, what: string): Promise<ApiKeyEntity> {
    const key = await this.get(actor, id, tx);
    assertDominates(actor, key, what);
    if (key.revokedAt) throw new BadUserInputError('id', 'this key is revoked and can no longer be changed');
    return key;
  }
}

/** `platform:` scopes exist only in the platform organization (a customer's `*` never reaches them). */
function assertNoPlatformScopes(organization: OrganizationEntity, scopes: readonly string[]): void {
  const platformOnly = organization.isPlatform ? [] : platformScopesIn(scopes);
  if (platformOnly.length > 0) {
    throw new BadUserInputError('scopes', `${platformOnly.join(', ')} can only be granted to keys of the platform organization`);
  }
}
