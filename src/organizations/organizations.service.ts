import { DataSource, EntityManager } from 'typeorm';
import { OrganizationEntity, OrganizationStatus } from './organization.entity';
import { Actor } from '../auth/actor';
import { assertOrganizationAccess } from '../auth/tenancy';
import { PLATFORM_ADMIN } from '../auth/scopes';
import { AuditLogService } from '../audit-log/audit-log.service';
import { QuotasService, QuotaSpec, validateQuotas } from '../quotas/quotas.service';
import { Clock } from '../clock';
import { newId } from '../ids';
import { Transactions } from '../db/data-source';
import { KeyCache } from '../auth/key-cache';
import type { LiveEvents } from '../live/live-events';
import { BadUserInputError, ErrorCode, InsufficientScopeError, KeywardError, NotFoundError } from '../errors';
import { Page, pageRequest, toPage } from '../pagination';
import { LIMITS, requireInt, requireText } from '../validation';

export const DEFAULT_MAX_KEYS = 100;

export interface CreateOrganization {
  name: string;
  slug?: string | null;
  maxKeys?: number | null;
  quotas?: QuotaSpec[] | null;
}

export interface UpdateOrganization {
  name?: string | null;
  maxKeys?: number | null;
  /** Replaces all organization quotas. */
  quotas?: QuotaSpec[] | null;
}

const SLUG = /^[a-z0-9]+(-[a-z0-9]+)*$/;

export function slugify(name: string): string {
  const slug = name.normalize('NFKD').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 48).replace(/-+$/, '');
  return slug || 'org';
}

