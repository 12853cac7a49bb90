import { startTestServer, TestServer, GraphQLResponse } from './helpers/server';
import { createKey, createOrganization, createTenant, CreatedKey, KEY_FIELDS } from './helpers/fixtures';
import { expectRefused, expectBadInput } from './helpers/expect';

/**
 * The API-key lifecycle over GraphQL: create, read/list, update, enable/disable, revoke,
 * delete, rotate, the organization key limit, scope escalation and input validation.
 * One server for the whole file; tests that move the clock put it back in `finally`.
 */

const CREATE = `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { ${KEY_FIELDS} } } }`;
const GET = `query($id: ID!) { apiKey(id: $id) { ${KEY_FIELDS} } }`;
const LIST = `query($filter: ApiKeyFilter, $first: Int, $after: String) {
  apiKeys(filter: $filter, first: $first, after: $after) { totalCount pageInfo { endCursor hasNextPage } nodes { ${KEY_FIELDS} } }
}`;
const UPDATE = `mutation($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { ${KEY_FIELDS} } }`;
const SET_ENABLED = `mutation($id: ID!, $enabled: Boolean!) { setApiKeyEnabled(id: $id, enabled: $enabled) { ${KEY_FIELDS} } }`;
const REVOKE = `mutation($id: ID!, $reason: String!) { revokeApiKey(id: $id, reason: $reason) { ${KEY_FIELDS} } }`;
const ROTATE = `mutation($id: ID!, $grace: Int) { rotateApiKey(id: $id, gracePeriodSeconds: $grace) { secret previousKeyExpiresAt apiKey { ${KEY_FIELDS} } } }`;
const DELETE = 'mutation($id: ID!) { deleteApiKey(id: $id) }';
const VIEWER = `{ viewer { apiKey { ${KEY_FIELDS} } organization { id } scopes } }`;
const AUDIT = `query($organizationId: ID, $first: Int) {
  auditLog(organizationId: $organizationId, first: $first) { totalCount nodes { id organizationId actorKeyId action targetType targetId ip metadata at } }
}`;

const SECRET_FORMAT = /^kw_live_[0-9A-Za-z]{38}$/;
const TEST_SECRET_FORMAT = /^kw_test_[0-9A-Za-z]{38}$/;
const ANY_SECRET = /kw_(live|test)_[0-9A-Za-z]{10,}/;

const READ_SCOPES = ['audit:read', 'keys:read', 'org:read', 'sessions:read', 'usage:read', 'webhooks:read'];
const WRITE_SCOPES = ['audit:read', 'keys:read', 'keys:write', 'org:read', 'org:write', 'sessions:read', 'sessions:write', 'usage:read', 'usage:write', 'webhooks:read', 'webhooks:write'];
const ADMIN_SCOPES = ['*'];
const INFERENCE_SCOPES = ['inference:*', 'usage:read'];
const DEFAULT_RATE_LIMITS = [
  { name: 'per-minute', limit: 60, windowSeconds: 60, meter: 'REQUESTS' },
  { name: 'per-hour', limit: 1000, windowSeconds: 3600, meter: 'REQUESTS' },
];

const DAY_MS = 86_400_000;

function hintOf(secret: string): string {
  return `${secret.slice(0, 8)}…${secret.slice(-4)}`;
}

function ms(value: string | null | undefined): number | null {
  return value == null ? null : new Date(value).getTime();
}

function byMeter<T extends { meter: string; period: string }>(quotas: T[]): T[] {
  return [...quotas].sort((a, b) => `${a.meter}/${a.period}`.localeCompare(`${b.meter}/${b.period}`));
}

