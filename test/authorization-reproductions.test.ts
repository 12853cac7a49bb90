import http from 'node:http';
import Redis from 'ioredis';
import type { Client } from 'graphql-ws';
import { queryText, startTestServer, TestServer, GraphQLResponse } from './helpers/server';
import { createKey, createOrganization, createTenant, KEY_FIELDS, uniqueName } from './helpers/fixtures';
import { createSupersededKey } from './helpers/callers';
import { expectRefused, ok, SECRET_PATTERN } from './helpers/expect';
import { createWalletKey, newWalletAccount, signUpWithWallet } from './helpers/wallet';
import { WalletChallengeDocument } from './helpers/operations';
import { describeWith, REDIS, redisServerUrl } from './helpers/services';
import { Feed, liveClient, LiveClientOptions } from './helpers/ws';
import { hashSecret } from '../src/auth/key-format';
import { Topic } from '../src/live/topics';

/**
 * The nine reproductions of issue 11 ("Authorization you can trust"), each refused as the rules
 * say, plus the wallet Host header, the wallet preset cap and per-address organization limit,
 * a WebSocket behind TRUST_PROXY=1 with a two-entry X-Forwarded-For, and apiKeyChanged through
 * Redis (needs TEST_REDIS_URL). The matrix of every mutation × caller × target is
 * authorization.test.ts.
 */

const API_KEY_CHANGED = 'subscription($o: ID) { apiKeyChanged(organizationId: $o) { type apiKey { id name status scopes hint expiresAt } } }';
const VIEWER = '{ viewer { apiKey { id } } }';
const API_KEY = `query($id: ID!) { apiKey(id: $id) { ${KEY_FIELDS} } }`;
const VERIFY = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code keyId scopes rateLimits { name limit remaining windowSeconds } } }';
const UPDATE_KEY = 'mutation($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { id name scopes expiresAt status } }';
const CREATE_KEY = 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id organizationId scopes rateLimits { name } } } }';
const UPDATE_ORGANIZATION = 'mutation($id: ID!, $input: UpdateOrganizationInput!) { updateOrganization(id: $id, input: $input) { id } }';
const RATE_LIMIT_STATUS = 'query($id: ID!) { rateLimitStatus(apiKeyId: $id) { name limit remaining windowSeconds } }';
const RESET_RATE_LIMIT = 'mutation($id: ID!, $name: String) { resetRateLimit(apiKeyId: $id, name: $name) { name remaining } }';
const AUDIT_STATE = '{ auditLog(first: 1) { totalCount nodes { id } } }';
const ORGANIZATIONS_COUNT = '{ organizations(first: 1) { totalCount } }';
const PER_SECOND = [{ name: 'per-second', limit: 2, windowSeconds: 1 }];

/** What a weaker key tries on a stronger one to take it over or lock its owner out. */
const KEY_ATTACKS: Array<[string, string]> = [
  ['rotate', 'mutation($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 86400) { secret apiKey { id } previousKeyExpiresAt } }'],
  ['delete', 'mutation($id: ID!) { deleteApiKey(id: $id) }'],
  ['revoke', 'mutation($id: ID!) { revokeApiKey(id: $id, reason: "taken over") { id status } }'],
  ['disable', 'mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { id status } }'],
  ['rename', 'mutation($id: ID!) { updateApiKey(id: $id, input: { name: "taken over" }) { id name } }'],
  ['strip the scopes of', 'mutation($id: ID!) { updateApiKey(id: $id, input: { scopes: ["keys:read"] }) { id scopes } }'],
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves as `promise` does, or fails after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A graphql-ws client whose upgrade request carries `headers` (e.g. X-Forwarded-For). */
function socketClient(server: TestServer, secret: string, headers: Record<string, string> = {}, on: LiveClientOptions['on'] = {}): Client {
  return liveClient(server.wsUrl, secret, { keyAs: 'apiKey', headers, on });
}

/** Opens a socket: its close code if the server closed it before acknowledging, else what `viewer` answers over it. */
async function connectOver(server: TestServer, secret: string, headers: Record<string, string>): Promise<{ closed: number } | { viewer: unknown }> {
  let client!: Client;
  const connected = new Promise<{ closed: number } | 'connected'>((resolve) => {
    client = socketClient(server, secret, headers, {
      connected: () => resolve('connected'),
      closed: (event) => resolve({ closed: (event as { code: number }).code }),
    });
  });
  try {
    const outcome = await within(connected, 5_000, 'the socket to be acknowledged or closed');
    if (outcome !== 'connected') return outcome;
    const viewer = await within(new Promise((resolve) => {
      client.subscribe({ query: VIEWER }, { next: (result) => resolve(result.data ?? result.errors), error: (error) => resolve(error), complete: () => {} });
    }), 5_000, 'viewer over the socket');
    return { viewer };
  } finally {
    await client.dispose();
  }
}

/** POSTs a GraphQL request with a Host header of our choosing (fetch does not let one set Host). */
function postWithHost(url: string, host: string, payload: Record<string, unknown>): Promise<{ status: number; body: any }> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const request = http.request({ hostname: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers: { host, 'content-type': 'application/json' } }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => { text += chunk; });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) }));
    });
    request.on('error', reject);
    request.end(JSON.stringify(payload));
  });
}

