import type { TestServer } from './server';

/** Small builders over the public API so tests read as behaviour, not plumbing. */

export const KEY_FIELDS = `id organizationId name environment hint status scopes ipAllowlist
  rateLimits { name limit windowSeconds } maxCostPerRequest meta ownerEmail externalId
  expiresAt revokedAt revokedReason revokedBy rotatedFromId lastUsedAt requestCount createdAt
  quotas { organizationId apiKeyId meter period limit used remaining percentUsed resetsAt }`;

let counter = 0;
export function uniqueName(prefix = 'Org'): string {
  counter += 1;
  return `${prefix} ${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function createOrganization(server: TestServer, input: Record<string, unknown> = {}): Promise<{ id: string; name: string; slug: string }> {
  const response = await server.gql(
    'mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id name slug } }',
    { input: { name: uniqueName(), ...input } },
  );
  if (!response.body.data?.createOrganization) throw new Error(`createOrganization failed: ${JSON.stringify(response.body)}`);
  return response.body.data.createOrganization;
}

export interface CreatedKey {
  id: string;
  secret: string;
  organizationId: string;
  apiKey: Record<string, any>;
}

/** Creates a key with the given input; by default with the platform admin key as caller. */
export async function createKey(server: TestServer, input: Record<string, unknown>, callerKey?: string): Promise<CreatedKey> {
  const response = await server.gql(
    `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { ${KEY_FIELDS} } } }`,
    { input: { name: uniqueName('Key'), ...input } },
    { key: callerKey },
  );
  const created = response.body.data?.createApiKey;
  if (!created) throw new Error(`createApiKey failed: ${JSON.stringify(response.body)}`);
  return { id: created.apiKey.id, secret: created.secret, organizationId: created.apiKey.organizationId, apiKey: created.apiKey };
}

/** A fresh organization with one ADMIN-preset key (every organization-level scope). */
export async function createTenant(server: TestServer, organizationInput: Record<string, unknown> = {}): Promise<{ organizationId: string; key: CreatedKey }> {
  const organization = await createOrganization(server, organizationInput);
  const key = await createKey(server, { organizationId: organization.id, preset: 'ADMIN' });
  return { organizationId: organization.id, key };
}
