import { DataSource, EntityManager, In } from 'typeorm';
import { OrganizationEntity, OrganizationStatus } from './organization.entity';
import { Actor } from '../auth/actor';
import { assertNotSuperseded, assertOrganizationAccess, assertPlatformAdmin, canAccessOrganization } from '../auth/authorization';
import { validateRateLimits } from '../api-keys/api-key.service';
import type { RateLimitSpec } from '../api-keys/api-key.entity';
import { AuditLogService } from '../audit-log/audit-log.service';
import { QuotaEvents, QuotaService, QuotaSpec, validateQuotas } from '../quotas/quota.service';
import { Clock } from '../clock';
import { newId } from '../ids';
import { Transactions } from '../db/data-source';
import { KeyCache } from '../auth/key-cache';
import { BadUserInputError, ErrorCode, KeywardError, NotFoundError } from '../errors';
import { Page, pageRequest, toPage } from '../pagination';
import { LIMITS, requireInt, requireText } from '../validation';

export const DEFAULT_MAX_KEYS = 100;

export interface CreateOrganization {
  name: string;
  slug?: string | null;
  maxKeys?: number | null;
  quotas?: QuotaSpec[] | null;
  keyRateLimits?: RateLimitSpec[] | null;
}

/** `name` and `slug` are the organization's own; the rest is what the platform sets for it. */
export interface UpdateOrganization {
  name?: string | null;
  slug?: string | null;
  maxKeys?: number | null;
  /** Replaces all organization quotas. */
  quotas?: QuotaSpec[] | null;
  /** Replaces the windows every key of the organization obeys. */
  keyRateLimits?: RateLimitSpec[] | null;
}

const SLUG = /^[a-z0-9]+(-[a-z0-9]+)*$/;

function validSlug(value: unknown): string {
  const slug = requireText('slug', value, 64);
  if (!SLUG.test(slug)) throw new BadUserInputError('slug', 'must be lower-case letters, digits and single dashes, e.g. "acme-inc"');
  return slug;
}

export function slugify(name: string): string {
  const slug = name.normalize('NFKD').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 48).replace(/-+$/, '');
  return slug || 'org';
}

/** Who hears of organization changes (live subscribers, open sockets). */
export interface OrganizationEvents extends QuotaEvents {
  organization(organization: OrganizationEntity): void;
}

/** What OrganizationService is built from (app.ts wires it). */
export interface OrganizationServiceDependencies {
  dataSource: DataSource;
  transactions: Transactions;
  audit: AuditLogService;
  quotas: QuotaService;
  clock: Clock;
  keyCache: KeyCache;
  events: OrganizationEvents;
}

export class OrganizationService {
  constructor(private readonly deps: OrganizationServiceDependencies) {}

  async findById(id: string): Promise<OrganizationEntity | null> {
    return this.deps.dataSource.getRepository(OrganizationEntity).findOneBy({ id });
  }

  /** The organization the actor may see: its own by default, any for platform admins. */
  async get(actor: Actor, id?: string | null): Promise<OrganizationEntity> {
    const target = id ?? actor.organizationId;
    if (!target) throw new BadUserInputError('id', 'is required');
    assertOrganizationAccess(actor, target);
    const organization = await this.findById(target);
    if (!organization) throw new NotFoundError('Organization');
    return organization;
  }

  /** `get` of many organizations in one query, in the order of `ids`: each one, or the NotFoundError `get` would throw. */
  async getMany(actor: Actor, ids: readonly string[]): Promise<Array<OrganizationEntity | NotFoundError>> {
    const allowed = [...new Set(ids.filter((id) => canAccessOrganization(actor, id)))];
    const rows = allowed.length ? await this.deps.dataSource.getRepository(OrganizationEntity).findBy({ id: In(allowed) }) : [];
    const byId = new Map(rows.map((organization) => [organization.id, organization]));
    return ids.map((id) => byId.get(id) ?? new NotFoundError('Organization'));
  }

  async list(actor: Actor, first?: number | null, after?: string | null): Promise<Page<OrganizationEntity>> {
    const request = pageRequest(first, after);
    const query = this.deps.dataSource.getRepository(OrganizationEntity).createQueryBuilder('o');
    if (!actor.isPlatformAdmin) query.where('o.id = :own', { own: actor.organizationId });
    const totalCount = await query.clone().getCount();
    if (request.afterId) query.andWhere('o.id < :after', { after: request.afterId });
    const rows = await query.orderBy('o.id', 'DESC').limit(request.first + 1).getMany();
    return toPage(rows, request, totalCount);
  }

