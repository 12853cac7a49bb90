import DataLoader from 'dataloader';
import type { App } from './app';
import type { Actor } from './auth/actor';
import type { ApiKeyEntity } from './api-keys/api-key.entity';
import type { OrganizationEntity } from './organizations/organization.entity';
import type { QuotaOwner, QuotaStatus } from './quotas/quota.service';

/**
 * What field resolvers read from the database, batched per request: every `load` made while one
 * level of a result executes becomes one query, however many parent objects ask (a page of 50
 * keys selecting `quotas` is two queries, not fifty). Each loader is made on first use, so a
 * request that reads nothing (`viewer { scopes }`) costs nothing; results are cached for the
 * request only, so every request reads fresh rows. Tenancy is the services': another
 * organization's object loads as the same NotFoundError `get` would throw.
 */
export class Loaders {
  private apiKeys?: DataLoader<string, ApiKeyEntity>;
  private organizations?: DataLoader<string, OrganizationEntity>;
  private quotas?: DataLoader<QuotaOwner, QuotaStatus[], string>;

  constructor(private readonly app: App, private readonly actor: Actor | null) {}

  /** A key the caller may see (ApiKeyService.get). */
  apiKey(id: string): Promise<ApiKeyEntity> {
    this.apiKeys ??= new DataLoader<string, ApiKeyEntity>((ids) => this.app.apiKeys.getMany(this.requireActor(), ids));
    return this.apiKeys.load(id);
  }

  /** An organization the caller may see (OrganizationService.get). */
  organization(id: string): Promise<OrganizationEntity> {
    this.organizations ??= new DataLoader<string, OrganizationEntity>((ids) => this.app.organizations.getMany(this.requireActor(), ids));
    return this.organizations.load(id);
  }

  /** The quotas of a key or an organization the caller was already allowed to read, with their usage. */
  quotaStatuses(owner: QuotaOwner): Promise<QuotaStatus[]> {
    this.quotas ??= new DataLoader<QuotaOwner, QuotaStatus[], string>((owners) => this.app.quotas.statusesOfOwners(owners), {
      cacheKeyFn: (key) => ('organizationId' in key ? `organization:${key.organizationId}` : `key:${key.apiKeyId}`),
    });
    return this.quotas.load(owner);
  }

  private requireActor(): Actor {
    // Only reached from fields below an authenticated root field (@requireScope checked it).
    if (!this.actor) throw new Error('Loaders need an authenticated caller');
    return this.actor;
  }
}