describe('API keys over GraphQL', () => {
  let server: TestServer;
  let adminKeyId: string;

  beforeAll(async () => {
    server = await startTestServer();
    const viewer = await server.gql('{ viewer { apiKey { id } } }');
    adminKeyId = viewer.body.data.viewer.apiKey.id;
  });
  afterAll(async () => { await server.close(); });

  /** Runs `fn` with the clock moved by `delta` ms, and puts it back afterwards. */
  async function withClockAdvanced<T>(delta: number, fn: () => Promise<T>): Promise<T> {
    const before = server.clock.now();
    server.clock.advance(delta);
    try {
      return await fn();
    } finally {
      server.clock.set(before);
    }
  }

  function create(input: Record<string, unknown>, key?: string): Promise<GraphQLResponse> {
    return server.gql(CREATE, { input }, { key });
  }

  async function getKey(id: string, key?: string): Promise<Record<string, any>> {
    const response = await server.gql(GET, { id }, { key });
    expect(response.status).toBe(200);
    return response.body.data.apiKey;
  }

  async function list(filter: Record<string, unknown>, extra: { first?: number; after?: string } = {}, key?: string): Promise<GraphQLResponse> {
    return server.gql(LIST, { filter, ...extra }, { key });
  }

  async function listIds(filter: Record<string, unknown>): Promise<string[]> {
    const response = await list(filter, { first: 500 });
    expect(response.status).toBe(200);
    return response.body.data.apiKeys.nodes.map((node: { id: string }) => node.id).sort();
  }

  async function auditEntries(organizationId: string): Promise<Array<Record<string, any>>> {
    const response = await server.gql(AUDIT, { organizationId, first: 500 });
    expect(response.status).toBe(200);
    return response.body.data.auditLog.nodes;
  }

  /** The one audit entry of the organization with this action and target. */
  async function auditEntry(organizationId: string, action: string, targetId: string): Promise<Record<string, any>> {
    const matching = (await auditEntries(organizationId)).filter((entry) => entry.action === action && entry.targetId === targetId);
    expect(matching).toHaveLength(1);
    return matching[0];
  }

  /** What "nothing written" is checked against: keys listed and audit entries of the organization. */
  async function snapshot(organizationId: string): Promise<{ keys: number; audit: number }> {
    const keys = await list({ organizationId }, { first: 1 });
    const audit = await server.gql(AUDIT, { organizationId, first: 1 });
    return { keys: keys.body.data.apiKeys.totalCount, audit: audit.body.data.auditLog.totalCount };
  }

  describe('createApiKey', () => {
    it('returns the secret once, in the kw_live_ format, with a hint of its prefix and last 4 characters', async () => {
      const organization = await createOrganization(server);
      const response = await create({ organizationId: organization.id, name: 'Billing service' });
      expect(response.status).toBe(200);
      const { secret, apiKey } = response.body.data.createApiKey;
      expect(secret).toMatch(SECRET_FORMAT);
      expect(secret).toHaveLength(46);
      expect(apiKey.id).toMatch(/^key_[0-9a-z]{26}$/);
      expect(apiKey.organizationId).toBe(organization.id);
      expect(apiKey.name).toBe('Billing service');
      expect(apiKey.environment).toBe('LIVE');
      expect(apiKey.status).toBe('ACTIVE');
      expect(apiKey.hint).toBe(hintOf(secret));
      expect(apiKey.hint.startsWith('kw_live_…')).toBe(true);
      expect(apiKey.requestCount).toBe(0);
      expect(apiKey.lastUsedAt).toBeNull();
      expect(apiKey.revokedAt).toBeNull();
      expect(apiKey.rotatedFromId).toBeNull();
      expect(ms(apiKey.createdAt)).toBe(server.clock.now().getTime());
    });

    it('issues a kw_test_ secret and environment TEST for environment TEST', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, environment: 'TEST' });
      expect(key.secret).toMatch(TEST_SECRET_FORMAT);
      expect(key.apiKey.environment).toBe('TEST');
      expect(key.apiKey.hint).toBe(hintOf(key.secret));
      expect(key.apiKey.hint.startsWith('kw_test_…')).toBe(true);
    });

    it('gives a new secret every time', async () => {
      const organization = await createOrganization(server);
      const a = await createKey(server, { organizationId: organization.id });
      const b = await createKey(server, { organizationId: organization.id });
      expect(a.secret).not.toBe(b.secret);
      expect(a.id).not.toBe(b.id);
    });

    it('grants the READ scopes when neither scopes nor preset are given', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      expect(key.apiKey.scopes).toEqual(READ_SCOPES);
    });

    it.each([
      ['READ', READ_SCOPES],
      ['WRITE', WRITE_SCOPES],
      ['ADMIN', ADMIN_SCOPES],
      ['INFERENCE', INFERENCE_SCOPES],
    ])('grants exactly the %s preset scopes, sorted', async (preset, scopes) => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, preset });
      expect(key.apiKey.scopes).toEqual(scopes);
      expect((await getKey(key.id)).scopes).toEqual(scopes);
    });

    it('grants explicit scopes sorted and deduplicated, without the READ default', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, scopes: ['usage:read', 'inference:run', 'usage:read'] });
      expect(key.apiKey.scopes).toEqual(['inference:run', 'usage:read']);
    });

    it('grants the union of a preset and explicit scopes', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, preset: 'INFERENCE', scopes: ['keys:read', 'usage:read'] });
      expect(key.apiKey.scopes).toEqual(['inference:*', 'keys:read', 'usage:read']);
    });

    it('sets expiresAt to now + expiresInDays', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, expiresInDays: 7 });
      expect(ms(key.apiKey.expiresAt)).toBe(server.clock.now().getTime() + 7 * DAY_MS);
      expect(key.apiKey.status).toBe('ACTIVE');
    });

    it('stores an explicit expiresAt', async () => {
      const organization = await createOrganization(server);
      const expiresAt = new Date(server.clock.now().getTime() + 30 * DAY_MS + 1234).toISOString();
      const key = await createKey(server, { organizationId: organization.id, expiresAt });
      expect(ms(key.apiKey.expiresAt)).toBe(ms(expiresAt));
      expect(ms((await getKey(key.id)).expiresAt)).toBe(ms(expiresAt));
    });

    it('has no expiry by default', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      expect(key.apiKey.expiresAt).toBeNull();
    });

    it('normalises ipAllowlist entries to CIDR blocks', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, ipAllowlist: ['10.1.2.3', '192.168.0.0/16', '2001:db8::1', ' 172.16.0.0/12 '] });
      expect(key.apiKey.ipAllowlist).toEqual(['10.1.2.3/32', '192.168.0.0/16', '2001:db8::1/128', '172.16.0.0/12']);
      expect((await getKey(key.id)).ipAllowlist).toEqual(['10.1.2.3/32', '192.168.0.0/16', '2001:db8::1/128', '172.16.0.0/12']);
    });

    it('has an empty ipAllowlist (any address) by default', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      expect(key.apiKey.ipAllowlist).toEqual([]);
    });

    it('applies the default rate limits (per-minute 60/60 s, per-hour 1000/3600 s) when none are given', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      expect(key.apiKey.rateLimits).toEqual(DEFAULT_RATE_LIMITS);
    });

    it('replaces the default rate limits with an explicit list', async () => {
      const organization = await createOrganization(server);
      const rateLimits = [{ name: 'burst', limit: 5, windowSeconds: 1 }, { name: 'daily', limit: 10_000, windowSeconds: 86_400 }];
      const key = await createKey(server, { organizationId: organization.id, rateLimits });
      const stored = rateLimits.map((limit) => ({ ...limit, meter: 'REQUESTS' }));
      expect(key.apiKey.rateLimits).toEqual(stored);
      expect((await getKey(key.id)).rateLimits).toEqual(stored);
    });

    it('has no rate limits at all when given an empty list', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      expect(key.apiKey.rateLimits).toEqual([]);
      expect((await getKey(key.id)).rateLimits).toEqual([]);
    });

    it('stores quotas with used 0 and resetsAt at the next UTC day / month start (null for LIFETIME)', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, {
        organizationId: organization.id,
        quotas: [
          { meter: 'REQUESTS', period: 'DAY', limit: 1000 },
          { meter: 'TOKENS', period: 'MONTH', limit: 50_000 },
          { meter: 'COST_USD', period: 'LIFETIME', limit: 12.5 },
        ],
      });
      const now = server.clock.now();
      const nextDay = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
      const nextMonth = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
      const stored = byMeter((await getKey(key.id)).quotas).map((quota: any) => ({ ...quota, resetsAt: ms(quota.resetsAt) }));
      expect(stored).toEqual(byMeter([
        { organizationId: null, apiKeyId: key.id, meter: 'REQUESTS', period: 'DAY', limit: 1000, used: 0, held: 0, remaining: 1000, percentUsed: 0, resetsAt: nextDay },
        { organizationId: null, apiKeyId: key.id, meter: 'TOKENS', period: 'MONTH', limit: 50_000, used: 0, held: 0, remaining: 50_000, percentUsed: 0, resetsAt: nextMonth },
        { organizationId: null, apiKeyId: key.id, meter: 'COST_USD', period: 'LIFETIME', limit: 12.5, used: 0, held: 0, remaining: 12.5, percentUsed: 0, resetsAt: null },
      ]));
    });

    it('computes quota resetsAt from the server clock across a month end', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, {
        organizationId: organization.id,
        quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 10 }, { meter: 'REQUESTS', period: 'MONTH', limit: 100 }],
      });
      const before = server.clock.now();
      server.clock.set('2026-03-31T23:59:59.999Z');
      try {
        const quotas = byMeter((await getKey(key.id)).quotas);
        expect(quotas.map((quota: any) => [quota.period, ms(quota.resetsAt)])).toEqual([
          ['DAY', Date.UTC(2026, 3, 1)],
          ['MONTH', Date.UTC(2026, 3, 1)],
        ]);
      } finally {
        server.clock.set(before);
      }
    });

    it('round-trips maxCostPerRequest, meta, ownerEmail and externalId', async () => {
      const organization = await createOrganization(server);
      const meta = { team: 'billing', tier: 3, tags: ['a', 'b'], nested: { on: true, none: null } };
      const key = await createKey(server, {
        organizationId: organization.id,
        maxCostPerRequest: 250,
        meta,
        ownerEmail: 'ops@example.com',
        externalId: 'cust-42',
      });
      for (const apiKey of [key.apiKey, await getKey(key.id)]) {
        expect(apiKey.maxCostPerRequest).toBe(250);
        expect(apiKey.meta).toEqual(meta);
        expect(apiKey.ownerEmail).toBe('ops@example.com');
        expect(apiKey.externalId).toBe('cust-42');
      }
    });

    it('leaves maxCostPerRequest, meta, ownerEmail and externalId null when not given', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      expect([key.apiKey.maxCostPerRequest, key.apiKey.meta, key.apiKey.ownerEmail, key.apiKey.externalId]).toEqual([null, null, null, null]);
      expect(key.apiKey.quotas).toEqual([]);
    });

    it('trims the name', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, name: '  Spaced name  ' });
      expect(key.apiKey.name).toBe('Spaced name');
    });

    it('makes a key that authenticates at once (viewer)', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, scopes: ['inference:run', 'keys:read'] });
      const response = await server.gql(VIEWER, {}, { key: key.secret });
      expect(response.status).toBe(200);
      expect(response.body.data.viewer.apiKey.id).toBe(key.id);
      expect(response.body.data.viewer.organization.id).toBe(organization.id);
      expect(response.body.data.viewer.scopes).toEqual(['inference:run', 'keys:read']);
    });

    it("creates the key in the caller's own organization when organizationId is absent", async () => {
      const { organizationId, key: tenantKey } = await createTenant(server);
      const response = await create({ name: 'child' }, tenantKey.secret);
      expect(response.status).toBe(200);
      expect(response.body.data.createApiKey.apiKey.organizationId).toBe(organizationId);
    });

    it("refuses a tenant key creating a key in another organization with 404 NOT_FOUND and writes nothing", async () => {
      const { key: tenantKey } = await createTenant(server);
      const other = await createOrganization(server);
      const before = await snapshot(other.id);
      const response = await create({ organizationId: other.id, name: 'intruder' }, tenantKey.secret);
      expectRefused(response, 'NOT_FOUND');
      expect(await snapshot(other.id)).toEqual(before);
    });

    it('records an api_key.create audit entry by the calling key, without the secret', async () => {
      const { organizationId, key: tenantKey } = await createTenant(server);
      const response = await create({ name: 'audited', preset: 'READ' }, tenantKey.secret);
      const { secret, apiKey } = response.body.data.createApiKey;
      const entry = await auditEntry(organizationId, 'api_key.create', apiKey.id);
      expect(entry).toMatchObject({
        action: 'api_key.create',
        targetType: 'api_key',
        targetId: apiKey.id,
        organizationId,
        actorKeyId: tenantKey.id,
      });
      expect(['127.0.0.1', '::ffff:127.0.0.1']).toContain(entry.ip);
      expect(JSON.stringify(entry)).not.toContain(secret);
      expect(JSON.stringify(entry)).not.toMatch(ANY_SECRET);
    });
  });

  describe('secrets never shown again', () => {
    it('keeps the secret out of apiKeys, apiKey, viewer, auditLog and the logs', async () => {
      const { organizationId, key: tenantKey } = await createTenant(server);
      const created = await createKey(server, { organizationId, environment: 'TEST', meta: { note: 'plain' } });
      const rotated = await server.gql(ROTATE, { id: created.id, grace: 3600 });
      expect(rotated.status).toBe(200);
      const newSecret: string = rotated.body.data.rotateApiKey.secret;
      const newId: string = rotated.body.data.rotateApiKey.apiKey.id;
      await server.gql(REVOKE, { id: newId, reason: 'done' });

      const outputs = [
        await list({ organizationId }),
        await list({}, {}, tenantKey.secret),
        await server.gql(GET, { id: created.id }),
        await server.gql(GET, { id: newId }, { key: tenantKey.secret }),
        await server.gql(VIEWER, {}, { key: created.secret }),
        await server.gql(VIEWER, {}, { key: tenantKey.secret }),
        await server.gql(AUDIT, { organizationId }),
        await server.gql(AUDIT, {}, { key: tenantKey.secret }),
      ];
      for (const output of outputs) {
        expect(output.status).toBe(200);
        const json = JSON.stringify(output.body);
        for (const secret of [created.secret, newSecret, tenantKey.secret, server.adminKey]) expect(json).not.toContain(secret);
        expect(json).not.toMatch(ANY_SECRET);
      }
      const logs = server.logs.join('');
      for (const secret of [created.secret, newSecret, tenantKey.secret]) expect(logs).not.toContain(secret);
    });
  });

  describe('apiKey', () => {
    it("returns a key of the caller's organization by id", async () => {
      const { key: tenantKey } = await createTenant(server);
      const created = await createKey(server, { organizationId: tenantKey.organizationId, name: 'visible' });
      const apiKey = await getKey(created.id, tenantKey.secret);
      expect(apiKey).toEqual({ ...created.apiKey });
    });

    it("answers 404 NOT_FOUND for another organization's key, with no data", async () => {
      const { key: tenantKey } = await createTenant(server);
      const other = await createTenant(server);
      const response = await server.gql(GET, { id: other.key.id }, { key: tenantKey.secret });
      expectRefused(response, 'NOT_FOUND');
      expect(response.body.data?.apiKey ?? null).toBeNull();
    });

    it('answers 404 NOT_FOUND for an id that does not exist', async () => {
      const response = await server.gql(GET, { id: 'key_0000000000000000000000000a' });
      expectRefused(response, 'NOT_FOUND');
    });
  });

  describe('apiKeys', () => {
    describe('filters', () => {
      it('lists only the given organization for a platform admin', async () => {
        const a = await createOrganization(server);
        const b = await createOrganization(server);
        const a1 = await createKey(server, { organizationId: a.id });
        const a2 = await createKey(server, { organizationId: a.id });
        await createKey(server, { organizationId: b.id });
        const response = await list({ organizationId: a.id });
        expect(response.status).toBe(200);
        expect(response.body.data.apiKeys.totalCount).toBe(2);
        expect(response.body.data.apiKeys.nodes.map((n: any) => n.id).sort()).toEqual([a1.id, a2.id].sort());
      });

      it("lists the caller's own organization by default for a tenant key", async () => {
        const { organizationId, key: tenantKey } = await createTenant(server);
        const child = await createKey(server, { organizationId });
        await createTenant(server);
        const response = await list({}, {}, tenantKey.secret);
        expect(response.status).toBe(200);
        expect(response.body.data.apiKeys.nodes.map((n: any) => n.id).sort()).toEqual([tenantKey.id, child.id].sort());
        expect(response.body.data.apiKeys.totalCount).toBe(2);
      });

      it("refuses a tenant key listing another organization with 404 NOT_FOUND", async () => {
        const { key: tenantKey } = await createTenant(server);
        const other = await createOrganization(server);
        const response = await list({ organizationId: other.id }, {}, tenantKey.secret);
        expectRefused(response, 'NOT_FOUND');
      });

      it('filters by status ACTIVE, DISABLED, EXPIRED (by the clock) and REVOKED', async () => {
        const organization = await createOrganization(server);
        const organizationId = organization.id;
        const active = await createKey(server, { organizationId });
        const expiring = await createKey(server, { organizationId, expiresInDays: 1 });
        const disabled = await createKey(server, { organizationId, expiresInDays: 1 });
        const revoked = await createKey(server, { organizationId, expiresInDays: 1 });
        expect((await server.gql(SET_ENABLED, { id: disabled.id, enabled: false })).status).toBe(200);
        expect((await server.gql(REVOKE, { id: revoked.id, reason: 'test' })).status).toBe(200);

        expect(await listIds({ organizationId, status: 'ACTIVE' })).toEqual([active.id, expiring.id].sort());
        expect(await listIds({ organizationId, status: 'EXPIRED' })).toEqual([]);
        expect(await listIds({ organizationId, status: 'DISABLED' })).toEqual([disabled.id]);
        expect(await listIds({ organizationId, status: 'REVOKED' })).toEqual([revoked.id]);

        await withClockAdvanced(DAY_MS + 1, async () => {
          expect(await listIds({ organizationId, status: 'ACTIVE' })).toEqual([active.id]);
          expect(await listIds({ organizationId, status: 'EXPIRED' })).toEqual([expiring.id]);
          expect(await listIds({ organizationId, status: 'DISABLED' })).toEqual([disabled.id]);
          expect(await listIds({ organizationId, status: 'REVOKED' })).toEqual([revoked.id]);
          const all = await list({ organizationId });
          const statuses = Object.fromEntries(all.body.data.apiKeys.nodes.map((n: any) => [n.id, n.status]));
          expect(statuses).toEqual({ [active.id]: 'ACTIVE', [expiring.id]: 'EXPIRED', [disabled.id]: 'DISABLED', [revoked.id]: 'REVOKED' });
        });
      });

      it('filters by environment', async () => {
        const organization = await createOrganization(server);
        const live = await createKey(server, { organizationId: organization.id });
        const test1 = await createKey(server, { organizationId: organization.id, environment: 'TEST' });
        const test2 = await createKey(server, { organizationId: organization.id, environment: 'TEST' });
        expect(await listIds({ organizationId: organization.id, environment: 'LIVE' })).toEqual([live.id]);
        expect(await listIds({ organizationId: organization.id, environment: 'TEST' })).toEqual([test1.id, test2.id].sort());
        const response = await list({ organizationId: organization.id, environment: 'TEST' });
        expect(response.body.data.apiKeys.totalCount).toBe(2);
      });

      it('combines filters (status and environment)', async () => {
        const organization = await createOrganization(server);
        const organizationId = organization.id;
        const testActive = await createKey(server, { organizationId, environment: 'TEST' });
        const testDisabled = await createKey(server, { organizationId, environment: 'TEST' });
        await createKey(server, { organizationId });
        await server.gql(SET_ENABLED, { id: testDisabled.id, enabled: false });
        expect(await listIds({ organizationId, environment: 'TEST', status: 'ACTIVE' })).toEqual([testActive.id]);
      });

      it('searches the name case-insensitively', async () => {
        const organization = await createOrganization(server);
        const match = await createKey(server, { organizationId: organization.id, name: 'Billing Service' });
        await createKey(server, { organizationId: organization.id, name: 'Search indexer' });
        expect(await listIds({ organizationId: organization.id, search: 'bILLING sERV' })).toEqual([match.id]);
        const response = await list({ organizationId: organization.id, search: 'billing' });
        expect(response.body.data.apiKeys.totalCount).toBe(1);
      });

      it('searches ownerEmail case-insensitively', async () => {
        const organization = await createOrganization(server);
        const match = await createKey(server, { organizationId: organization.id, name: 'one', ownerEmail: 'Alice.Ops@Example.com' });
        await createKey(server, { organizationId: organization.id, name: 'two', ownerEmail: 'bob@example.com' });
        expect(await listIds({ organizationId: organization.id, search: 'alice.ops@EXAMPLE' })).toEqual([match.id]);
      });

      it('searches externalId case-insensitively', async () => {
        const organization = await createOrganization(server);
        const match = await createKey(server, { organizationId: organization.id, name: 'one', externalId: 'CUST-7781' });
        await createKey(server, { organizationId: organization.id, name: 'two', externalId: 'cust-1234' });
        expect(await listIds({ organizationId: organization.id, search: 'cust-77' })).toEqual([match.id]);
      });

      it('searches the hint', async () => {
        const organization = await createOrganization(server);
        const match = await createKey(server, { organizationId: organization.id, name: 'one' });
        await createKey(server, { organizationId: organization.id, name: 'two' });
        expect(await listIds({ organizationId: organization.id, search: match.apiKey.hint })).toEqual([match.id]);
      });

      it.each([
        ['%', '100% done', '100 done'],
        // Not a bare "_": every hint (kw_live_…) contains one.
        ['e_c', 'snake_case', 'snakeXcase'],
        ['!', 'wow!', 'wow'],
      ])('matches "%s" in a search literally, not as a wildcard', async (search, matching, other) => {
        const organization = await createOrganization(server);
        const match = await createKey(server, { organizationId: organization.id, name: matching });
        await createKey(server, { organizationId: organization.id, name: other });
        expect(await listIds({ organizationId: organization.id, search })).toEqual([match.id]);
      });

      it('matches "a%b" literally in a search', async () => {
        const organization = await createOrganization(server);
        const match = await createKey(server, { organizationId: organization.id, name: 'rate a%b test' });
        await createKey(server, { organizationId: organization.id, name: 'rate aXXb test' });
        expect(await listIds({ organizationId: organization.id, search: 'A%B' })).toEqual([match.id]);
      });

      it('excludes deleted keys', async () => {
        const organization = await createOrganization(server);
        const kept = await createKey(server, { organizationId: organization.id });
        const deleted = await createKey(server, { organizationId: organization.id });
        await server.gql(DELETE, { id: deleted.id });
        expect(await listIds({ organizationId: organization.id })).toEqual([kept.id]);
      });
    });

    describe('pagination', () => {
      it('pages newest first with a cursor, without duplicates, and totalCount on every page', async () => {
        const organization = await createOrganization(server);
        const created: CreatedKey[] = [];
        const before = server.clock.now();
        try {
          for (let i = 0; i < 5; i++) {
            server.clock.advance(1000);
            created.push(await createKey(server, { organizationId: organization.id, name: `key ${i}` }));
          }
        } finally {
          server.clock.set(before);
        }
        const expected = created.map((key) => key.id).reverse();

        const seen: string[] = [];
        const pages: Array<{ count: number; totalCount: number; hasNextPage: boolean }> = [];
        let after: string | undefined;
        for (let page = 0; page < 5; page++) {
          const response = await list({ organizationId: organization.id }, { first: 2, ...(after !== undefined && { after }) });
          expect(response.status).toBe(200);
          const { nodes, totalCount, pageInfo } = response.body.data.apiKeys;
          seen.push(...nodes.map((n: any) => n.id));
          pages.push({ count: nodes.length, totalCount, hasNextPage: pageInfo.hasNextPage });
          if (!pageInfo.hasNextPage) break;
          after = pageInfo.endCursor;
        }
        expect(pages).toEqual([
          { count: 2, totalCount: 5, hasNextPage: true },
          { count: 2, totalCount: 5, hasNextPage: true },
          { count: 1, totalCount: 5, hasNextPage: false },
        ]);
        expect(seen).toEqual(expected);
        expect(new Set(seen).size).toBe(5);
      });

      it('lists keys created at the same instant newest first (ids sort by creation)', async () => {
        const organization = await createOrganization(server);
        const created: string[] = [];
        for (let i = 0; i < 5; i++) created.push((await createKey(server, { organizationId: organization.id, name: `same instant ${i}` })).id);
        const response = await list({ organizationId: organization.id });
        expect(response.body.data.apiKeys.nodes.map((n: any) => n.id)).toEqual([...created].reverse());
      });

      it('answers an empty page with hasNextPage false after the last key', async () => {
        const organization = await createOrganization(server);
        await createKey(server, { organizationId: organization.id });
        await createKey(server, { organizationId: organization.id });
        const first = await list({ organizationId: organization.id }, { first: 2 });
        expect(first.body.data.apiKeys.pageInfo.hasNextPage).toBe(false);
        const rest = await list({ organizationId: organization.id }, { first: 2, after: first.body.data.apiKeys.pageInfo.endCursor });
        expect(rest.status).toBe(200);
        expect(rest.body.data.apiKeys.nodes).toEqual([]);
        expect(rest.body.data.apiKeys.pageInfo.hasNextPage).toBe(false);
        expect(rest.body.data.apiKeys.totalCount).toBe(2);
      });

      it.each([0, 501, -1])('refuses first: %i with 400 BAD_USER_INPUT naming "first"', async (first) => {
        const organization = await createOrganization(server);
        const response = await list({ organizationId: organization.id }, { first });
        expectBadInput(response, 'first');
      });

      it('accepts first: 500', async () => {
        const organization = await createOrganization(server);
        const response = await list({ organizationId: organization.id }, { first: 500 });
        expect(response.status).toBe(200);
        expect(response.body.data.apiKeys.totalCount).toBe(0);
      });

      it.each(['not-a-cursor', 'a2V5X2Zvbw', '%%%'])('refuses the cursor %p with 400 BAD_USER_INPUT naming "after"', async (after) => {
        const organization = await createOrganization(server);
        const response = await list({ organizationId: organization.id }, { first: 2, after });
        expectBadInput(response, 'after');
      });
    });
  });

  describe('updateApiKey', () => {
    async function update(id: string, input: Record<string, unknown>, key?: string): Promise<GraphQLResponse> {
      return server.gql(UPDATE, { id, input }, { key });
    }

    it('renames a key (trimmed) and leaves every other field alone', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, {
        organizationId: organization.id, preset: 'WRITE', ipAllowlist: ['10.0.0.0/8'], meta: { a: 1 }, ownerEmail: 'x@example.com',
        externalId: 'ext', maxCostPerRequest: 5, expiresInDays: 3, quotas: [{ meter: 'TOKENS', period: 'DAY', limit: 9 }],
      });
      const response = await update(key.id, { name: '  Renamed  ' });
      expect(response.status).toBe(200);
      expect(response.body.data.updateApiKey).toEqual({ ...key.apiKey, name: 'Renamed' });
      expect(await getKey(key.id)).toEqual({ ...key.apiKey, name: 'Renamed' });
    });

    it('replaces the scopes (sorted, deduplicated)', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      const response = await update(key.id, { scopes: ['usage:read', 'inference:run', 'usage:read'] });
      expect(response.status).toBe(200);
      expect(response.body.data.updateApiKey.scopes).toEqual(['inference:run', 'usage:read']);
      const viewer = await server.gql(VIEWER, {}, { key: key.secret });
      expect(viewer.body.data.viewer.scopes).toEqual(['inference:run', 'usage:read']);
    });

    it('sets expiresAt, and null clears it', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      const expiresAt = new Date(server.clock.now().getTime() + 2 * DAY_MS).toISOString();
      const set = await update(key.id, { expiresAt });
      expect(ms(set.body.data.updateApiKey.expiresAt)).toBe(ms(expiresAt));
      const cleared = await update(key.id, { expiresAt: null });
      expect(cleared.status).toBe(200);
      expect(cleared.body.data.updateApiKey.expiresAt).toBeNull();
      await withClockAdvanced(3 * DAY_MS, async () => {
        expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
      });
    });

    it('replaces the ipAllowlist, normalised to CIDR, and [] allows any address', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, ipAllowlist: ['10.0.0.0/8'] });
      const replaced = await update(key.id, { ipAllowlist: ['10.1.2.3', '127.0.0.1'] });
      expect(replaced.body.data.updateApiKey.ipAllowlist).toEqual(['10.1.2.3/32', '127.0.0.1/32']);
      expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
      const cleared = await update(key.id, { ipAllowlist: [] });
      expect(cleared.body.data.updateApiKey.ipAllowlist).toEqual([]);
    });

    it('replaces the rate limits, and [] removes them', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      const rateLimits = [{ name: 'per-second', limit: 2, windowSeconds: 1 }];
      const replaced = await update(key.id, { rateLimits });
      expect(replaced.body.data.updateApiKey.rateLimits).toEqual([{ ...rateLimits[0], meter: 'REQUESTS' }]);
      const cleared = await update(key.id, { rateLimits: [] });
      expect(cleared.body.data.updateApiKey.rateLimits).toEqual([]);
      expect((await getKey(key.id)).rateLimits).toEqual([]);
    });

    it('replaces the quotas, and [] removes them', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 10 }] });
      const replaced = await update(key.id, { quotas: [{ meter: 'TOKENS', period: 'LIFETIME', limit: 77 }] });
      expect(replaced.status).toBe(200);
      expect((await getKey(key.id)).quotas).toEqual([
        { organizationId: null, apiKeyId: key.id, meter: 'TOKENS', period: 'LIFETIME', limit: 77, used: 0, held: 0, remaining: 77, percentUsed: 0, resetsAt: null },
      ]);
      const cleared = await update(key.id, { quotas: [] });
      expect(cleared.status).toBe(200);
      expect((await getKey(key.id)).quotas).toEqual([]);
    });

    it('sets maxCostPerRequest, meta, ownerEmail and externalId', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, meta: { old: true } });
      const response = await update(key.id, { maxCostPerRequest: 1_000_000, meta: { new: 'value', n: 1 }, ownerEmail: 'new@example.org', externalId: 'ext-9' });
      expect(response.status).toBe(200);
      const updated = await getKey(key.id);
      expect(updated.maxCostPerRequest).toBe(1_000_000);
      expect(updated.meta).toEqual({ new: 'value', n: 1 });
      expect(updated.ownerEmail).toBe('new@example.org');
      expect(updated.externalId).toBe('ext-9');
    });

    it('clears expiresAt, maxCostPerRequest, meta, ownerEmail and externalId with null', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, {
        organizationId: organization.id, expiresInDays: 5, maxCostPerRequest: 10, meta: { a: 1 }, ownerEmail: 'a@example.com', externalId: 'e-1',
      });
      const response = await update(key.id, { expiresAt: null, maxCostPerRequest: null, meta: null, ownerEmail: null, externalId: null });
      expect(response.status).toBe(200);
      const updated = await getKey(key.id);
      expect([updated.expiresAt, updated.maxCostPerRequest, updated.meta, updated.ownerEmail, updated.externalId]).toEqual([null, null, null, null, null]);
      expect(updated.name).toBe(key.apiKey.name);
      expect(updated.scopes).toEqual(key.apiKey.scopes);
    });

    it('records an api_key.update audit entry listing the changed fields', async () => {
      const { organizationId, key: tenantKey } = await createTenant(server);
      const key = await createKey(server, { organizationId });
      await update(key.id, { name: 'changed', meta: { x: 1 } }, tenantKey.secret);
      const entry = await auditEntry(organizationId, 'api_key.update', key.id);
      expect(entry).toMatchObject({ action: 'api_key.update', targetType: 'api_key', targetId: key.id, actorKeyId: tenantKey.id, organizationId });
      expect(entry.metadata.changed).toEqual(['meta', 'name']);
    });

    it('refuses scopes beyond the caller with 403 INSUFFICIENT_SCOPE and changes nothing', async () => {
      const organization = await createOrganization(server);
      const writer = await createKey(server, { organizationId: organization.id, preset: 'WRITE' });
      const target = await createKey(server, { organizationId: organization.id, preset: 'READ' });
      const before = await snapshot(organization.id);
      const response = await update(target.id, { name: 'should not stick', scopes: ['keys:*'] }, writer.secret);
      expectRefused(response, 'INSUFFICIENT_SCOPE');
      expect(response.body.errors![0].message).toContain('keys:*');
      const after = await getKey(target.id);
      expect(after.scopes).toEqual(READ_SCOPES);
      expect(after.name).toBe(target.apiKey.name);
      expect(await snapshot(organization.id)).toEqual(before);
    });

    it('lets a caller narrow scopes within its own', async () => {
      const organization = await createOrganization(server);
      const writer = await createKey(server, { organizationId: organization.id, preset: 'WRITE' });
      const target = await createKey(server, { organizationId: organization.id, preset: 'READ' });
      const response = await update(target.id, { scopes: ['keys:read', 'keys:write'] }, writer.secret);
      expect(response.status).toBe(200);
      expect(response.body.data.updateApiKey.scopes).toEqual(['keys:read', 'keys:write']);
    });

    it.each([['platform:admin'], ['platform:*']])(
      'refuses %p on a key of a customer organization with 400 BAD_USER_INPUT, even from the platform admin',
      async (scope) => {
        const organization = await createOrganization(server);
        const key = await createKey(server, { organizationId: organization.id });
        const before = await snapshot(organization.id);
        const response = await update(key.id, { scopes: [scope] });
        expectBadInput(response, 'scopes');
        expect((await getKey(key.id)).scopes).toEqual(READ_SCOPES);
        expect(await snapshot(organization.id)).toEqual(before);
      },
    );

    it("answers 404 NOT_FOUND for another organization's key and changes nothing", async () => {
      const { key: tenantKey } = await createTenant(server);
      const other = await createTenant(server);
      const response = await update(other.key.id, { name: 'hijacked' }, tenantKey.secret);
      expectRefused(response, 'NOT_FOUND');
      expect((await getKey(other.key.id)).name).toBe(other.key.apiKey.name);
    });

    it.each([
      ['an empty name', { name: '' }, 'name'],
      ['an invalid CIDR', { ipAllowlist: ['10.0.0.0/33'] }, 'ipAllowlist'],
      ['an invalid scope', { scopes: ['Keys:Read'] }, 'scopes'],
      ['expiresAt in the past', { expiresAt: '2020-01-01T00:00:00.000Z' }, 'expiresAt'],
      ['maxCostPerRequest 0', { maxCostPerRequest: 0 }, 'maxCostPerRequest'],
      ['a rate limit of 0', { rateLimits: [{ name: 'x', limit: 0, windowSeconds: 60 }] }, 'rateLimits'],
      ['a quota limit of 0', { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 0 }] }, 'quotas'],
      ['meta over 8 KiB', { meta: { blob: 'x'.repeat(8 * 1024) } }, 'meta'],
      ['an ownerEmail that is not an email', { ownerEmail: 'not-an-email' }, 'ownerEmail'],
    ])('refuses %s with 400 BAD_USER_INPUT naming the field and changes nothing', async (_what, input, field) => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, quotas: [{ meter: 'TOKENS', period: 'DAY', limit: 5 }] });
      const before = await snapshot(organization.id);
      const response = await update(key.id, { name: 'must not stick', ...input });
      expectBadInput(response, field);
      expect(await getKey(key.id)).toEqual(key.apiKey);
      expect(await snapshot(organization.id)).toEqual(before);
    });
  });

  describe('setApiKeyEnabled', () => {
    it('disables a key (status DISABLED, refused with 401 KEY_DISABLED) and enables it again', async () => {
      const { organizationId, key: tenantKey } = await createTenant(server);
      const key = await createKey(server, { organizationId });
      const disabled = await server.gql(SET_ENABLED, { id: key.id, enabled: false }, { key: tenantKey.secret });
      expect(disabled.status).toBe(200);
      expect(disabled.body.data.setApiKeyEnabled.status).toBe('DISABLED');
      expect((await getKey(key.id)).status).toBe('DISABLED');
      expectRefused(await server.gql(VIEWER, {}, { key: key.secret }), 'KEY_DISABLED');

      const enabled = await server.gql(SET_ENABLED, { id: key.id, enabled: true }, { key: tenantKey.secret });
      expect(enabled.body.data.setApiKeyEnabled.status).toBe('ACTIVE');
      expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);

      expect((await auditEntry(organizationId, 'api_key.disable', key.id)).actorKeyId).toBe(tenantKey.id);
      expect((await auditEntry(organizationId, 'api_key.enable', key.id)).actorKeyId).toBe(tenantKey.id);
    });

    it('shows EXPIRED, not ACTIVE, when an expired key is enabled', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, expiresInDays: 1 });
      await withClockAdvanced(DAY_MS, async () => {
        const response = await server.gql(SET_ENABLED, { id: key.id, enabled: true });
        expect(response.status).toBe(200);
        expect(response.body.data.setApiKeyEnabled.status).toBe('EXPIRED');
      });
    });

    it("answers 404 NOT_FOUND for another organization's key", async () => {
      const { key: tenantKey } = await createTenant(server);
      const other = await createTenant(server);
      expectRefused(await server.gql(SET_ENABLED, { id: other.key.id, enabled: false }, { key: tenantKey.secret }), 'NOT_FOUND');
      expect((await getKey(other.key.id)).status).toBe('ACTIVE');
    });
  });

  describe('revokeApiKey', () => {
    it('revokes with reason, revokedAt and revokedBy = the calling key, and the key is refused with 401 KEY_REVOKED', async () => {
      const { organizationId, key: tenantKey } = await createTenant(server);
      const key = await createKey(server, { organizationId });
      const response = await server.gql(REVOKE, { id: key.id, reason: '  leaked in a log  ' }, { key: tenantKey.secret });
      expect(response.status).toBe(200);
      const revoked = response.body.data.revokeApiKey;
      expect(revoked.status).toBe('REVOKED');
      expect(revoked.revokedReason).toBe('leaked in a log');
      expect(revoked.revokedBy).toBe(tenantKey.id);
      expect(ms(revoked.revokedAt)).toBe(server.clock.now().getTime());
      const stored = await getKey(key.id);
      expect([stored.status, stored.revokedReason, stored.revokedBy]).toEqual(['REVOKED', 'leaked in a log', tenantKey.id]);
      expectRefused(await server.gql(VIEWER, {}, { key: key.secret }), 'KEY_REVOKED');

      const entry = await auditEntry(organizationId, 'api_key.revoke', key.id);
      expect(entry).toMatchObject({ action: 'api_key.revoke', targetId: key.id, actorKeyId: tenantKey.id, metadata: { reason: 'leaked in a log' } });
    });

    it('sets revokedBy to the platform admin key when it revokes', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      const response = await server.gql(REVOKE, { id: key.id, reason: 'offboarding' });
      expect(response.body.data.revokeApiKey.revokedBy).toBe(adminKeyId);
    });

    it.each([['empty', ''], ['whitespace', '   '], ['501-character', 'r'.repeat(501)]])(
      'refuses a %s reason with 400 BAD_USER_INPUT naming "reason" and leaves the key active',
      async (_what, reason) => {
        const organization = await createOrganization(server);
        const key = await createKey(server, { organizationId: organization.id });
        const before = await snapshot(organization.id);
        const response = await server.gql(REVOKE, { id: key.id, reason });
        expectBadInput(response, 'reason');
        const stored = await getKey(key.id);
        expect([stored.status, stored.revokedAt, stored.revokedReason]).toEqual(['ACTIVE', null, null]);
        expect(await snapshot(organization.id)).toEqual(before);
      },
    );

    it.each([
      ['revoked again', REVOKE, { reason: 'again' }],
      ['updated', UPDATE, { input: { name: 'new name' } }],
      ['enabled', SET_ENABLED, { enabled: true }],
      ['disabled', SET_ENABLED, { enabled: false }],
      ['rotated', ROTATE, { grace: 60 }],
    ])('refuses a revoked key being %s with 400 BAD_USER_INPUT and writes nothing', async (_what, mutation, variables) => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      await server.gql(REVOKE, { id: key.id, reason: 'first' });
      const revoked = await getKey(key.id);
      const before = await snapshot(organization.id);
      const response = await server.gql(mutation, { id: key.id, ...variables });
      expectRefused(response, 'BAD_USER_INPUT');
      expect(await getKey(key.id)).toEqual(revoked);
      expect(await snapshot(organization.id)).toEqual(before);
    });

    it("answers 404 NOT_FOUND for another organization's key", async () => {
      const { key: tenantKey } = await createTenant(server);
      const other = await createTenant(server);
      expectRefused(await server.gql(REVOKE, { id: other.key.id, reason: 'x' }, { key: tenantKey.secret }), 'NOT_FOUND');
      expect((await getKey(other.key.id)).status).toBe('ACTIVE');
    });
  });

  describe('deleteApiKey', () => {
    it('soft-deletes: true, then NOT_FOUND by id, gone from the list and totalCount drops', async () => {
      const { organizationId, key: tenantKey } = await createTenant(server);
      const kept = await createKey(server, { organizationId });
      const doomed = await createKey(server, { organizationId });
      expect((await list({ organizationId })).body.data.apiKeys.totalCount).toBe(3);

      const response = await server.gql(DELETE, { id: doomed.id }, { key: tenantKey.secret });
      expect(response.status).toBe(200);
      expect(response.body.data.deleteApiKey).toBe(true);

      expectRefused(await server.gql(GET, { id: doomed.id }), 'NOT_FOUND');
      const after = await list({ organizationId });
      expect(after.body.data.apiKeys.totalCount).toBe(2);
      expect(after.body.data.apiKeys.nodes.map((n: any) => n.id).sort()).toEqual([tenantKey.id, kept.id].sort());
      expectRefused(await server.gql(VIEWER, {}, { key: doomed.secret }), 'INVALID_API_KEY');

      const entry = await auditEntry(organizationId, 'api_key.delete', doomed.id);
      expect(entry).toMatchObject({ action: 'api_key.delete', targetType: 'api_key', targetId: doomed.id, actorKeyId: tenantKey.id });
    });

    it.each([
      ['deleted again', DELETE, {}],
      ['updated', UPDATE, { input: { name: 'x' } }],
      ['enabled', SET_ENABLED, { enabled: true }],
      ['revoked', REVOKE, { reason: 'x' }],
      ['rotated', ROTATE, { grace: 0 }],
    ])('answers 404 NOT_FOUND for a deleted key being %s', async (_what, mutation, variables) => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      await server.gql(DELETE, { id: key.id });
      const before = await snapshot(organization.id);
      expectRefused(await server.gql(mutation, { id: key.id, ...variables }), 'NOT_FOUND');
      expect(await snapshot(organization.id)).toEqual(before);
    });

    it("answers 404 NOT_FOUND for another organization's key and deletes nothing", async () => {
      const { key: tenantKey } = await createTenant(server);
      const other = await createTenant(server);
      expectRefused(await server.gql(DELETE, { id: other.key.id }, { key: tenantKey.secret }), 'NOT_FOUND');
      expect((await getKey(other.key.id)).status).toBe('ACTIVE');
    });
  });

  describe('rotateApiKey', () => {
    it('returns a new key and secret that work at once, with rotatedFromId = the old key', async () => {
      const organization = await createOrganization(server);
      const old = await createKey(server, { organizationId: organization.id });
      const response = await server.gql(ROTATE, { id: old.id, grace: 60 });
      expect(response.status).toBe(200);
      const { secret, apiKey } = response.body.data.rotateApiKey;
      expect(secret).toMatch(SECRET_FORMAT);
      expect(secret).not.toBe(old.secret);
      expect(apiKey.id).not.toBe(old.id);
      expect(apiKey.rotatedFromId).toBe(old.id);
      expect(apiKey.hint).toBe(hintOf(secret));
      expect(apiKey.status).toBe('ACTIVE');
      const viewer = await server.gql(VIEWER, {}, { key: secret });
      expect(viewer.status).toBe(200);
      expect(viewer.body.data.viewer.apiKey.id).toBe(apiKey.id);
    });

    it('keeps the old secret working during the grace period and refuses it with 401 KEY_EXPIRED after previousKeyExpiresAt', async () => {
      const organization = await createOrganization(server);
      const old = await createKey(server, { organizationId: organization.id });
      const response = await server.gql(ROTATE, { id: old.id, grace: 3600 });
      const { secret, previousKeyExpiresAt } = response.body.data.rotateApiKey;
      expect(ms(previousKeyExpiresAt)).toBe(server.clock.now().getTime() + 3_600_000);

      const viewer = await server.gql(VIEWER, {}, { key: old.secret });
      expect(viewer.status).toBe(200);
      expect(viewer.body.data.viewer.apiKey.id).toBe(old.id);
      await withClockAdvanced(3_599_999, async () => {
        expect((await server.gql(VIEWER, {}, { key: old.secret })).status).toBe(200);
      });
      await withClockAdvanced(3_600_000, async () => {
        expectRefused(await server.gql(VIEWER, {}, { key: old.secret }), 'KEY_EXPIRED');
        expect((await server.gql(VIEWER, {}, { key: secret })).status).toBe(200);
        expect((await getKey(old.id)).status).toBe('EXPIRED');
      });
    });

    it('refuses the old secret at once with 401 KEY_EXPIRED for a grace period of 0', async () => {
      const organization = await createOrganization(server);
      const old = await createKey(server, { organizationId: organization.id });
      const response = await server.gql(ROTATE, { id: old.id, grace: 0 });
      expect(response.status).toBe(200);
      expect(ms(response.body.data.rotateApiKey.previousKeyExpiresAt)).toBe(server.clock.now().getTime());
      expectRefused(await server.gql(VIEWER, {}, { key: old.secret }), 'KEY_EXPIRED');
      expect((await server.gql(VIEWER, {}, { key: response.body.data.rotateApiKey.secret })).status).toBe(200);
    });

    it('uses no grace period when gracePeriodSeconds is omitted', async () => {
      const organization = await createOrganization(server);
      const old = await createKey(server, { organizationId: organization.id });
      const response = await server.gql(ROTATE, { id: old.id });
      expect(response.status).toBe(200);
      expectRefused(await server.gql(VIEWER, {}, { key: old.secret }), 'KEY_EXPIRED');
    });

    it('keeps every setting on the new key and moves the quotas to it', async () => {
      const organization = await createOrganization(server);
      const expiresAt = new Date(server.clock.now().getTime() + 90 * DAY_MS).toISOString();
      const old = await createKey(server, {
        organizationId: organization.id,
        name: 'rotating service',
        environment: 'TEST',
        scopes: ['inference:run', 'keys:read'],
        ipAllowlist: ['127.0.0.1', '10.0.0.0/8'],
        rateLimits: [{ name: 'burst', limit: 3, windowSeconds: 1 }],
        quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 500 }, { meter: 'COST_USD', period: 'MONTH', limit: 20 }],
        maxCostPerRequest: 7,
        meta: { team: 'ml', level: 2 },
        ownerEmail: 'ml@example.com',
        externalId: 'svc-1',
        expiresAt,
      });
      const before = await getKey(old.id);
      const response = await server.gql(ROTATE, { id: old.id, grace: 600 });
      expect(response.status).toBe(200);
      const { secret, apiKey } = response.body.data.rotateApiKey;
      expect(secret).toMatch(TEST_SECRET_FORMAT);
      const fresh = await getKey(apiKey.id);
      const same = ['organizationId', 'name', 'environment', 'scopes', 'ipAllowlist', 'rateLimits', 'maxCostPerRequest', 'meta', 'ownerEmail', 'externalId', 'requestCount'];
      for (const field of same) expect({ field, value: fresh[field] }).toEqual({ field, value: before[field] });
      expect(ms(fresh.expiresAt)).toBe(ms(expiresAt));
      expect(byMeter(fresh.quotas)).toEqual(byMeter(before.quotas).map((quota: any) => ({ ...quota, apiKeyId: apiKey.id })));
      expect((await getKey(old.id)).quotas).toEqual([]);
      const viewer = await server.gql(VIEWER, {}, { key: secret });
      expect(viewer.body.data.viewer.scopes).toEqual(['inference:run', 'keys:read']);
    });

    it('records an api_key.rotate audit entry naming the new key, without either secret', async () => {
      const { organizationId, key: tenantKey } = await createTenant(server);
      const old = await createKey(server, { organizationId });
      const response = await server.gql(ROTATE, { id: old.id, grace: 30 }, { key: tenantKey.secret });
      const { secret, apiKey } = response.body.data.rotateApiKey;
      const entry = await auditEntry(organizationId, 'api_key.rotate', old.id);
      expect(entry).toMatchObject({ action: 'api_key.rotate', targetType: 'api_key', targetId: old.id, actorKeyId: tenantKey.id, metadata: { newKeyId: apiKey.id } });
      const json = JSON.stringify(entry);
      expect(json).not.toContain(secret);
      expect(json).not.toContain(old.secret);
      expect(json).not.toMatch(ANY_SECRET);
    });

    it('refuses rotating the old key a second time with 400 BAD_USER_INPUT and writes nothing', async () => {
      const organization = await createOrganization(server);
      const old = await createKey(server, { organizationId: organization.id });
      const first = await server.gql(ROTATE, { id: old.id, grace: 3600 });
      expect(first.status).toBe(200);
      const before = await snapshot(organization.id);
      const again = await server.gql(ROTATE, { id: old.id, grace: 3600 });
      expectBadInput(again, 'id');
      expect(await snapshot(organization.id)).toEqual(before);
      expect((await server.gql(VIEWER, {}, { key: old.secret })).status).toBe(200);
    });

    it('lets the new key be rotated in turn', async () => {
      const organization = await createOrganization(server);
      const old = await createKey(server, { organizationId: organization.id });
      const first = await server.gql(ROTATE, { id: old.id, grace: 0 });
      const second = await server.gql(ROTATE, { id: first.body.data.rotateApiKey.apiKey.id, grace: 0 });
      expect(second.status).toBe(200);
      expect(second.body.data.rotateApiKey.apiKey.rotatedFromId).toBe(first.body.data.rotateApiKey.apiKey.id);
    });

    it.each([-1, 30 * 24 * 3600 + 1])('refuses gracePeriodSeconds %i with 400 BAD_USER_INPUT and writes nothing', async (grace) => {
      const organization = await createOrganization(server);
      const old = await createKey(server, { organizationId: organization.id });
      const before = await snapshot(organization.id);
      const response = await server.gql(ROTATE, { id: old.id, grace });
      expectBadInput(response, 'gracePeriodSeconds');
      expect(await snapshot(organization.id)).toEqual(before);
      expect((await server.gql(VIEWER, {}, { key: old.secret })).status).toBe(200);
    });

    it("answers 404 NOT_FOUND for another organization's key", async () => {
      const { key: tenantKey } = await createTenant(server);
      const other = await createTenant(server);
      const before = await snapshot(other.organizationId);
      expectRefused(await server.gql(ROTATE, { id: other.key.id, grace: 0 }, { key: tenantKey.secret }), 'NOT_FOUND');
      expect(await snapshot(other.organizationId)).toEqual(before);
    });
  });

  describe('organization key limit (maxKeys)', () => {
    async function limitedOrganization(maxKeys: number, keys: number): Promise<{ organizationId: string; keys: CreatedKey[] }> {
      const organization = await createOrganization(server, { maxKeys });
      const created: CreatedKey[] = [];
      for (let i = 0; i < keys; i++) created.push(await createKey(server, { organizationId: organization.id }));
      return { organizationId: organization.id, keys: created };
    }

    it('takes maxKeys keys and refuses one more with 403 KEY_LIMIT_EXCEEDED, writing nothing', async () => {
      const { organizationId } = await limitedOrganization(3, 3);
      const before = await snapshot(organizationId);
      expect(before.keys).toBe(3);
      const response = await create({ organizationId, name: 'one too many' });
      expectRefused(response, 'KEY_LIMIT_EXCEEDED');
      expect(await snapshot(organizationId)).toEqual(before);
    });

    it('frees a slot when a key is revoked', async () => {
      const { organizationId, keys } = await limitedOrganization(3, 3);
      await server.gql(REVOKE, { id: keys[0].id, reason: 'make room' });
      expect((await create({ organizationId, name: 'fits now' })).status).toBe(200);
      expectRefused(await create({ organizationId, name: 'full again' }), 'KEY_LIMIT_EXCEEDED');
    });

    it('frees a slot when a key is deleted', async () => {
      const { organizationId, keys } = await limitedOrganization(3, 3);
      await server.gql(DELETE, { id: keys[0].id });
      expect((await create({ organizationId, name: 'fits now' })).status).toBe(200);
      expectRefused(await create({ organizationId, name: 'full again' }), 'KEY_LIMIT_EXCEEDED');
    });

    it('still counts disabled keys', async () => {
      const { organizationId, keys } = await limitedOrganization(3, 3);
      await server.gql(SET_ENABLED, { id: keys[0].id, enabled: false });
      expectRefused(await create({ organizationId, name: 'no room' }), 'KEY_LIMIT_EXCEEDED');
    });

    it('rotates a key of a full organization, and rotation does not consume a slot', async () => {
      const { organizationId, keys } = await limitedOrganization(3, 2);
      const rotated = await server.gql(ROTATE, { id: keys[0].id, grace: 3600 });
      expect(rotated.status).toBe(200);
      expect((await create({ organizationId, name: 'third' })).status).toBe(200);
      const full = await server.gql(ROTATE, { id: keys[1].id, grace: 3600 });
      expect(full.status).toBe(200);
      expectRefused(await create({ organizationId, name: 'fourth' }), 'KEY_LIMIT_EXCEEDED');
    });

    it('applies the limit to keys created by a tenant key too', async () => {
      const organization = await createOrganization(server, { maxKeys: 2 });
      const tenantKey = await createKey(server, { organizationId: organization.id, preset: 'ADMIN' });
      expect((await create({ name: 'second' }, tenantKey.secret)).status).toBe(200);
      expectRefused(await create({ name: 'third' }, tenantKey.secret), 'KEY_LIMIT_EXCEEDED');
    });
  });

  describe('scope escalation', () => {
    it.each([
      ['scopes keys:*', { scopes: ['keys:*'] }, 'keys:*'],
      ['the ADMIN preset', { preset: 'ADMIN' }, '*'],
      ['the INFERENCE preset', { preset: 'INFERENCE' }, 'inference:*'],
      ['scope org:delete', { scopes: ['org:delete'] }, 'org:delete'],
    ])('refuses a WRITE key granting %s with 403 INSUFFICIENT_SCOPE and writes nothing', async (_what, input, named) => {
      const organization = await createOrganization(server);
      const writer = await createKey(server, { organizationId: organization.id, preset: 'WRITE' });
      const before = await snapshot(organization.id);
      const response = await create({ name: 'escalated', ...input }, writer.secret);
      expectRefused(response, 'INSUFFICIENT_SCOPE');
      expect(response.body.errors![0].message).toContain(named);
      expect(await snapshot(organization.id)).toEqual(before);
    });

    it('lets a WRITE key create keys within its own scopes', async () => {
      const organization = await createOrganization(server);
      const writer = await createKey(server, { organizationId: organization.id, preset: 'WRITE' });
      const response = await create({ name: 'narrower', preset: 'READ', scopes: ['keys:write'] }, writer.secret);
      expect(response.status).toBe(200);
      expect(response.body.data.createApiKey.apiKey.scopes).toEqual([...READ_SCOPES, 'keys:write'].sort());
    });

    it.each([['platform:admin'], ['platform:*']])(
      'refuses a customer ADMIN key granting %p with 403 INSUFFICIENT_SCOPE and writes nothing',
      async (scope) => {
        const { organizationId, key: tenantKey } = await createTenant(server);
        const before = await snapshot(organizationId);
        const response = await create({ name: 'escalated', scopes: [scope] }, tenantKey.secret);
        expectRefused(response, 'INSUFFICIENT_SCOPE');
        expect(await snapshot(organizationId)).toEqual(before);
      },
    );

    it.each<[string, Record<string, unknown>, string[]]>([
      ['the INFERENCE preset', { preset: 'INFERENCE' }, ['inference:*', 'usage:read']],
      ['a platform-defined scope', { scopes: ['inference:run'] }, ['inference:run']],
      ['*', { scopes: ['*'] }, ['*']],
      ['the ADMIN preset', { preset: 'ADMIN' }, ['*']],
    ])('lets a customer ADMIN key (* in its organization) grant %s in its own organization', async (_what, input, scopes) => {
      const { key: tenantKey } = await createTenant(server);
      const response = await create({ name: 'minted', ...input }, tenantKey.secret);
      expect(response.status).toBe(200);
      expect(response.body.data.createApiKey.apiKey.scopes).toEqual(scopes);
      expect(response.body.data.createApiKey.apiKey.organizationId).toBe(tenantKey.organizationId);
    });

    it('lets the platform admin give * to a key of a customer organization, where it never reaches platform:admin', async () => {
      const organization = await createOrganization(server);
      const created = await create({ organizationId: organization.id, name: 'org admin', scopes: ['*'] });
      expect(created.status).toBe(200);
      const secret = created.body.data.createApiKey.secret;
      expectRefused(await server.gql('{ organizations(first: 1) { totalCount } }', {}, { key: secret }), 'INSUFFICIENT_SCOPE');
      expect((await server.gql('{ viewer { scopes } }', {}, { key: secret })).body.data.viewer.scopes).toEqual(['*']);
    });

    it.each([['platform:admin'], ['platform:*']])(
      'refuses the platform admin giving %p to a key of a customer organization with 400 BAD_USER_INPUT',
      async (scope) => {
        const organization = await createOrganization(server);
        const before = await snapshot(organization.id);
        const response = await create({ organizationId: organization.id, name: 'too strong', scopes: [scope] });
        expectBadInput(response, 'scopes');
        expect(await snapshot(organization.id)).toEqual(before);
      },
    );

    it('lets the platform admin give platform:admin to a key of the platform organization', async () => {
      const response = await create({ organizationId: server.platformOrganizationId, name: 'second admin', scopes: ['platform:admin'] });
      expect(response.status).toBe(200);
      expect(response.body.data.createApiKey.apiKey.scopes).toEqual(['platform:admin']);
      const viewer = await server.gql('{ organizations(first: 1) { totalCount } }', {}, { key: response.body.data.createApiKey.secret });
      expect(viewer.status).toBe(200);
    });
  });

  describe('bad input on create', () => {
    const ipEntries = (n: number) => Array.from({ length: n }, (_, i) => `10.0.${Math.floor(i / 256)}.${i % 256}`);
    const scopeList = (n: number) => Array.from({ length: n }, (_, i) => `custom:action${i}`);

    it.each<[string, Record<string, unknown>, string | RegExp]>([
      ['an empty name', { name: '' }, 'name'],
      ['a whitespace-only name', { name: '   \t ' }, 'name'],
      ['a 201-character name', { name: 'n'.repeat(201) }, 'name'],
      ['a 1,000,000-character name', { name: 'n'.repeat(1_000_000) }, 'name'],
      ['an IPv4 prefix over 32', { ipAllowlist: ['10.0.0.0/33'] }, 'ipAllowlist'],
      ['a non-address ipAllowlist entry', { ipAllowlist: ['nonsense'] }, 'ipAllowlist'],
      ['101 ipAllowlist entries', { ipAllowlist: ipEntries(101) }, 'ipAllowlist'],
      ['scope "Keys:Read" (upper case)', { scopes: ['Keys:Read'] }, 'scopes'],
      ['scope "keys" (no action)', { scopes: ['keys'] }, 'scopes'],
      ['scope "keys:read:extra"', { scopes: ['keys:read:extra'] }, 'scopes'],
      ['an empty scope', { scopes: [''] }, 'scopes'],
      ['101 scopes', { scopes: scopeList(101) }, 'scopes'],
      ['expiresAt in the past', { expiresAt: '2020-01-01T00:00:00.000Z' }, 'expiresAt'],
      ['expiresAt together with expiresInDays', { expiresAt: '2099-01-01T00:00:00.000Z', expiresInDays: 5 }, /expiresAt|expiresInDays/],
      ['expiresInDays 0', { expiresInDays: 0 }, 'expiresInDays'],
      ['negative expiresInDays', { expiresInDays: -3 }, 'expiresInDays'],
      ['maxCostPerRequest 0', { maxCostPerRequest: 0 }, 'maxCostPerRequest'],
      ['maxCostPerRequest over 1,000,000', { maxCostPerRequest: 1_000_001 }, 'maxCostPerRequest'],
      ['a rate limit of 0', { rateLimits: [{ name: 'x', limit: 0, windowSeconds: 60 }] }, 'rateLimits'],
      ['a rate-limit window of 0 seconds', { rateLimits: [{ name: 'x', limit: 10, windowSeconds: 0 }] }, 'rateLimits'],
      ['duplicate rate-limit names', { rateLimits: [{ name: 'dup', limit: 1, windowSeconds: 1 }, { name: 'dup', limit: 2, windowSeconds: 60 }] }, 'rateLimits'],
      ['a quota limit of 0', { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 0 }] }, 'quotas'],
      ['a negative quota limit', { quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: -5 }] }, 'quotas'],
      ['duplicate quota meter+period', { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1 }, { meter: 'REQUESTS', period: 'DAY', limit: 2 }] }, 'quotas'],
      ['meta over 8 KiB', { meta: { blob: 'x'.repeat(8 * 1024) } }, 'meta'],
      ['an ownerEmail that is not an email', { ownerEmail: 'not-an-email' }, 'ownerEmail'],
    ])('refuses %s with 400 BAD_USER_INPUT naming the field and writes nothing', async (_what, input, field) => {
      const organization = await createOrganization(server);
      const before = await snapshot(organization.id);
      const response = await create({ organizationId: organization.id, name: 'valid name', ...input });
      expectBadInput(response, field);
      expect(await snapshot(organization.id)).toEqual(before);
    });

    it('accepts the limits themselves: a 200-character name, 100 scopes, 100 ipAllowlist entries, meta just under 8 KiB', async () => {
      const organization = await createOrganization(server);
      const meta = { blob: 'x'.repeat(8 * 1024 - 20) };
      const response = await create({
        organizationId: organization.id,
        name: 'n'.repeat(200),
        scopes: scopeList(100),
        ipAllowlist: ipEntries(100),
        meta,
      });
      expect(response.status).toBe(200);
      const { apiKey } = response.body.data.createApiKey;
      expect(apiKey.name).toHaveLength(200);
      expect(apiKey.scopes).toHaveLength(100);
      expect(apiKey.ipAllowlist).toHaveLength(100);
      expect(apiKey.meta).toEqual(meta);
    });
  });
});
