import type { TestServer } from './server';
import { ok } from './expect';
import {
  ApiKeyFieldsFragment, CreateApiKeyDocument, CreateOrganizationDocument, Meter, OrganizationFieldsFragment, QuotaFieldsFragment, QuotaPeriod,
} from './operations';

/** Small builders over the public API so tests read as behaviour, not plumbing. */

/** Every field of ApiKey, as the client's ApiKeyFields fragment selects them. */
export const KEY_FIELDS = `id organizationId name environment hint status scopes ipAllowlist
  rateLimits { name limit windowSeconds meter } maxCostPerRequest meta ownerEmail externalId
  expiresAt revokedAt revokedReason revokedBy rotatedFromId lastUsedAt requestCount createdAt
  quotas { organizationId apiKeyId meter period limit used held remaining percentUsed resetsAt }`;

let counter = 0;
export function uniqueName(prefix = 'Org'): string {
  counter += 1;
  return `${prefix} ${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function createOrganization(server: TestServer, input: Record<string, unknown> = {}): Promise<OrganizationFieldsFragment> {
  return ok(await server.gql(CreateOrganizationDocument, { input: { name: uniqueName(), ...input } as { name: string } })).createOrganization;
}

export interface CreatedKey {
  id: string;
  secret: string;
  organizationId: string;
  apiKey: ApiKeyFieldsFragment;
}

/** Creates a key with the given input; by default with the platform admin key as caller. */
export async function createKey(server: TestServer, input: Record<string, unknown>, callerKey?: string): Promise<CreatedKey> {
  const created = ok(await server.gql(CreateApiKeyDocument, { input: { name: uniqueName('Key'), ...input } as { name: string } }, { key: callerKey })).createApiKey;
  return { id: created.apiKey.id, secret: created.secret, organizationId: created.apiKey.organizationId, apiKey: created.apiKey };
}

/** A fresh organization with one ADMIN-preset key (every organization-level scope). */
export async function createTenant(server: TestServer, organizationInput: Record<string, unknown> = {}): Promise<{ organizationId: string; key: CreatedKey }> {
  const organization = await createOrganization(server, organizationInput);
  const key = await createKey(server, { organizationId: organization.id, preset: 'ADMIN' });
  return { organizationId: organization.id, key };
}

/** The status a quota must show: remaining and percentUsed follow from limit and used. */
export function quotaStatus(
  owner: { organizationId: string } | { apiKeyId: string },
  meter: Meter,
  period: QuotaPeriod,
  limit: number,
  used: number,
  resetsAt: string | null,
): QuotaFieldsFragment {
  return {
    organizationId: 'organizationId' in owner ? owner.organizationId : null,
    apiKeyId: 'apiKeyId' in owner ? owner.apiKeyId : null,
    meter,
    period,
    limit,
    used,
    held: 0,
    remaining: Math.max(0, limit - used),
    // Two decimals; 100 only once used up.
    percentUsed: used >= limit ? 100 : Math.min(99.99, Math.round((used / limit) * 10_000) / 100),
    resetsAt,
  };
}