  async create(actor: Actor, input: CreateOrganization, options: { isPlatform?: boolean; walletAddress?: string; manager?: EntityManager } = {}): Promise<OrganizationEntity> {
    assertNotSuperseded(actor, 'create organizations');
    const name = requireText('name', input.name, LIMITS.nameLength);
    const maxKeys = input.maxKeys == null ? DEFAULT_MAX_KEYS : requireInt('maxKeys', input.maxKeys, 1, LIMITS.maxKeysPerOrganization);
    const quotas = validateQuotas('quotas', input.quotas ?? []);
    const keyRateLimits = validateRateLimits('keyRateLimits', input.keyRateLimits ?? [], 'organization');
    let slug: string | null = input.slug == null ? null : validSlug(input.slug);

    const work = async (manager: EntityManager) => {
      const repository = manager.getRepository(OrganizationEntity);
      if (slug !== null) {
        if (await repository.existsBy({ slug })) throw new BadUserInputError('slug', `"${slug}" is already taken`);
      } else {
        slug = slugify(name);
        // A generated slug never fails the create: add a short suffix when taken.
        while (await repository.existsBy({ slug })) slug = `${slugify(name).slice(0, 48)}-${newId('org').slice(-6)}`;
      }
      const now = this.deps.clock.now();
      const organization = repository.create({
        id: newId('org', now),
        name,
        slug,
        status: OrganizationStatus.ACTIVE,
        maxKeys,
        keyRateLimits,
        isPlatform: options.isPlatform ?? false,
        walletAddress: options.walletAddress ?? null,
        sessionsPurchased: 0,
        sessionsUsed: 0,
        createdAt: now,
        updatedAt: now,
      });
      await repository.insert(organization);
      await this.deps.quotas.replace(manager, { organizationId: organization.id }, quotas);
      await this.deps.audit.record(manager, actor, {
        action: 'organization.create',
        targetType: 'organization',
        targetId: organization.id,
        organizationId: organization.id,
        metadata: { name, slug, maxKeys, quotas, keyRateLimits },
      });
      return organization;
    };
    return options.manager ? work(options.manager) : this.deps.transactions.run(work);
  }

  async update(actor: Actor, id: string, input: UpdateOrganization): Promise<OrganizationEntity> {
    assertNotSuperseded(actor, 'change organizations');
    assertOrganizationAccess(actor, id);
    // An organization's own keys may rename it; its limits are the platform's to set.
    const platformSet = (['maxKeys', 'quotas', 'keyRateLimits'] as const).filter((field) => input[field] != null);
    if (platformSet.length > 0) assertPlatformAdmin(actor, `Changing ${platformSet.join(', ')}`);
    const name = input.name == null ? undefined : requireText('name', input.name, LIMITS.nameLength);
    const slug = input.slug == null ? undefined : validSlug(input.slug);
    const maxKeys = input.maxKeys == null ? undefined : requireInt('maxKeys', input.maxKeys, 1, LIMITS.maxKeysPerOrganization);
    const quotas = input.quotas == null ? undefined : validateQuotas('quotas', input.quotas);
    const keyRateLimits = input.keyRateLimits == null ? undefined : validateRateLimits('keyRateLimits', input.keyRateLimits, 'organization');

    const updated = await this.deps.transactions.run(async (manager) => {
      const repository = manager.getRepository(OrganizationEntity);
      const organization = await repository.findOneBy({ id });
      if (!organization) throw new NotFoundError('Organization');
      const changed: string[] = [];
      if (name !== undefined && name !== organization.name) { organization.name = name; changed.push('name'); }
      if (slug !== undefined && slug !== organization.slug) {
        if (await repository.existsBy({ slug })) throw new BadUserInputError('slug', `"${slug}" is already taken`);
        organization.slug = slug;
        changed.push('slug');
      }
      if (maxKeys !== undefined && maxKeys !== organization.maxKeys) { organization.maxKeys = maxKeys; changed.push('maxKeys'); }
      if (keyRateLimits !== undefined) { organization.keyRateLimits = keyRateLimits; changed.push('keyRateLimits'); }
      if (quotas !== undefined) {
        await this.deps.quotas.replace(manager, { organizationId: id }, quotas);
        changed.push('quotas');
      }
      organization.updatedAt = this.deps.clock.now();
      await repository.save(organization);
      await this.deps.audit.record(manager, actor, {
        action: 'organization.update',
        targetType: 'organization',
        targetId: id,
        organizationId: id,
        metadata: {
          changed, ...(name !== undefined && { name }), ...(slug !== undefined && { slug }), ...(maxKeys !== undefined && { maxKeys }),
          ...(quotas !== undefined && { quotas }), ...(keyRateLimits !== undefined && { keyRateLimits }),
        },
      });
      return organization;
    });
    this.deps.keyCache.invalidateOrganization(id);
    if (quotas !== undefined) this.deps.events.quotas(await this.deps.quotas.statuses({ organizationId: id }));
    return updated;
  }

  async setStatus(actor: Actor, id: string, status: OrganizationStatus): Promise<OrganizationEntity> {
    assertNotSuperseded(actor, 'change organizations');
    assertPlatformAdmin(actor, 'Suspending or activating an organization');
    const changed = await this.deps.transactions.run(async (manager) => {
      const repository = manager.getRepository(OrganizationEntity);
      const organization = await repository.findOneBy({ id });
      if (!organization) throw new NotFoundError('Organization');
      if (organization.isPlatform && status === OrganizationStatus.SUSPENDED) {
        throw new KeywardError(ErrorCode.BAD_USER_INPUT, 'status: the platform organization cannot be suspended (its keys run keyward)', { field: 'status' });
      }
      const previous = organization.status;
      organization.status = status;
      organization.updatedAt = this.deps.clock.now();
      await repository.save(organization);
      await this.deps.audit.record(manager, actor, {
        action: status === OrganizationStatus.SUSPENDED ? 'organization.suspend' : 'organization.activate',
        targetType: 'organization',
        targetId: id,
        organizationId: id,
        metadata: { previous, status },
      });
      return organization;
    });
    this.deps.keyCache.invalidateOrganization(id);
    this.deps.events.organization(changed);
    return changed;
  }
}