export class OrganizationsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly transactions: Transactions,
    private readonly audit: AuditLogService,
    private readonly quotas: QuotasService,
    private readonly clock: Clock,
    private readonly keyCache: KeyCache,
    private readonly live: LiveEvents,
  ) {}

  async findById(id: string): Promise<OrganizationEntity | null> {
    return this.dataSource.getRepository(OrganizationEntity).findOneBy({ id });
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

  async list(actor: Actor, first?: number | null, after?: string | null): Promise<Page<OrganizationEntity>> {
    const request = pageRequest(first, after);
    const query = this.dataSource.getRepository(OrganizationEntity).createQueryBuilder('o');
    if (!actor.isPlatformAdmin) query.where('o.id = :own', { own: actor.organizationId });
    const totalCount = await query.clone().getCount();
    if (request.afterId) query.andWhere('o.id < :after', { after: request.afterId });
    const rows = await query.orderBy('o.id', 'DESC').limit(request.first + 1).getMany();
    return toPage(rows, request, totalCount);
  }

  async create(actor: Actor, input: CreateOrganization, options: { isPlatform?: boolean; walletAddress?: string; manager?: EntityManager } = {}): Promise<OrganizationEntity> {
    const name = requireText('name', input.name, LIMITS.nameLength);
    const maxKeys = input.maxKeys == null ? DEFAULT_MAX_KEYS : requireInt('maxKeys', input.maxKeys, 1, LIMITS.maxKeysPerOrganization);
    const quotas = validateQuotas('quotas', input.quotas ?? []);
    let slug: string | null = null;
    if (input.slug != null) {
      slug = requireText('slug', input.slug, 64);
      if (!SLUG.test(slug)) throw new BadUserInputError('slug', 'must be lower-case letters, digits and single dashes, e.g. "acme-inc"');
    }

    const work = async (manager: EntityManager) => {
      const repository = manager.getRepository(OrganizationEntity);
      if (slug !== null) {
        if (await repository.existsBy({ slug })) throw new BadUserInputError('slug', `"${slug}" is already taken`);
      } else {
        slug = slugify(name);
        // A generated slug never fails the create: add a short suffix when taken.
        while (await repository.existsBy({ slug })) slug = `${slugify(name).slice(0, 48)}-${newId('org').slice(-6)}`;
      }
      const now = this.clock.now();
      const organization = repository.create({
        id: newId('org', now),
        name,
        slug,
        status: OrganizationStatus.ACTIVE,
        maxKeys,
        isPlatform: options.isPlatform ?? false,
        walletAddress: options.walletAddress ?? null,
        sessionsPurchased: 0,
        sessionsUsed: 0,
        createdAt: now,
        updatedAt: now,
      });
      await repository.insert(organization);
      await this.quotas.replace(manager, { organizationId: organization.id }, quotas);
      await this.audit.record(manager, actor, {
        action: 'organization.create',
        targetType: 'organization',
        targetId: organization.id,
        organizationId: organization.id,
        metadata: { name, slug, maxKeys, quotas },
      });
      return organization;
    };
    return options.manager ? work(options.manager) : this.transactions.run(work);
  }

  async update(actor: Actor, id: string, input: UpdateOrganization): Promise<OrganizationEntity> {
    assertOrganizationAccess(actor, id);
    // An organization's own keys may rename it; its limits are the platform's to set.
    if ((input.maxKeys != null || input.quotas != null) && !actor.isPlatformAdmin) {
      throw new InsufficientScopeError(`Changing maxKeys or quotas needs ${PLATFORM_ADMIN}`);
    }
    const name = input.name == null ? undefined : requireText('name', input.name, LIMITS.nameLength);
    const maxKeys = input.maxKeys == null ? undefined : requireInt('maxKeys', input.maxKeys, 1, LIMITS.maxKeysPerOrganization);
    const quotas = input.quotas == null ? undefined : validateQuotas('quotas', input.quotas);

    const updated = await this.transactions.run(async (manager) => {
      const repository = manager.getRepository(OrganizationEntity);
      const organization = await repository.findOneBy({ id });
      if (!organization) throw new NotFoundError('Organization');
      const changed: string[] = [];
      if (name !== undefined && name !== organization.name) { organization.name = name; changed.push('name'); }
      if (maxKeys !== undefined && maxKeys !== organization.maxKeys) { organization.maxKeys = maxKeys; changed.push('maxKeys'); }
      if (quotas !== undefined) {
        await this.quotas.replace(manager, { organizationId: id }, quotas);
        changed.push('quotas');
      }
      organization.updatedAt = this.clock.now();
      await repository.save(organization);
      await this.audit.record(manager, actor, {
        action: 'organization.update',
        targetType: 'organization',
        targetId: id,
        organizationId: id,
        metadata: { changed, ...(name !== undefined && { name }), ...(maxKeys !== undefined && { maxKeys }), ...(quotas !== undefined && { quotas }) },
      });
      return organization;
    });
    this.keyCache.invalidateOrganization(id);
    if (quotas !== undefined) this.live.quotas(await this.quotas.statuses({ organizationId: id }));
    return updated;
  }

  async setStatus(actor: Actor, id: string, status: OrganizationStatus): Promise<OrganizationEntity> {
    if (!actor.isPlatformAdmin) throw new InsufficientScopeError(`Suspending or activating an organization needs ${PLATFORM_ADMIN}`);
    const changed = await this.transactions.run(async (manager) => {
      const repository = manager.getRepository(OrganizationEntity);
      const organization = await repository.findOneBy({ id });
      if (!organization) throw new NotFoundError('Organization');
      if (organization.isPlatform && status === OrganizationStatus.SUSPENDED) {
        throw new KeywardError(ErrorCode.BAD_USER_INPUT, 'status: the platform organization cannot be suspended (its keys run keyward)', { field: 'status' });
      }
      const previous = organization.status;
      organization.status = status;
      organization.updatedAt = this.clock.now();
      await repository.save(organization);
      await this.audit.record(manager, actor, {
        action: status === OrganizationStatus.SUSPENDED ? 'organization.suspend' : 'organization.activate',
        targetType: 'organization',
        targetId: id,
        organizationId: id,
        metadata: { previous, status },
      });
      return organization;
    });
    this.keyCache.invalidateOrganization(id);
    this.live.organization(changed);
    return changed;
  }
}