describe('issue 11 reproductions', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  async function adminRead(id: string): Promise<Record<string, any>> {
    return ok(await server.gql(API_KEY, { id })).apiKey;
  }

  async function auditState(): Promise<unknown> {
    return ok(await server.gql(AUDIT_STATE));
  }

  async function verify(secret: string, extra: Record<string, unknown> = {}): Promise<Record<string, any>> {
    return ok(await server.gql(VERIFY, { input: { key: secret, ...extra } })).verifyKey;
  }

  /** The usage fields a stored key keeps between two reads, without the counters its own use moves. */
  function stable(key: Record<string, any>): Record<string, any> {
    const { lastUsedAt: _lastUsedAt, requestCount: _requestCount, quotas: _quotas, ...rest } = key;
    return rest;
  }

  describe('1. a key acting on a stronger key', () => {
    describe('a platform keys:read + keys:write key against the init * key (a server of its own per attack)', () => {
      let own: TestServer | null = null;
      afterEach(async () => {
        await own?.close();
        own = null;
      });

      it.each(KEY_ATTACKS)('cannot %s the init key: 403 FORBIDDEN, no secret returned, the init key unchanged and still working', async (_attack, mutation) => {
        own = await startTestServer();
        const rootId = ok(await own.gql(VIEWER)).viewer.apiKey.id as string;
        const pkw = await createKey(own, { organizationId: own.platformOrganizationId, scopes: ['keys:read', 'keys:write'], rateLimits: [] });
        const before = ok(await own.gql(API_KEY, { id: rootId })).apiKey;
        const keysBefore = ok(await own.gql('query($o: ID) { apiKeys(filter: { organizationId: $o }) { totalCount } }', { o: own.platformOrganizationId }));
        const auditBefore = ok(await own.gql(AUDIT_STATE));

        const response = await own.gql(mutation, { id: rootId }, { key: pkw.secret });
        expectRefused(response, 'FORBIDDEN');
        expect(JSON.stringify(response.body)).not.toMatch(SECRET_PATTERN);

        expect(stable(ok(await own.gql(API_KEY, { id: rootId })).apiKey)).toEqual(stable(before));
        expect(ok(await own.gql('query($o: ID) { apiKeys(filter: { organizationId: $o }) { totalCount } }', { o: own.platformOrganizationId }))).toEqual(keysBefore);
        expect(ok(await own.gql(AUDIT_STATE))).toEqual(auditBefore);
        // Still the platform admin, with every power it had.
        expect(ok(await own.gql('{ organizations(first: 1) { totalCount } }')).organizations.totalCount).toBeGreaterThanOrEqual(1);
      });
    });

    it.each(KEY_ATTACKS)("a tenant WRITE key cannot %s its organization's ADMIN key: 403 FORBIDDEN, the ADMIN key unchanged and still working", async (_attack, mutation) => {
      const { organizationId, key: admin } = await createTenant(server, { maxKeys: 100 });
      const writer = await createKey(server, { organizationId, preset: 'WRITE', rateLimits: [] });
      const before = await adminRead(admin.id);
      const auditBefore = await auditState();

      const response = await server.gql(mutation, { id: admin.id }, { key: writer.secret });
      expectRefused(response, 'FORBIDDEN');
      expect(JSON.stringify(response.body)).not.toMatch(SECRET_PATTERN);
      expect(stable(await adminRead(admin.id))).toEqual(stable(before));
      expect(await auditState()).toEqual(auditBefore);
      expect(ok(await server.gql(VIEWER, {}, { key: admin.secret })).viewer.apiKey.id).toBe(admin.id);
    });
  });

  describe('2. superseded secrets (rotated out, in their grace period)', () => {
    it('a superseded secret cannot clear its own expiry: 403 FORBIDDEN, and once the grace ends it is refused EXPIRED', async () => {
      const { organizationId } = await createTenant(server);
      const superseded = await createSupersededKey(server, { organizationId, preset: 'ADMIN', rateLimits: [] }, 3600);

      const response = await server.gql(UPDATE_KEY, { id: superseded.id, input: { expiresAt: null } }, { key: superseded.secret });
      expectRefused(response, 'FORBIDDEN');
      expect((await adminRead(superseded.id)).expiresAt).toBe(superseded.previousKeyExpiresAt);

      server.clock.advance(3_601_000);
      expectRefused(await server.gql(VIEWER, {}, { key: superseded.secret }), 'KEY_EXPIRED');
      expect(await verify(superseded.secret)).toMatchObject({ valid: false, code: 'EXPIRED' });
      // The successor is the one that works.
      expect(ok(await server.gql(VIEWER, {}, { key: superseded.successor.secret })).viewer.apiKey.id).toBe(superseded.successor.id);
    });

    it.each([
      ['the successor key', 'null', null],
      ['the successor key', 'a later date', 'later'],
      ['the platform admin', 'null', null],
      ['the platform admin', 'a later date', 'later'],
    ])("%s cannot move a superseded key's expiry (expiresAt: %s): 400 BAD_USER_INPUT, unchanged", async (who, _what, expiresAt) => {
      const { organizationId } = await createTenant(server);
      const superseded = await createSupersededKey(server, { organizationId, preset: 'ADMIN', rateLimits: [] }, 3600);
      const caller = who === 'the platform admin' ? server.adminKey : superseded.successor.secret;
      const before = await adminRead(superseded.id);
      const auditBefore = await auditState();
      const later = new Date(server.clock.now().getTime() + 30 * 86_400_000).toISOString();

      const response = await server.gql(UPDATE_KEY, { id: superseded.id, input: { expiresAt: expiresAt === null ? null : later } }, { key: caller });
      expectRefused(response, 'BAD_USER_INPUT');
      expect(response.body.errors![0].message).toMatch(/previousKeyExpiresAt/);
      expect(stable(await adminRead(superseded.id))).toEqual(stable(before));
      expect(await auditState()).toEqual(auditBefore);
    });

    it('an expired superseded key is not revived: updateApiKey(expiresAt: null) by the platform admin is 400 BAD_USER_INPUT, its secret stays EXPIRED', async () => {
      const { organizationId } = await createTenant(server);
      const superseded = await createSupersededKey(server, { organizationId, preset: 'ADMIN', rateLimits: [] }, 60);
      server.clock.advance(61_000);
      expect(await verify(superseded.secret)).toMatchObject({ valid: false, code: 'EXPIRED' });

      const response = await server.gql(UPDATE_KEY, { id: superseded.id, input: { expiresAt: null } });
      expectRefused(response, 'BAD_USER_INPUT');
      expect((await adminRead(superseded.id)).status).toBe('EXPIRED');
      expect(await verify(superseded.secret)).toMatchObject({ valid: false, code: 'EXPIRED' });
      expectRefused(await server.gql(VIEWER, {}, { key: superseded.secret }), 'KEY_EXPIRED');
    });

    it.each([
      ['revoke', 'mutation($id: ID!) { revokeApiKey(id: $id, reason: "mine now") { id status } }'],
      ['rotate', 'mutation($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 0) { secret } }'],
      ['disable', 'mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { id status } }'],
    ])('a superseded secret cannot %s its successor (the leak cannot lock out the owner): 403 FORBIDDEN, the successor keeps working', async (_what, mutation) => {
      const { organizationId } = await createTenant(server);
      const superseded = await createSupersededKey(server, { organizationId, preset: 'ADMIN', rateLimits: [] }, 3600);
      const before = await adminRead(superseded.successor.id);

      const response = await server.gql(mutation, { id: superseded.successor.id }, { key: superseded.secret });
      expectRefused(response, 'FORBIDDEN');
      expect(JSON.stringify(response.body)).not.toMatch(SECRET_PATTERN);
      expect(stable(await adminRead(superseded.successor.id))).toEqual(stable(before));
      expect(ok(await server.gql(VIEWER, {}, { key: superseded.successor.secret })).viewer.apiKey.id).toBe(superseded.successor.id);
    });

    it('a superseded secret still authenticates ordinary calls during its grace: viewer, apiKeys, verifyKey, recordUsage', async () => {
      const { organizationId } = await createTenant(server);
      const superseded = await createSupersededKey(server, { organizationId, preset: 'ADMIN', rateLimits: [] }, 3600);
      const other = await createKey(server, { organizationId, rateLimits: [] });

      expect(ok(await server.gql(VIEWER, {}, { key: superseded.secret })).viewer.apiKey.id).toBe(superseded.id);
      expect(ok(await server.gql('{ apiKeys { totalCount } }', {}, { key: superseded.secret })).apiKeys.totalCount).toBeGreaterThanOrEqual(3);
      expect(ok(await server.gql(VERIFY, { input: { key: other.secret } }, { key: superseded.secret })).verifyKey).toMatchObject({ valid: true, code: 'VALID' });
      const recorded = await server.gql('mutation($input: RecordUsageInput!) { recordUsage(input: $input) { recorded } }', {
        input: { apiKeyId: other.id, operation: 'POST /v1/predict', tokens: 3, idempotencyKey: uniqueName('usage') },
      }, { key: superseded.secret });
      expect(ok(recorded).recordUsage.recorded).toBe(true);
    });
  });

  describe('3 and 11. wallet sign-in', () => {
    describe('with KEYWARD_PUBLIC_URL=https://keys.example.com', () => {
      let wallet: TestServer;
      beforeAll(async () => { wallet = await startTestServer({ env: { KEYWARD_PUBLIC_URL: 'https://keys.example.com' } }); });
      afterAll(async () => { await wallet.close(); });

      it("walletChallenge names the configured domain and URI, never the request's Host header", async () => {
        const account = newWalletAccount();
        const response = await postWithHost(wallet.url, 'evil.example', { query: queryText(WalletChallengeDocument), variables: { address: account.address } });
        expect(response.status).toBe(200);
        const message = response.body.data.walletChallenge.message as string;
        expect(message.split('\n')[0]).toBe('keys.example.com wants you to sign in with your Ethereum account:');
        expect(message).toMatch(/^URI: https:\/\/keys\.example\.com(\/\S*)?$/m);
        expect(message).not.toContain('evil.example');
      });

      it('an anonymous wallet caller asking for preset ADMIN is refused 403 INSUFFICIENT_SCOPE, and nothing is created', async () => {
        const account = newWalletAccount();
        const organizationsBefore = ok(await wallet.gql(ORGANIZATIONS_COUNT));
        const auditBefore = ok(await wallet.gql(AUDIT_STATE));
        const response = await signUpWithWallet(wallet, account, { preset: 'ADMIN' });
        expectRefused(response, 'INSUFFICIENT_SCOPE');
        expect(JSON.stringify(response.body)).not.toMatch(SECRET_PATTERN);
        expect(ok(await wallet.gql(ORGANIZATIONS_COUNT))).toEqual(organizationsBefore);
        expect(ok(await wallet.gql(AUDIT_STATE))).toEqual(auditBefore);
        // The default (INFERENCE) is still given.
        const created = await createWalletKey(wallet, account);
        expect(ok(await wallet.gql('query($id: ID!) { apiKey(id: $id) { scopes } }', { id: created.id })).apiKey.scopes).toEqual(['inference:*', 'usage:read']);
      });
    });

    describe('new wallet organizations per client address (WALLET_ORGANIZATIONS_PER_HOUR, default 5)', () => {
      let wallet: TestServer;
      beforeAll(async () => { wallet = await startTestServer(); });
      afterAll(async () => { await wallet.close(); });

      it('the 6th new organization from one address within the hour is 429 RATE_LIMITED with nothing created; keys of an existing wallet organization are not counted; an hour later it works', async () => {
        const first = newWalletAccount();
        const firstKey = await createWalletKey(wallet, first);
        for (let i = 2; i <= 5; i++) await createWalletKey(wallet);

        const organizationsBefore = ok(await wallet.gql(ORGANIZATIONS_COUNT));
        const auditBefore = ok(await wallet.gql(AUDIT_STATE));
        const sixth = newWalletAccount();
        const refused = await signUpWithWallet(wallet, sixth);
        expectRefused(refused, 'RATE_LIMITED');
        expect(ok(await wallet.gql(ORGANIZATIONS_COUNT))).toEqual(organizationsBefore);
        expect(ok(await wallet.gql(AUDIT_STATE))).toEqual(auditBefore);

        // A second key of an existing wallet organization is not a new organization.
        const again = await createWalletKey(wallet, first);
        expect(again.organizationId).toBe(firstKey.organizationId);

        wallet.clock.advance(3_600_000);
        const later = await createWalletKey(wallet, sixth);
        expect(later.organizationId).not.toBe(firstKey.organizationId);
      });
    });
  });

  describe('4 and 12. one client address for HTTP and WebSocket, behind TRUST_PROXY=1', () => {
    const FORWARDED = { 'x-forwarded-for': '203.0.113.7, 198.51.100.9' };
    let proxied: TestServer;
    beforeAll(async () => { proxied = await startTestServer({ env: { TRUST_PROXY: '1' } }); });
    afterAll(async () => { await proxied.close(); });

    async function keyAllowing(cidr: string) {
      const organization = await createOrganization(proxied);
      return createKey(proxied, { organizationId: organization.id, ipAllowlist: [cidr], rateLimits: [] });
    }

    it('over WebSocket, a key allowing only the spoofable first X-Forwarded-For entry is closed with 4403', async () => {
      const key = await keyAllowing('203.0.113.7/32');
      expect(await connectOver(proxied, key.secret, FORWARDED)).toEqual({ closed: 4403 });
    });

    it('over WebSocket, a key allowing the entry the one trusted proxy appended connects and is served', async () => {
      const key = await keyAllowing('198.51.100.9/32');
      expect(await connectOver(proxied, key.secret, FORWARDED)).toEqual({ viewer: { viewer: { apiKey: { id: key.id } } } });
    });

    it('over HTTP the same client address: 403 FORBIDDEN_IP for the first entry, 200 for the appended one', async () => {
      const spoofed = await keyAllowing('203.0.113.7/32');
      expectRefused(await proxied.gql(VIEWER, {}, { key: spoofed.secret, headers: FORWARDED }), 'FORBIDDEN_IP');
      const real = await keyAllowing('198.51.100.9/32');
      expect(ok(await proxied.gql(VIEWER, {}, { key: real.secret, headers: FORWARDED })).viewer.apiKey.id).toBe(real.id);
    });
  });

  describe('5. what the platform sets binds the customer: organization keyRateLimits', () => {
    /** A customer organization with keyRateLimits per-second 2/1 s, set by the platform admin. */
    async function limitedOrganization(): Promise<string> {
      const organization = await createOrganization(server, { maxKeys: 100 });
      ok(await server.gql(UPDATE_ORGANIZATION, { id: organization.id, input: { keyRateLimits: PER_SECOND } }));
      expect(ok(await server.gql('query($id: ID) { organization(id: $id) { keyRateLimits { name limit windowSeconds } } }', { id: organization.id })).organization.keyRateLimits).toEqual(PER_SECOND);
      return organization.id;
    }

    it("a key a tenant WRITE key creates with rateLimits: [] is still refused RATE_LIMITED on the 3rd verification within the second, naming the window; a second later it works again", async () => {
      const organizationId = await limitedOrganization();
      const writer = await createKey(server, { organizationId, preset: 'WRITE', rateLimits: [] });
      const created = ok(await server.gql(CREATE_KEY, { input: { name: uniqueName('Unlimited?'), preset: 'READ', rateLimits: [] } }, { key: writer.secret })).createApiKey;
      expect(created.apiKey.rateLimits).toEqual([]);

      expect(await verify(created.secret)).toMatchObject({ valid: true, code: 'VALID' });
      expect(await verify(created.secret)).toMatchObject({ valid: true, code: 'VALID' });
      const third = await verify(created.secret);
      expect(third).toMatchObject({ valid: false, code: 'RATE_LIMITED' });
      expect(third.rateLimits).toContainEqual(expect.objectContaining({ name: expect.stringContaining('per-second'), limit: 2, remaining: 0 }));
      expect(ok(await server.gql(RATE_LIMIT_STATUS, { id: created.apiKey.id })).rateLimitStatus)
        .toContainEqual({ name: 'org:per-second', limit: 2, remaining: 0, windowSeconds: 1 });

      server.clock.advance(1_000);
      expect(await verify(created.secret)).toMatchObject({ valid: true, code: 'VALID' });
    });

    it("the key's own GraphQL calls obey it too: the 3rd within the second is 429 RATE_LIMITED naming the window", async () => {
      const organizationId = await limitedOrganization();
      const key = await createKey(server, { organizationId, preset: 'READ', rateLimits: [] });
      ok(await server.gql(VIEWER, {}, { key: key.secret }));
      ok(await server.gql(VIEWER, {}, { key: key.secret }));
      const refused = await server.gql(VIEWER, {}, { key: key.secret });
      expectRefused(refused, 'RATE_LIMITED');
      expect(refused.body.errors![0].message).toContain('per-second');
      server.clock.advance(1_000);
      expect(ok(await server.gql(VIEWER, {}, { key: key.secret })).viewer.apiKey.id).toBe(key.id);
    });

    it('a tenant cannot reset an org: window: resetRateLimit(name: "org:per-second") is 403 FORBIDDEN, and a reset without a name leaves it used up; the platform admin may reset it', async () => {
      server.clock.advance(1_000);
      const organizationId = await limitedOrganization();
      const admin = await createKey(server, { organizationId, preset: 'ADMIN', rateLimits: [] });
      const key = await createKey(server, { organizationId, preset: 'READ', rateLimits: [{ name: 'own', limit: 100, windowSeconds: 60 }] });
      await verify(key.secret);
      await verify(key.secret);
      expect(await verify(key.secret)).toMatchObject({ code: 'RATE_LIMITED' });

      expectRefused(await server.gql(RESET_RATE_LIMIT, { id: key.id, name: 'org:per-second' }, { key: admin.secret }), 'FORBIDDEN');
      const reset = ok(await server.gql(RESET_RATE_LIMIT, { id: key.id }, { key: admin.secret })).resetRateLimit as Array<{ name: string; remaining: number }>;
      expect(reset).toContainEqual({ name: 'own', remaining: 100 });
      expect(reset).not.toContainEqual(expect.objectContaining({ name: 'org:per-second', remaining: 2 }));
      expect(await verify(key.secret)).toMatchObject({ valid: false, code: 'RATE_LIMITED' });

      ok(await server.gql(RESET_RATE_LIMIT, { id: key.id, name: 'org:per-second' }));
      expect(await verify(key.secret)).toMatchObject({ valid: true, code: 'VALID' });
    });

    it.each([
      ['ADMIN', 'keyRateLimits', { keyRateLimits: [] }],
      ['WRITE', 'keyRateLimits', { keyRateLimits: [] }],
      ['ADMIN', 'quotas', { quotas: [] }],
      ['WRITE', 'quotas', { quotas: [] }],
      ['ADMIN', 'maxKeys', { maxKeys: 100_000 }],
      ['WRITE', 'maxKeys', { maxKeys: 100_000 }],
    ])('a tenant %s key cannot change its organization\'s %s: 403 INSUFFICIENT_SCOPE, unchanged', async (preset, field, input) => {
      const withKeyRateLimits = field === 'keyRateLimits';
      const organizationId = withKeyRateLimits ? await limitedOrganization()
        : (await createOrganization(server, { maxKeys: 100, quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 1000 }] })).id;
      const tenant = await createKey(server, { organizationId, preset, rateLimits: [] });
      const read = `query($id: ID) { organization(id: $id) { id name slug status maxKeys quotas { meter period limit } ${withKeyRateLimits ? 'keyRateLimits { name limit windowSeconds }' : ''} } }`;
      const before = ok(await server.gql(read, { id: organizationId }));
      const auditBefore = await auditState();

      expectRefused(await server.gql(UPDATE_ORGANIZATION, { id: organizationId, input }, { key: tenant.secret }), 'INSUFFICIENT_SCOPE');
      expect(ok(await server.gql(read, { id: organizationId }))).toEqual(before);
      expect(await auditState()).toEqual(auditBefore);
    });
  });

  describe('6. organization-level *: an ADMIN holds every scope of its organization, never platform:*', () => {
    it('preset ADMIN is * within its organization', async () => {
      const { key } = await createTenant(server);
      expect(key.apiKey.scopes).toEqual(['*']);
    });

    it("a tenant ADMIN key mints INFERENCE keys, keys with the platform's own scope inference:run and * keys for its organization; the INFERENCE key verifies for inference:run", async () => {
      const { organizationId, key: admin } = await createTenant(server);
      const inference = ok(await server.gql(CREATE_KEY, { input: { name: uniqueName('Inference'), preset: 'INFERENCE', rateLimits: [] } }, { key: admin.secret })).createApiKey;
      expect(inference.apiKey).toMatchObject({ organizationId, scopes: ['inference:*', 'usage:read'] });
      const run = ok(await server.gql(CREATE_KEY, { input: { name: uniqueName('Run'), scopes: ['inference:run'] } }, { key: admin.secret })).createApiKey;
      expect(run.apiKey).toMatchObject({ organizationId, scopes: ['inference:run'] });
      const star = ok(await server.gql(CREATE_KEY, { input: { name: uniqueName('Star'), scopes: ['*'] } }, { key: admin.secret })).createApiKey;
      expect(star.apiKey).toMatchObject({ organizationId, scopes: ['*'] });
      expect(await verify(inference.secret, { requiredScopes: ['inference:run'] })).toMatchObject({ valid: true, code: 'VALID' });
    });

    it("a tenant ADMIN key's * covers the platform's own scopes (inference:run) but never platform:admin in verifyKey", async () => {
      const { key: admin } = await createTenant(server);
      expect(await verify(admin.secret, { requiredScopes: ['inference:run'] })).toMatchObject({ valid: true, code: 'VALID' });
      expect(await verify(admin.secret, { requiredScopes: ['platform:admin'] })).toMatchObject({ valid: false, code: 'INSUFFICIENT_SCOPE' });
    });

    it.each([[['platform:admin']], [['platform:*']]])('a tenant ADMIN key cannot grant %j: 403 INSUFFICIENT_SCOPE, nothing created', async (scopes) => {
      const { organizationId, key: admin } = await createTenant(server);
      const response = await server.gql(CREATE_KEY, { input: { name: uniqueName('Escalate'), scopes } }, { key: admin.secret });
      expectRefused(response, 'INSUFFICIENT_SCOPE');
      expect(ok(await server.gql('query($o: ID) { apiKeys(filter: { organizationId: $o }) { totalCount } }', { o: organizationId })).apiKeys.totalCount).toBe(1);
    });

    it.each([
      ['createOrganization', 'mutation { createOrganization(input: { name: "Mine" }) { id } }', () => ({})],
      ['organizations', '{ organizations { totalCount } }', () => ({})],
      ['setOrganizationStatus', 'mutation($id: ID!) { setOrganizationStatus(id: $id, status: SUSPENDED) { id } }', (organizationId: string) => ({ id: organizationId })],
      ['addSessionCredits', 'mutation($o: ID!) { addSessionCredits(input: { organizationId: $o, sessions: 5, idempotencyKey: "free" }) { available } }', (organizationId: string) => ({ o: organizationId })],
    ])("a tenant ADMIN key (* in its organization) is refused the platform's %s: 403 INSUFFICIENT_SCOPE", async (_what, document, variables) => {
      const { organizationId, key: admin } = await createTenant(server);
      const before = ok(await server.gql('query($id: ID) { organization(id: $id) { status sessionBalance } }', { id: organizationId }));
      expectRefused(await server.gql(document, variables(organizationId), { key: admin.secret }), 'INSUFFICIENT_SCOPE');
      expect(ok(await server.gql('query($id: ID) { organization(id: $id) { status sessionBalance } }', { id: organizationId }))).toEqual(before);
    });

    it('the platform admin gives a customer key * (organization-level)', async () => {
      const organization = await createOrganization(server);
      const created = ok(await server.gql(CREATE_KEY, { input: { organizationId: organization.id, name: uniqueName('Star'), scopes: ['*'] } })).createApiKey;
      expect(created.apiKey).toMatchObject({ organizationId: organization.id, scopes: ['*'] });
      expect(await verify(created.secret, { requiredScopes: ['platform:admin'] })).toMatchObject({ valid: false, code: 'INSUFFICIENT_SCOPE' });
    });

    it.each([[['platform:admin']], [['platform:*']]])('the platform admin cannot give a customer key %j: 400 BAD_USER_INPUT, nothing created', async (scopes) => {
      const organization = await createOrganization(server);
      const response = await server.gql(CREATE_KEY, { input: { organizationId: organization.id, name: uniqueName('Platform'), scopes } });
      expectRefused(response, 'BAD_USER_INPUT');
      expect(ok(await server.gql('query($o: ID) { apiKeys(filter: { organizationId: $o }) { totalCount } }', { o: organization.id })).apiKeys.totalCount).toBe(0);
    });

    it.each([['READ'], ['WRITE']])('a tenant WRITE key creates %s keys in its organization', async (preset) => {
      const { organizationId } = await createTenant(server);
      const writer = await createKey(server, { organizationId, preset: 'WRITE', rateLimits: [] });
      const response = await server.gql(CREATE_KEY, { input: { name: uniqueName('By writer'), preset } }, { key: writer.secret });
      expect(ok(response).createApiKey.apiKey.organizationId).toBe(organizationId);
    });

    it.each([['ADMIN'], ['INFERENCE']])('a tenant WRITE key is refused %s keys: 403 INSUFFICIENT_SCOPE, nothing created', async (preset) => {
      const { organizationId } = await createTenant(server);
      const writer = await createKey(server, { organizationId, preset: 'WRITE', rateLimits: [] });
      expectRefused(await server.gql(CREATE_KEY, { input: { name: uniqueName('By writer'), preset } }, { key: writer.secret }), 'INSUFFICIENT_SCOPE');
      expect(ok(await server.gql('query($o: ID) { apiKeys(filter: { organizationId: $o }) { totalCount } }', { o: organizationId })).apiKeys.totalCount).toBe(2);
    });
  });

  describe('7. tenancy is checked first', () => {
    it("another tenant's ADMIN key setting a key's scopes to * gets 404 NOT_FOUND (not INSUFFICIENT_SCOPE), the key unchanged and nothing of it revealed", async () => {
      const a = await createTenant(server);
      const b = await createTenant(server);
      const before = await adminRead(a.key.id);
      const response = await server.gql(UPDATE_KEY, { id: a.key.id, input: { scopes: ['*'] } }, { key: b.key.secret });
      expectRefused(response, 'NOT_FOUND');
      const body = JSON.stringify(response.body);
      for (const secretOrDetail of [a.key.secret, a.key.apiKey.name, a.key.apiKey.hint]) expect(body).not.toContain(secretOrDetail);
      expect(stable(await adminRead(a.key.id))).toEqual(stable(before));
    });

    it("another tenant's createApiKey(organizationId, scopes: [*]) is 404 NOT_FOUND too, nothing created", async () => {
      const a = await createTenant(server);
      const b = await createTenant(server);
      const response = await server.gql(CREATE_KEY, { input: { organizationId: a.organizationId, name: uniqueName('Planted'), scopes: ['*'] } }, { key: b.key.secret });
      expectRefused(response, 'NOT_FOUND');
      expect(ok(await server.gql('query($o: ID) { apiKeys(filter: { organizationId: $o }) { totalCount } }', { o: a.organizationId })).apiKeys.totalCount).toBe(1);
    });
  });

  describe('8. secrets never enter free text', () => {
    interface Setting {
      organizationId: string;
      victim: { id: string; secret: string };
      /** A real secret of another key, as someone pasting it would. */
      leaked: string;
    }

    async function setting(): Promise<Setting> {
      const { organizationId, key } = await createTenant(server);
      const leaked = (await createKey(server, { organizationId, rateLimits: [] })).secret;
      return { organizationId, victim: { id: key.id, secret: key.secret }, leaked };
    }

    /** [field, the call carrying the secret] */
    const CARRIERS: Array<[string, (s: Setting) => Promise<GraphQLResponse>]> = [
      ['createApiKey name', (s) => server.gql(CREATE_KEY, { input: { organizationId: s.organizationId, name: `deploy ${s.leaked}` } })],
      ['createApiKey externalId', (s) => server.gql(CREATE_KEY, { input: { organizationId: s.organizationId, name: uniqueName(), externalId: `ext-${s.leaked}` } })],
      ['createApiKey meta (a nested string)', (s) => server.gql(CREATE_KEY, { input: { organizationId: s.organizationId, name: uniqueName(), meta: { deploy: { notes: ['ok', `uses ${s.leaked}`] } } } })],
      ['updateApiKey name', (s) => server.gql(UPDATE_KEY, { id: s.victim.id, input: { name: `now ${s.leaked}` } })],
      ['revokeApiKey reason', (s) => server.gql('mutation($id: ID!, $reason: String!) { revokeApiKey(id: $id, reason: $reason) { id } }', { id: s.victim.id, reason: `leaked as ${s.leaked}` })],
      ['createOrganization name', (s) => server.gql('mutation($name: String!) { createOrganization(input: { name: $name }) { id } }', { name: `Org ${s.leaked}` })],
      ['updateOrganization name', (s) => server.gql(UPDATE_ORGANIZATION, { id: s.organizationId, input: { name: `Org ${s.leaked}` } })],
      ['verifyKey operation', (s) => server.gql(VERIFY, { input: { key: s.victim.secret, operation: `GET /v1/${s.leaked}` } })],
      ['recordUsage operation', (s) => server.gql('mutation($input: RecordUsageInput!) { recordUsage(input: $input) { recorded } }', {
        input: { apiKeyId: s.victim.id, operation: `POST /v1/${s.leaked}`, tokens: 1, idempotencyKey: uniqueName('usage') },
      })],
    ];

    it.each(CARRIERS)('%s containing a key secret is 400 BAD_USER_INPUT ("looks like an API key secret"), not echoed, nothing stored', async (_field, send) => {
      const s = await setting();
      const snapshot = async () => ok(await server.gql(`query($o: ID, $k: ID!) {
        organization(id: $o) { name }
        apiKey(id: $k) { name status revokedReason }
        apiKeys(filter: { organizationId: $o }) { totalCount }
        organizations(first: 1) { totalCount }
        auditLog(first: 1) { totalCount nodes { id } }
        usage(range: { organizationId: $o }) { requests byOperation { key } }
      }`, { o: s.organizationId, k: s.victim.id }));
      const before = await snapshot();

      const response = await send(s);
      expectRefused(response, 'BAD_USER_INPUT');
      expect(response.body.errors![0].message).toMatch(/looks like an API key secret/);
      expect(JSON.stringify(response.body)).not.toContain(s.leaked);
      expect(JSON.stringify(response.body)).not.toMatch(SECRET_PATTERN);

      const after = await snapshot();
      expect(after).toEqual(before);
      const audit = ok(await server.gql('{ auditLog(first: 50) { nodes { metadata } } }'));
      expect(JSON.stringify(audit)).not.toContain(s.leaked);
    });

    it.each([
      ['an Int variable', 'query($first: Int) { apiKeys(first: $first) { totalCount } }', (secret: string) => ({ first: secret })],
      ['an enum variable', 'query($status: ApiKeyStatus) { apiKeys(filter: { status: $status }) { totalCount } }', (secret: string) => ({ status: secret })],
      ['an enum inside an input variable', CREATE_KEY, (secret: string) => ({ input: { name: 'typed', environment: secret } })],
    ])('a variables type error never echoes the value: a secret passed as %s appears nowhere in the answer', async (_what, document, variables) => {
      const s = await setting();
      const response = await server.gql(document, variables(s.leaked));
      expect(response.status).toBe(400);
      expect(response.body.errors?.length).toBeGreaterThan(0);
      expect(JSON.stringify(response.body)).not.toContain(s.leaked);
      expect(JSON.stringify(response.body)).not.toMatch(SECRET_PATTERN);
    });
  });

  describe('9 and 13. live events carry wire payloads, not entities', () => {
    it('what apiKeyChanged publishes in process holds the key fields, not its secret hash', async () => {
      const organization = await createOrganization(server);
      const feed = server.app.pubSub.subscribe(Topic.API_KEY_CHANGED, organization.id)[Symbol.asyncIterator]();
      try {
        const first = feed.next();
        const key = await createKey(server, { organizationId: organization.id, meta: { team: 'ml' }, rateLimits: [] });
        const { value } = await within(first, 2_000, 'the CREATED event');
        const published = JSON.stringify(value);
        expect(published).toContain(key.id);
        expect(published).not.toMatch(/secret_?hash/i);
        expect(published).not.toContain(hashSecret(server.app.config.pepper!, key.secret));
        expect(published).not.toContain(key.secret);
      } finally {
        await feed.return?.();
      }
    });

    it('apiKeyChanged subscribers receive id, name, status, scopes, hint and expiresAt (a date)', async () => {
      const { organizationId, key } = await createTenant(server);
      const expiresAt = new Date(server.clock.now().getTime() + 7 * 86_400_000).toISOString();
      const client = socketClient(server, server.adminKey);
      try {
        const feed = new Feed<unknown>(client, API_KEY_CHANGED, { o: organizationId }, 'apiKeyChanged');
        await sleep(300); // the subscription is in place (apiKeyChanged sends no first event)
        ok(await server.gql(UPDATE_KEY, { id: key.id, input: { name: 'renamed', expiresAt } }));
        await feed.take(1, 2_000);
        expect({ events: feed.data, errors: feed.errors }).toEqual({
          events: [{ type: 'UPDATED', apiKey: { id: key.id, name: 'renamed', status: 'ACTIVE', scopes: key.apiKey.scopes, hint: key.apiKey.hint, expiresAt } }],
          errors: [],
        });
      } finally {
        await client.dispose();
      }
    });

    describeWith([REDIS], 'through Redis (TEST_REDIS_URL)', () => {
      let redisUrl: URL;
      let scaled: TestServer;
      let listener: Redis;
      const messages: Array<{ channel: string; message: string }> = [];

      beforeAll(async () => {
        redisUrl = redisServerUrl();
        scaled = await startTestServer({ env: { REDIS_URL: redisUrl.toString() } });
        listener = new Redis(redisUrl.toString());
        listener.on('pmessage', (_pattern, channel, message) => messages.push({ channel, message }));
        await listener.psubscribe('*');
      });
      afterAll(async () => {
        listener?.disconnect();
        await scaled?.close();
      });

      it('the JSON published for apiKeyChanged has no secret hash, and subscribers still get every field (expiresAt as a date)', async () => {
        const organization = await createOrganization(scaled);
        const expiresAt = new Date(scaled.clock.now().getTime() + 7 * 86_400_000).toISOString();
        const client = socketClient(scaled, scaled.adminKey);
        try {
          const feed = new Feed<unknown>(client, API_KEY_CHANGED, { o: organization.id }, 'apiKeyChanged');
          await sleep(300); // the subscription (and its Redis SUBSCRIBE) is in place
          const key = await createKey(scaled, { organizationId: organization.id, expiresAt, meta: { team: 'ml' }, rateLimits: [] });
          await feed.take(1);
          for (const deadline = Date.now() + 3_000; Date.now() < deadline; await sleep(20)) {
            if (messages.some(({ message }) => message.includes(key.id) && message.includes(key.apiKey.name))) break;
          }

          const published = messages.filter(({ message }) => message.includes(key.id));
          expect(published.some(({ message }) => message.includes(key.apiKey.name))).toBe(true);
          const hash = hashSecret(scaled.app.config.pepper!, key.secret);
          for (const { message } of published) {
            expect(message).not.toMatch(/secret_?hash/i);
            expect(message).not.toContain(hash);
            expect(message).not.toContain(key.secret);
          }
          expect({ events: feed.data, errors: feed.errors }).toEqual({
            events: [{ type: 'CREATED', apiKey: { id: key.id, name: key.apiKey.name, status: 'ACTIVE', scopes: key.apiKey.scopes, hint: key.apiKey.hint, expiresAt } }],
            errors: [],
          });
        } finally {
          await client.dispose();
        }
      });
    });
  });

  describe('bounds agree', () => {
    it('expiresAt beyond 36,500 days (9999-12-31) is 400 BAD_USER_INPUT on createApiKey and on updateApiKey, like expiresInDays', async () => {
      const { organizationId, key } = await createTenant(server);
      const far = '9999-12-31T00:00:00Z';
      expectRefused(await server.gql(CREATE_KEY, { input: { organizationId, name: uniqueName(), expiresAt: far } }), 'BAD_USER_INPUT');
      const before = await adminRead(key.id);
      expectRefused(await server.gql(UPDATE_KEY, { id: key.id, input: { expiresAt: far } }), 'BAD_USER_INPUT');
      expect(stable(await adminRead(key.id))).toEqual(stable(before));
      // Within the bound is fine.
      const near = new Date(server.clock.now().getTime() + 36_000 * 86_400_000).toISOString();
      expect(ok(await server.gql(UPDATE_KEY, { id: key.id, input: { expiresAt: near } })).updateApiKey.expiresAt).toBe(near);
    });
  });
});
