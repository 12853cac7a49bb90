import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { startTestServer, TestServer, GraphQLResponse } from './helpers/server';
import { createKey, createOrganization, createTenant, CreatedKey } from './helpers/fixtures';
import { expectBadInput, ok } from './helpers/expect';
import { UpdateOrganizationDocument, UpdateOrganizationInput, VerifyKeyDocument } from './helpers/operations';

const RESULT_FIELDS = `valid code keyId organizationId environment scopes expiresAt meta session { id }
  rateLimits { apiKeyId name limit remaining windowSeconds resetAt }
  quotas { organizationId apiKeyId meter period limit used remaining percentUsed resetsAt }`;
const VERIFY = `mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { ${RESULT_FIELDS} } }`;
const RATE_LIMIT_STATUS = 'query($id: ID!) { rateLimitStatus(apiKeyId: $id) { name limit remaining windowSeconds resetAt } }';
const RATE_LIMIT_LOG = 'query($id: ID!) { rateLimitLog(apiKeyId: $id) { name limit operation ip } }';
const QUOTAS = `query($organizationId: ID, $apiKeyId: ID) {
  quotas(organizationId: $organizationId, apiKeyId: $apiKeyId) { organizationId apiKeyId meter period limit used remaining } }`;

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** The documented checksum: CRC32 of prefix + random part, as 6 base62 digits (most significant first). */
function checksumOf(body: string): string {
  let value = crc32(body);
  let out = '';
  for (let i = 0; i < 6; i++) {
    out = BASE62[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return out;
}

/** A secret of the right shape with a correct checksum that no server ever issued. */
function neverIssuedSecret(): string {
  const body = `kw_live_${[...randomBytes(32)].map((byte) => BASE62[byte % 62]).join('')}`;
  return body + checksumOf(body);
}

/** When a unit taken at `now` frees up (resetAt of a window whose oldest unit is from `now`). */
function windowAfter(now: Date, windowSeconds: number): string {
  return new Date(now.getTime() + windowSeconds * 1000).toISOString();
}

describe('verifyKey', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  /** verifyKey as the platform admin (no rate limits, no quotas of its own) unless `callerKey` is given. */
  function verify(input: Record<string, unknown>, callerKey?: string): Promise<GraphQLResponse> {
    return server.gql(VERIFY, { input }, { key: callerKey });
  }

  /** A refusal is data: HTTP 200, no GraphQL error, valid false and the code. */
  function expectResult(response: GraphQLResponse, code: string): Record<string, any> {
    expect(response.body.errors).toBeUndefined();
    expect(response.status).toBe(200);
    const result = response.body.data.verifyKey;
    expect(result.code).toBe(code);
    expect(result.valid).toBe(code === 'VALID');
    return result;
  }

  async function remaining(keyId: string): Promise<Record<string, number>> {
    const response = await server.gql(RATE_LIMIT_STATUS, { id: keyId });
    expect(response.status).toBe(200);
    return Object.fromEntries(response.body.data.rateLimitStatus.map((state: any) => [state.name, state.remaining]));
  }

  async function quotasUsed(owner: { organizationId?: string; apiKeyId?: string }): Promise<Record<string, number>> {
    const response = await server.gql(QUOTAS, owner);
    expect(response.status).toBe(200);
    return Object.fromEntries(response.body.data.quotas.map((quota: any) => [`${quota.meter}/${quota.period}`, quota.used]));
  }

  async function rateLimitLog(keyId: string): Promise<any[]> {
    const response = await server.gql(RATE_LIMIT_LOG, { id: keyId });
    expect(response.status).toBe(200);
    return response.body.data.rateLimitLog;
  }

  describe('codes', () => {
    it('answers VALID with the key, its settings, every window after counting the cost and the quotas used', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }] });
      const key = await createKey(server, {
        organizationId: organization.id,
        environment: 'TEST',
        scopes: ['usage:read', 'inference:run'],
        expiresAt: '2026-06-01T00:00:00.000Z',
        meta: { plan: 'pro', seats: 3 },
        rateLimits: [{ name: 'per-minute', limit: 10, windowSeconds: 60 }, { name: 'per-hour', limit: 100, windowSeconds: 3600 }],
        quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 1000 }],
      });
      expect(key.secret.startsWith('kw_test_')).toBe(true);
      const now = server.clock.now();

      const result = expectResult(await verify({ key: key.secret, cost: 3 }), 'VALID');
      expect(result.keyId).toBe(key.id);
      expect(result.organizationId).toBe(organization.id);
      expect(result.environment).toBe('TEST');
      expect(result.scopes).toEqual(['inference:run', 'usage:read']);
      expect(result.expiresAt).toBe('2026-06-01T00:00:00.000Z');
      expect(result.meta).toEqual({ plan: 'pro', seats: 3 });
      expect(result.session).toBeNull();
      expect(result.rateLimits).toEqual(expect.arrayContaining([
        { apiKeyId: key.id, name: 'per-minute', limit: 10, remaining: 7, windowSeconds: 60, resetAt: windowAfter(now, 60) },
        { apiKeyId: key.id, name: 'per-hour', limit: 100, remaining: 97, windowSeconds: 3600, resetAt: windowAfter(now, 3600) },
      ]));
      expect(result.rateLimits).toHaveLength(2);
      const keyQuota = result.quotas.find((quota: any) => quota.apiKeyId === key.id);
      const organizationQuota = result.quotas.find((quota: any) => quota.organizationId === organization.id);
      expect(result.quotas).toHaveLength(2);
      expect(keyQuota).toMatchObject({ organizationId: null, meter: 'REQUESTS', period: 'MONTH', limit: 1000, used: 3, remaining: 997, resetsAt: '2026-02-01T00:00:00.000Z' });
      expect(keyQuota.percentUsed).toBeCloseTo(0.3, 6);
      expect(organizationQuota).toMatchObject({ apiKeyId: null, meter: 'REQUESTS', period: 'DAY', limit: 100, used: 3, remaining: 97, resetsAt: '2026-01-16T00:00:00.000Z' });
      expect(organizationQuota.percentUsed).toBeCloseTo(3, 6);

      const second = expectResult(await verify({ key: key.secret, cost: 3 }), 'VALID');
      expect(Object.fromEntries(second.rateLimits.map((state: any) => [state.name, state.remaining]))).toEqual({ 'per-minute': 4, 'per-hour': 94 });
      expect(second.quotas.map((quota: any) => quota.used)).toEqual([6, 6]);
    });

    it('reports a live key as environment LIVE', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      expect(expectResult(await verify({ key: key.secret }), 'VALID').environment).toBe('LIVE');
    });

    it.each([
      ['a malformed key', 'not-a-key'],
      ['a key with a wrong prefix', `kw_prod_${'a'.repeat(38)}`],
      ['a key one character short', neverIssuedSecret().slice(0, -1)],
    ])('answers NOT_FOUND for %s, with no key details', async (_what, secret) => {
      const result = expectResult(await verify({ key: secret }), 'NOT_FOUND');
      expect(result).toMatchObject({ keyId: null, organizationId: null, environment: null, scopes: null, expiresAt: null, meta: null, rateLimits: [], quotas: [] });
    });

    it('answers NOT_FOUND for an issued key with one character changed (checksum no longer matches)', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      // The documented checksum reproduces the issued one, so this test's mutation is the only difference.
      expect(checksumOf(key.secret.slice(0, -6))).toBe(key.secret.slice(-6));
      const index = 20;
      const changed = key.secret.slice(0, index) + (key.secret[index] === 'A' ? 'B' : 'A') + key.secret.slice(index + 1);
      expect(expectResult(await verify({ key: changed }), 'NOT_FOUND').keyId).toBeNull();
      expect(await remaining(key.id)).toEqual({ 'per-minute': 60, 'per-hour': 1000 });
    });

    it('answers NOT_FOUND for a well-formed key with a valid checksum that was never issued', async () => {
      const result = expectResult(await verify({ key: neverIssuedSecret() }), 'NOT_FOUND');
      expect(result.keyId).toBeNull();
    });

    it('answers NOT_FOUND for a deleted key', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      expectResult(await verify({ key: key.secret }), 'VALID');
      const deleted = await server.gql('mutation($id: ID!) { deleteApiKey(id: $id) }', { id: key.id });
      expect(deleted.body.data.deleteApiKey).toBe(true);
      const result = expectResult(await verify({ key: key.secret }), 'NOT_FOUND');
      expect(result).toMatchObject({ keyId: null, organizationId: null, rateLimits: [], quotas: [] });
    });

    it("answers NOT_FOUND when a customer organization's key verifies another organization's key, and consumes nothing", async () => {
      const verifier = await createTenant(server);
      const other = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 10 }] });
      const foreign = await createKey(server, { organizationId: other.id, rateLimits: [{ name: 'per-minute', limit: 5, windowSeconds: 60 }] });
      const result = expectResult(await verify({ key: foreign.secret }, verifier.key.secret), 'NOT_FOUND');
      expect(result).toMatchObject({ keyId: null, organizationId: null, scopes: null, meta: null, rateLimits: [], quotas: [] });
      expect(await remaining(foreign.id)).toEqual({ 'per-minute': 5 });
      expect(await quotasUsed({ organizationId: other.id })).toEqual({ 'REQUESTS/DAY': 0 });
    });

    it('answers REVOKED for a revoked key', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "leaked") { status } }', { id: key.id });
      const result = expectResult(await verify({ key: key.secret }), 'REVOKED');
      expect(result.keyId).toBe(key.id);
      expect(result.rateLimits).toEqual([]);
      expect(result.quotas).toEqual([]);
    });

    it('answers DISABLED for a disabled key and VALID again once it is enabled', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      await server.gql('mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { status } }', { id: key.id });
      expect(expectResult(await verify({ key: key.secret }), 'DISABLED').keyId).toBe(key.id);
      await server.gql('mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: true) { status } }', { id: key.id });
      expectResult(await verify({ key: key.secret }), 'VALID');
    });

    it('answers EXPIRED once the clock passes the key expiry', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, expiresInDays: 1, rateLimits: [{ name: 'per-minute', limit: 5, windowSeconds: 60 }] });
      expectResult(await verify({ key: key.secret }), 'VALID');
      server.clock.advance(86_400_000);
      try {
        const result = expectResult(await verify({ key: key.secret }), 'EXPIRED');
        expect(result.keyId).toBe(key.id);
        expect(result.rateLimits).toEqual([]);
        expect(await remaining(key.id)).toEqual({ 'per-minute': 5 });
      } finally {
        server.clock.advance(-86_400_000);
      }
    });

    it('answers ORGANIZATION_SUSPENDED for a key of a suspended organization and VALID once it is active again', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      const setStatus = 'mutation($id: ID!, $status: OrganizationStatus!) { setOrganizationStatus(id: $id, status: $status) { status } }';
      await server.gql(setStatus, { id: organization.id, status: 'SUSPENDED' });
      expect(expectResult(await verify({ key: key.secret }), 'ORGANIZATION_SUSPENDED').organizationId).toBe(organization.id);
      await server.gql(setStatus, { id: organization.id, status: 'ACTIVE' });
      expectResult(await verify({ key: key.secret }), 'VALID');
    });

    it('answers FORBIDDEN_IP for an address outside the allowlist and when no ip is given, VALID for one inside', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, ipAllowlist: ['10.0.0.0/8', '2001:db8::/32'], rateLimits: [{ name: 'per-minute', limit: 5, windowSeconds: 60 }] });
      expectResult(await verify({ key: key.secret, ip: '192.168.1.10' }), 'FORBIDDEN_IP');
      expectResult(await verify({ key: key.secret }), 'FORBIDDEN_IP');
      expect(await remaining(key.id)).toEqual({ 'per-minute': 5 });
      expectResult(await verify({ key: key.secret, ip: '10.20.30.40' }), 'VALID');
      expectResult(await verify({ key: key.secret, ip: '2001:db8::1' }), 'VALID');
    });

    it('accepts any ip, or none, for a key without an allowlist', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      expectResult(await verify({ key: key.secret }), 'VALID');
      expectResult(await verify({ key: key.secret, ip: '198.51.100.7' }), 'VALID');
    });

    it('answers INSUFFICIENT_SCOPE unless the key holds ALL requiredScopes', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, scopes: ['inference:run'] });
      expectResult(await verify({ key: key.secret, requiredScopes: ['inference:run'] }), 'VALID');
      expectResult(await verify({ key: key.secret, requiredScopes: ['inference:run', 'usage:read'] }), 'INSUFFICIENT_SCOPE');
      expectResult(await verify({ key: key.secret, requiredScopes: ['inference:train'] }), 'INSUFFICIENT_SCOPE');
    });

    it('lets a wildcard scope the key holds satisfy a required scope', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, scopes: ['inference:*', 'usage:read'] });
      expectResult(await verify({ key: key.secret, requiredScopes: ['inference:run', 'inference:train', 'usage:read'] }), 'VALID');
      expectResult(await verify({ key: key.secret, requiredScopes: ['inference:run', 'usage:write'] }), 'INSUFFICIENT_SCOPE');
      // The platform admin key holds '*', which satisfies any scope.
      const admin = expectResult(await verify({ key: server.adminKey, requiredScopes: ['inference:run', 'platform:admin', 'billing:refund'] }), 'VALID');
      expect(admin.scopes).toEqual(['*']);
    });

    it('answers QUOTA_EXCEEDED for a cost above maxCostPerRequest and VALID at exactly the maximum', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, maxCostPerRequest: 5, rateLimits: [{ name: 'per-minute', limit: 100, windowSeconds: 60 }] });
      const refused = expectResult(await verify({ key: key.secret, cost: 6 }), 'QUOTA_EXCEEDED');
      expect(refused.keyId).toBe(key.id);
      expect(await remaining(key.id)).toEqual({ 'per-minute': 100 });
      expectResult(await verify({ key: key.secret, cost: 5 }), 'VALID');
      expect(await remaining(key.id)).toEqual({ 'per-minute': 95 });
    });

    it('answers QUOTA_EXCEEDED once a REQUESTS quota of the key is used up, and never counts past the limit', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [], quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 2 }] });
      expectResult(await verify({ key: key.secret }), 'VALID');
      expectResult(await verify({ key: key.secret }), 'VALID');
      const refused = expectResult(await verify({ key: key.secret }), 'QUOTA_EXCEEDED');
      expect(refused.keyId).toBe(key.id);
      expect(await quotasUsed({ apiKeyId: key.id })).toEqual({ 'REQUESTS/DAY': 2 });
    });

    it('answers QUOTA_EXCEEDED when a cost does not fit in what is left of the REQUESTS quota', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 10 }] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      expectResult(await verify({ key: key.secret, cost: 8 }), 'VALID');
      expectResult(await verify({ key: key.secret, cost: 3 }), 'QUOTA_EXCEEDED');
      expect(await quotasUsed({ organizationId: organization.id })).toEqual({ 'REQUESTS/DAY': 8 });
      expectResult(await verify({ key: key.secret, cost: 2 }), 'VALID');
      expect(await quotasUsed({ organizationId: organization.id })).toEqual({ 'REQUESTS/DAY': 10 });
    });

    it('answers RATE_LIMITED once a window is used up and logs the refusal', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [{ name: 'burst', limit: 2, windowSeconds: 60 }] });
      expectResult(await verify({ key: key.secret, operation: 'POST /v1/predict' }), 'VALID');
      expectResult(await verify({ key: key.secret, operation: 'POST /v1/predict' }), 'VALID');
      const refused = expectResult(await verify({ key: key.secret, operation: 'POST /v1/predict', ip: '203.0.113.9' }), 'RATE_LIMITED');
      expect(refused.keyId).toBe(key.id);
      expect(await remaining(key.id)).toEqual({ burst: 0 });
      expect(await rateLimitLog(key.id)).toEqual([{ name: 'burst', limit: 2, operation: 'POST /v1/predict', ip: '203.0.113.9' }]);
    });

    it('answers NO_ACTIVE_SESSION when requireSession is asked and the organization has no session', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      const result = expectResult(await verify({ key: key.secret, requireSession: true }), 'NO_ACTIVE_SESSION');
      expect(result.keyId).toBe(key.id);
      expect(result.session).toBeNull();
    });
  });

  describe('pipeline order: first failure wins, a refusal consumes nothing', () => {
    it('answers REVOKED (not RATE_LIMITED) for a revoked key over its rate limit and consumes nothing', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [{ name: 'per-minute', limit: 2, windowSeconds: 60 }] });
      expectResult(await verify({ key: key.secret }), 'VALID');
      expect(await remaining(key.id)).toEqual({ 'per-minute': 1 });
      await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "leaked") { status } }', { id: key.id });

      expectResult(await verify({ key: key.secret }), 'REVOKED');
      expectResult(await verify({ key: key.secret, cost: 2 }), 'REVOKED');
      expectResult(await verify({ key: key.secret, cost: 2 }), 'REVOKED');

      expect(await remaining(key.id)).toEqual({ 'per-minute': 1 });
      expect(await quotasUsed({ organizationId: organization.id })).toEqual({ 'REQUESTS/DAY': 1 });
      expect(await rateLimitLog(key.id)).toEqual([]);
    });

    it('answers INSUFFICIENT_SCOPE for a key lacking a scope and takes nothing from its rate limits or quotas', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }] });
      const key = await createKey(server, {
        organizationId: organization.id,
        scopes: ['inference:run'],
        rateLimits: [{ name: 'per-minute', limit: 1, windowSeconds: 60 }],
        quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 1 }],
      });
      for (let i = 0; i < 3; i++) expectResult(await verify({ key: key.secret, requiredScopes: ['inference:admin'] }), 'INSUFFICIENT_SCOPE');
      expect(await remaining(key.id)).toEqual({ 'per-minute': 1 });
      expect(await quotasUsed({ apiKeyId: key.id })).toEqual({ 'REQUESTS/MONTH': 0 });
      expect(await quotasUsed({ organizationId: organization.id })).toEqual({ 'REQUESTS/DAY': 0 });
      // The single unit is still there for a request that qualifies.
      expectResult(await verify({ key: key.secret, requiredScopes: ['inference:run'] }), 'VALID');
    });

    it('gives the rate-limit units back when the quota refuses (QUOTA_EXCEEDED)', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, {
        organizationId: organization.id,
        rateLimits: [{ name: 'per-minute', limit: 10, windowSeconds: 60 }, { name: 'per-hour', limit: 50, windowSeconds: 3600 }],
        quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1 }],
      });
      expectResult(await verify({ key: key.secret }), 'VALID');
      expect(await remaining(key.id)).toEqual({ 'per-minute': 9, 'per-hour': 49 });
      for (let i = 0; i < 3; i++) expectResult(await verify({ key: key.secret, cost: 2 }), 'QUOTA_EXCEEDED');
      expect(await remaining(key.id)).toEqual({ 'per-minute': 9, 'per-hour': 49 });
      expect(await rateLimitLog(key.id)).toEqual([]);
    });

    it("gives back the key's quota units when the organization's quota refuses", async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1 }] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [], quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 10 }] });
      expectResult(await verify({ key: key.secret }), 'VALID');
      expectResult(await verify({ key: key.secret }), 'QUOTA_EXCEEDED');
      expectResult(await verify({ key: key.secret }), 'QUOTA_EXCEEDED');
      expect(await quotasUsed({ apiKeyId: key.id })).toEqual({ 'REQUESTS/DAY': 1 });
      expect(await quotasUsed({ organizationId: organization.id })).toEqual({ 'REQUESTS/DAY': 1 });
    });

    it('gives rate-limit AND quota units back when the session check refuses (NO_ACTIVE_SESSION)', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 20 }] });
      const key = await createKey(server, {
        organizationId: organization.id,
        rateLimits: [{ name: 'per-minute', limit: 10, windowSeconds: 60 }],
        quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 10 }],
      });
      for (let i = 0; i < 3; i++) expectResult(await verify({ key: key.secret, cost: 4, requireSession: true }), 'NO_ACTIVE_SESSION');
      expect(await remaining(key.id)).toEqual({ 'per-minute': 10 });
      expect(await quotasUsed({ apiKeyId: key.id })).toEqual({ 'REQUESTS/MONTH': 0 });
      expect(await quotasUsed({ organizationId: organization.id })).toEqual({ 'REQUESTS/DAY': 0 });
      expectResult(await verify({ key: key.secret, cost: 10 }), 'VALID');
    });

    it('checks suspension before the ip, the ip before scopes and scopes before maxCostPerRequest', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, scopes: ['inference:run'], ipAllowlist: ['10.0.0.0/8'], maxCostPerRequest: 1 });
      expectResult(await verify({ key: key.secret, ip: '192.0.2.1', requiredScopes: ['inference:admin'], cost: 2 }), 'FORBIDDEN_IP');
      expectResult(await verify({ key: key.secret, ip: '10.0.0.1', requiredScopes: ['inference:admin'], cost: 2 }), 'INSUFFICIENT_SCOPE');
      expectResult(await verify({ key: key.secret, ip: '10.0.0.1', requiredScopes: ['inference:run'], cost: 2 }), 'QUOTA_EXCEEDED');
      await server.gql('mutation($id: ID!) { setOrganizationStatus(id: $id, status: SUSPENDED) { status } }', { id: organization.id });
      expectResult(await verify({ key: key.secret, ip: '192.0.2.1', requiredScopes: ['inference:admin'], cost: 2 }), 'ORGANIZATION_SUSPENDED');
    });
  });

  describe('concurrency and counting', () => {
    it('admits exactly 50 of 200 concurrent verifications against a REQUESTS DAY quota of 50', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 50 }] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      const responses = await Promise.all(Array.from({ length: 200 }, () => verify({ key: key.secret })));
      const codes = responses.map((response) => {
        expect(response.status).toBe(200);
        expect(response.body.errors).toBeUndefined();
        return response.body.data.verifyKey.code as string;
      });
      expect(codes.filter((code) => code === 'VALID')).toHaveLength(50);
      expect(codes.filter((code) => code === 'QUOTA_EXCEEDED')).toHaveLength(150);
      expect(await quotasUsed({ organizationId: organization.id })).toEqual({ 'REQUESTS/DAY': 50 });
    });

    it('counts each of 15 aliased verifyKey calls in one request (16 or more are refused by the alias limit, counting none)', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1000 }] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      const aliased = (count: number) => Array.from({ length: count }, (_, i) => `v${i}: verifyKey(input: { key: $key }) { valid code }`).join('\n');
      const refused = await server.gql(`mutation($key: String!) { ${aliased(50)} }`, { key: key.secret });
      expect(refused.status).toBe(400);
      expect(refused.code).toBe('QUERY_TOO_COMPLEX');
      expect(await quotasUsed({ organizationId: organization.id })).toEqual({ 'REQUESTS/DAY': 0 });
      const response = await server.gql(`mutation($key: String!) { ${aliased(15)} }`, { key: key.secret });
      expect(response.status).toBe(200);
      expect(response.body.errors).toBeUndefined();
      const results = Object.values(response.body.data) as Array<{ valid: boolean; code: string }>;
      expect(results).toHaveLength(15);
      expect(results.every((result) => result.valid && result.code === 'VALID')).toBe(true);
      expect(await quotasUsed({ organizationId: organization.id })).toEqual({ 'REQUESTS/DAY': 15 });
    });

    it("adds every verified use to the key's requestCount and lastUsedAt, and no refused one", async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, scopes: ['inference:run'], rateLimits: [] });
      for (let i = 0; i < 3; i++) expectResult(await verify({ key: key.secret }), 'VALID');
      expectResult(await verify({ key: key.secret, requiredScopes: ['usage:read'] }), 'INSUFFICIENT_SCOPE');
      expectResult(await verify({ key: key.secret, cost: 7 }), 'VALID');
      await server.app.usageBuffer.flush();
      const read = async () => (await server.gql('query($id: ID!) { apiKey(id: $id) { requestCount lastUsedAt } }', { id: key.id })).body.data.apiKey;
      expect(await read()).toEqual({ requestCount: 4, lastUsedAt: server.clock.now().toISOString() });
      // The key's own GraphQL call is a verified use as well.
      expect((await server.gql('{ viewer { scopes } }', {}, { key: key.secret })).status).toBe(200);
      await server.app.usageBuffer.flush();
      expect((await read()).requestCount).toBe(5);
    });
  });

  /*
   * A verified key stays in the verification cache for ~60 s of wall time (the ManualClock does
   * not age it), so only the invalidation on updateOrganization makes these answers right.
   */
  describe('the verification cache', () => {
    async function codeOf(secret: string, cost?: number): Promise<string> {
      return ok(await server.gql(VerifyKeyDocument, { input: { key: secret, cost } })).verifyKey.code;
    }

    async function updateOrganization(id: string, input: UpdateOrganizationInput): Promise<void> {
      ok(await server.gql(UpdateOrganizationDocument, { id, input }));
    }

    it("is dropped when the platform admin lowers the organization's REQUESTS quota: the very next verifyKey is held to the new limit", async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      for (let call = 1; call <= 3; call++) expect(await codeOf(key.secret)).toBe('VALID');

      await updateOrganization(organization.id, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 5 }] });
      // A cost of 6 fits in the old limit (97 left) and never in the new one.
      expect(await codeOf(key.secret, 6)).toBe('QUOTA_EXCEEDED');

      await updateOrganization(organization.id, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1_000 }] });
      expect(await codeOf(key.secret, 6)).toBe('VALID');
    });

    it("is dropped when the platform admin sets the organization's keyRateLimits: the very next verifications obey the new window, and are free of it once it is removed", async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      for (let call = 1; call <= 3; call++) expect(await codeOf(key.secret)).toBe('VALID');

      await updateOrganization(organization.id, { keyRateLimits: [{ name: 'per-hour', limit: 1, windowSeconds: 3600 }] });
      expect([await codeOf(key.secret), await codeOf(key.secret)]).toEqual(['VALID', 'RATE_LIMITED']);

      await updateOrganization(organization.id, { keyRateLimits: [] });
      expect(await codeOf(key.secret)).toBe('VALID');
    });
  });

  describe('bad input', () => {
    it.each([
      ['cost 0', { cost: 0 }, 'cost'],
      ['cost -1', { cost: -1 }, 'cost'],
      ['cost 1000001', { cost: 1_000_001 }, 'cost'],
      ['requiredScopes ["Bad Scope"]', { requiredScopes: ['Bad Scope'] }, 'requiredScopes'],
      ['ip "not-an-ip"', { ip: 'not-an-ip' }, 'ip'],
      ['an operation over 200 characters', { operation: 'x'.repeat(201) }, 'operation'],
    ])('refuses %s with 400 BAD_USER_INPUT naming the field and consumes nothing', async (_what, extra, field) => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [{ name: 'per-minute', limit: 10, windowSeconds: 60 }] });
      expectBadInput(await verify({ key: key.secret, ...extra }), field);
      expect(await remaining(key.id)).toEqual({ 'per-minute': 10 });
      expect(await quotasUsed({ organizationId: organization.id })).toEqual({ 'REQUESTS/DAY': 0 });
      await server.app.usageBuffer.flush();
      const read = await server.gql('query($id: ID!) { apiKey(id: $id) { requestCount } }', { id: key.id });
      expect(read.body.data.apiKey.requestCount).toBe(0);
    });

    it('accepts the boundary costs 1 and 1,000,000', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      expectResult(await verify({ key: key.secret, cost: 1 }), 'VALID');
      expectResult(await verify({ key: key.secret, cost: 1_000_000 }), 'VALID');
    });
  });

  describe('who may verify', () => {
    it('lets a customer key holding only keys:verify verify a key of its own organization', async () => {
      const organization = await createOrganization(server);
      const service = await createKey(server, { organizationId: organization.id, scopes: ['keys:verify'] });
      const target = await createKey(server, { organizationId: organization.id });
      const result = expectResult(await verify({ key: target.secret }, service.secret), 'VALID');
      expect(result.keyId).toBe(target.id);
      expect(result.organizationId).toBe(organization.id);
    });

    it("lets a platform-organization key holding only keys:verify verify another organization's key", async () => {
      const service = await createKey(server, { organizationId: server.platformOrganizationId, scopes: ['keys:verify'] });
      const organization = await createOrganization(server);
      const target: CreatedKey = await createKey(server, { organizationId: organization.id });
      const result = expectResult(await verify({ key: target.secret }, service.secret), 'VALID');
      expect(result.keyId).toBe(target.id);
      expect(result.organizationId).toBe(organization.id);
    });

    it('refuses verifyKey to a key without keys:verify with 403 INSUFFICIENT_SCOPE', async () => {
      const organization = await createOrganization(server);
      const reader = await createKey(server, { organizationId: organization.id, preset: 'READ' });
      const target = await createKey(server, { organizationId: organization.id, rateLimits: [{ name: 'per-minute', limit: 5, windowSeconds: 60 }] });
      const response = await verify({ key: target.secret }, reader.secret);
      expect(response.status).toBe(403);
      expect(response.code).toBe('INSUFFICIENT_SCOPE');
      expect(await remaining(target.id)).toEqual({ 'per-minute': 5 });
    });
  });
});
