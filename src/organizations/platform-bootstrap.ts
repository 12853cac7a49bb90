import { App } from '../app';
import { SYSTEM_ACTOR } from '../auth/actor';
import { OrganizationEntity } from './organization.entity';

export const DEFAULT_PLATFORM_NAME = 'Platform';

export class AlreadyInitializedError extends Error {
  constructor(organizationId: string) {
    super(`keyward is already initialized (platform organization ${organizationId}); nothing was changed`);
    this.name = 'AlreadyInitializedError';
  }
}

export interface PlatformCredentials {
  organizationId: string;
  apiKeyId: string;
  /** Shown once. */
  secret: string;
}

/**
 * `keyward init`: the platform organization and its `*` key (every scope, including
 * platform:admin; no rate limits, no quotas), in one transaction. Refuses a second time.
 */
export async function initPlatform(app: App, organizationName = DEFAULT_PLATFORM_NAME): Promise<PlatformCredentials> {
  return app.transactions.run(async (manager) => {
    const existing = await manager.getRepository(OrganizationEntity).findOneBy({ isPlatform: true });
    if (existing) throw new AlreadyInitializedError(existing.id);
    const organization = await app.organizations.create(SYSTEM_ACTOR, { name: organizationName }, { isPlatform: true, manager });
    const { apiKey, secret } = await app.apiKeys.create(
      SYSTEM_ACTOR,
      { organizationId: organization.id, name: 'platform admin (keyward init)', scopes: ['*'], rateLimits: [] },
      manager,
    );
    return { organizationId: organization.id, apiKeyId: apiKey.id, secret };
  });
}
