import { startTestServer, TestServer, GraphQLResponse } from './helpers/server';
import { createKey, createOrganization, createTenant, CreatedKey } from './helpers/fixtures';
import { RawSocket } from './helpers/ws';
import { generateSecret } from '../src/auth/key-format';

/**
 * Brute-force protection: keys that fail authentication (unknown, malformed, revoked, disabled,
 * expired) count per client address in a sliding window. While the last 60 seconds hold 20
 * failures, every request with a key from the address is refused with 429 RATE_LIMITED and
 * Retry-After (until the oldest failure is 60 s old) before its key is verified; other addresses
 * are unaffected. Crossing the threshold writes an `auth.failures_exceeded` audit entry, at most
 * one per address in any 60 seconds.
 *
 * The server trusts X-Forwarded-For so that every test acts from an address of its own.
 */

const LIMIT = 20;
const WINDOW_MS = 60_000;
const VIEWER = '{ viewer { apiKey { id } } }';
const AUDIT = `query { auditLog(first: 500) { nodes { action actorKeyId targetType targetId organizationId ip metadata at } } }`;
const RATE_LIMIT_STATUS = 'query($id: ID!) { rateLimitStatus(apiKeyId: $id) { name remaining } }';
const QUOTAS = 'query($organizationId: ID) { quotas(organizationId: $organizationId) { meter period used } }';

let addressCounter = 0;
/** A client address no other test uses. */
function freshAddress(): string {
  addressCounter += 1;
  return `203.0.113.${addressCounter}`;
}

/** A well-formed key (valid checksum) that was never issued. */
const unknownKey = () => generateSecret('LIVE');

describe('failed authentications per client address', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer({ env: { TRUST_PROXY: 'true' } }); });
  afterAll(async () => { await server.close(); });

  const from = (ip: string, key: string | null) => ({ key, headers: { 'x-forwarded-for': ip } });
  const viewerAs = (ip: string, key: string | null) => server.gql(VIEWER, {}, from(ip, key));

  /** `count` requests from `ip` with never-issued keys; each must be 401 INVALID_API_KEY. */
  async function fail(ip: string, count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const response = await viewerAs(ip, unknownKey());
      expect(response.status).toBe(401);
      expect(response.code).toBe('INVALID_API_KEY');
    }
  }

  /** Refused for failed authentications; by default the failures all came at the current instant. */
  function expectBlocked(response: GraphQLResponse, retryAfter = String(WINDOW_MS / 1000)): void {
    expect(response.status).toBe(429);
    expect(response.code).toBe('RATE_LIMITED');
    expect(response.body.data).toBeUndefined();
    expect(response.body.errors![0].message).toMatch(/failed authentications/);
    expect(response.headers.get('retry-after')).toBe(retryAfter);
    expect(response.headers.get('x-ratelimit-limit')).toBeNull();
  }

  async function auditEntriesOf(ip: string): Promise<any[]> {
    const response = await server.gql(AUDIT);
    expect(response.status).toBe(200);
    return response.body.data.auditLog.nodes.filter((entry: any) => entry.action === 'auth.failures_exceeded' && entry.ip === ip);
  }

  /** Runs `body` with the clock at `at`, then puts it back. */
  async function at(time: Date, body: () => Promise<void>): Promise<void> {
    const before = server.clock.now();
    server.clock.set(time);
    try {
      await body();
    } finally {
      server.clock.set(before);
    }
  }

  /** A time well after anything earlier tests did (the clock is put back after each). */
  let periodCounter = 0;
  function freshPeriod(): Date {
    periodCounter += 1;
    return new Date(Date.parse('2026-03-01T00:00:00.000Z') + periodCounter * 10 * WINDOW_MS);
  }

  it('refuses a valid key with 429 RATE_LIMITED and Retry-After after 20 failed authentications from its address within 60 s', async () => {
    const { key } = await createTenant(server);
    const ip = freshAddress();
    await at(freshPeriod(), async () => {
      await fail(ip, LIMIT / 2);
      server.clock.advance(15_000);
      await fail(ip, LIMIT / 2);
      // The first ten leave the window 45 s from now.
      expectBlocked(await viewerAs(ip, key.secret), '45');
    });
  });

  it('allows 19 failed authentications and still verifies keys from that address', async () => {
    const { key } = await createTenant(server);
    const ip = freshAddress();
    await fail(ip, LIMIT - 1);
    const response = await viewerAs(ip, key.secret);
    expect(response.status).toBe(200);
    expect(response.body.data.viewer.apiKey.id).toBe(key.id);
    // One more failure uses the window up.
    await fail(ip, 1);
    expectBlocked(await viewerAs(ip, key.secret));
  });

  it('refuses an address that used up its window before looking at the key: no usage, no rate-limit unit, no quota', async () => {
    const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1000 }] });
    const key = await createKey(server, { organizationId: organization.id, preset: 'ADMIN' });
    const ip = freshAddress();
    await fail(ip, LIMIT);
    for (let i = 0; i < 3; i++) expectBlocked(await viewerAs(ip, key.secret));
    const limits = await server.gql(RATE_LIMIT_STATUS, { id: key.id });
    expect(limits.body.data.rateLimitStatus).toEqual(expect.arrayContaining([{ name: 'per-minute', remaining: 60 }, { name: 'per-hour', remaining: 1000 }]));
    const quotas = await server.gql(QUOTAS, { organizationId: organization.id });
    expect(quotas.body.data.quotas).toEqual([{ meter: 'REQUESTS', period: 'DAY', used: 0 }]);
    await server.app.usageBuffer.flush();
    const used = await server.gql('query($id: ID!) { apiKey(id: $id) { requestCount lastUsedAt } }', { id: key.id });
    expect(used.body.data.apiKey).toEqual({ requestCount: 0, lastUsedAt: null });
  });

  it('keeps refusing further bad keys from the address with 429, not 401', async () => {
    const ip = freshAddress();
    await fail(ip, LIMIT);
    expectBlocked(await viewerAs(ip, unknownKey()));
    expectBlocked(await viewerAs(ip, 'not-a-key'));
  });

  it('leaves valid keys from other addresses unaffected', async () => {
    const { key } = await createTenant(server);
    const blocked = freshAddress();
    const other = freshAddress();
    await fail(blocked, LIMIT);
    expectBlocked(await viewerAs(blocked, key.secret));
    const response = await viewerAs(other, key.secret);
    expect(response.status).toBe(200);
    expect(response.body.data.viewer.apiKey.id).toBe(key.id);
    // A failure from the other address is still an ordinary 401.
    const bad = await viewerAs(other, unknownKey());
    expect(bad.status).toBe(401);
    expect(bad.code).toBe('INVALID_API_KEY');
  });

  it('lets the address in again once its oldest failure is 60 s old, and one more failure blocks it again', async () => {
    const { key } = await createTenant(server);
    const ip = freshAddress();
    await at(freshPeriod(), async () => {
      await fail(ip, 1);
      server.clock.advance(10_000);
      await fail(ip, LIMIT - 1);
      expectBlocked(await viewerAs(ip, key.secret), '50');
      server.clock.advance(WINDOW_MS - 10_000 - 1);
      expectBlocked(await viewerAs(ip, key.secret), '1');
      server.clock.advance(1);
      const response = await viewerAs(ip, key.secret);
      expect(response.status).toBe(200);
      expect(response.body.data.viewer.apiKey.id).toBe(key.id);
      // The other 19 still count: one more failure fills the window again, until they are 60 s old.
      await fail(ip, 1);
      expectBlocked(await viewerAs(ip, key.secret), '10');
    });
  });

  it('counts revoked, disabled and expired keys and malformed keys as failed authentications', async () => {
    const organization = await createOrganization(server);
    const revoked = await createKey(server, { organizationId: organization.id });
    expect((await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "test") { status } }', { id: revoked.id })).body.data.revokeApiKey.status).toBe('REVOKED');
    const disabled = await createKey(server, { organizationId: organization.id });
    expect((await server.gql('mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { status } }', { id: disabled.id })).body.data.setApiKeyEnabled.status).toBe('DISABLED');
    const start = server.clock.now();
    const expiring = await createKey(server, { organizationId: organization.id, expiresAt: new Date(start.getTime() + 1_000).toISOString() });
    const valid = await createKey(server, { organizationId: organization.id });
    const ip = freshAddress();
    const attempts: Array<[CreatedKey | string, string]> = [
      ...Array.from({ length: 5 }, () => [revoked, 'KEY_REVOKED'] as [CreatedKey, string]),
      ...Array.from({ length: 5 }, () => [disabled, 'KEY_DISABLED'] as [CreatedKey, string]),
      ...Array.from({ length: 5 }, () => ['kw_live_short', 'INVALID_API_KEY'] as [string, string]),
    ];
    await at(start, async () => {
      for (const [key, code] of attempts) {
        const response = await viewerAs(ip, typeof key === 'string' ? key : key.secret);
        expect(response.status).toBe(401);
        expect(response.code).toBe(code);
      }
      // 15 failures: still under the limit.
      expect((await viewerAs(ip, valid.secret)).status).toBe(200);
      server.clock.advance(1_000);
      for (let i = 0; i < LIMIT - attempts.length; i++) {
        const response = await viewerAs(ip, expiring.secret);
        expect(response.status).toBe(401);
        expect(response.code).toBe('KEY_EXPIRED');
      }
      expectBlocked(await viewerAs(ip, valid.secret), '59');
    });
  });

  it('does not count refusals of keys that did authenticate (scope, IP allowlist, suspended organization)', async () => {
    const organization = await createOrganization(server);
    const narrow = await createKey(server, { organizationId: organization.id, scopes: ['usage:read'] });
    const ip = freshAddress();
    const allowlisted = await createKey(server, { organizationId: organization.id, ipAllowlist: ['198.51.100.1'] });
    for (let i = 0; i < LIMIT + 5; i++) {
      const scope = await server.gql('query { apiKeys { totalCount } }', {}, from(ip, narrow.secret));
      expect(scope.status).toBe(403);
      expect(scope.code).toBe('INSUFFICIENT_SCOPE');
      const address = await viewerAs(ip, allowlisted.secret);
      expect(address.status).toBe(403);
      expect(address.code).toBe('FORBIDDEN_IP');
    }
    const { key, organizationId } = await createTenant(server);
    const suspend = await server.gql('mutation($id: ID!) { setOrganizationStatus(id: $id, status: SUSPENDED) { status } }', { id: organizationId });
    expect(suspend.body.data.setOrganizationStatus.status).toBe('SUSPENDED');
    for (let i = 0; i < LIMIT + 5; i++) {
      const suspended = await viewerAs(ip, key.secret);
      expect(suspended.status).toBe(403);
      expect(suspended.code).toBe('ORGANIZATION_SUSPENDED');
    }
    const response = await server.gql('query { quotas { meter } }', {}, from(ip, narrow.secret));
    expect(response.status).toBe(200);
    expect(await auditEntriesOf(ip)).toEqual([]);
  });

  it('does not count keys checked with verifyKey: the caller authenticated', async () => {
    const { key } = await createTenant(server);
    const verifier = await createKey(server, { organizationId: key.organizationId, scopes: ['keys:verify'], rateLimits: [] });
    const ip = freshAddress();
    for (let i = 0; i < LIMIT + 5; i++) {
      const response = await server.gql('mutation($key: String!) { verifyKey(input: { key: $key }) { valid code } }', { key: unknownKey() }, from(ip, verifier.secret));
      expect(response.status).toBe(200);
      expect(response.body.data.verifyKey).toEqual({ valid: false, code: 'NOT_FOUND' });
    }
    expect((await viewerAs(ip, key.secret)).status).toBe(200);
  });

  it('writes an auth.failures_exceeded audit entry when the failures fill the window, at most one per address in any 60 s', async () => {
    const ip = freshAddress();
    const start = freshPeriod();
    const after = (ms: number) => new Date(start.getTime() + ms).toISOString();
    await at(start, async () => {
      await fail(ip, LIMIT / 2);
      server.clock.advance(30_000);
      await fail(ip, LIMIT / 2 - 1);
      expect(await auditEntriesOf(ip)).toEqual([]);
      await fail(ip, 1);
      for (let i = 0; i < 5; i++) expectBlocked(await viewerAs(ip, unknownKey()), '30');
      expect(await auditEntriesOf(ip)).toEqual([{
        action: 'auth.failures_exceeded',
        actorKeyId: null,
        targetType: 'ip',
        targetId: null,
        organizationId: null,
        ip,
        metadata: { failures: LIMIT, windowSeconds: WINDOW_MS / 1000 },
        at: after(30_000),
      }]);
      // 60 s: the first ten left; ten more fill the window again, 30 s after the entry: no second one.
      server.clock.advance(30_000);
      await fail(ip, LIMIT / 2);
      expectBlocked(await viewerAs(ip, unknownKey()), '30');
      expect((await auditEntriesOf(ip)).map((entry) => entry.at)).toEqual([after(30_000)]);
      // 90 s: filled again, 60 s after the entry: a second one.
      server.clock.advance(30_000);
      await fail(ip, LIMIT / 2);
      expectBlocked(await viewerAs(ip, unknownKey()), '30');
      expect((await auditEntriesOf(ip)).map((entry) => entry.at)).toEqual([after(90_000), after(30_000)]);
    });
  });

  it('does not show the audit entry to an organization admin (it belongs to no organization)', async () => {
    const { key } = await createTenant(server);
    const ip = freshAddress();
    await fail(ip, LIMIT);
    expect(await auditEntriesOf(ip)).toHaveLength(1);
    const own = await server.gql(AUDIT, {}, { key: key.secret });
    expect(own.status).toBe(200);
    expect(own.body.data.auditLog.nodes.filter((entry: any) => entry.action === 'auth.failures_exceeded')).toEqual([]);
  });

  it('leaves anonymous calls of public fields to their own limit', async () => {
    const ip = freshAddress();
    await fail(ip, LIMIT);
    const response = await server.gql('query($address: String!) { walletChallenge(address: $address) { token } }', { address: '0x0000000000000000000000000000000000000001' }, from(ip, null));
    expect(response.status).toBe(200);
    expect(typeof response.body.data.walletChallenge.token).toBe('string');
  });

  describe('WebSocket connections', () => {
    /** Opens a socket from `ip`, sends connection_init with `secret`; 'ack' or how it was closed. */
    async function connect(ip: string, secret: string): Promise<'ack' | { code: number; reason: string }> {
      const raw = new RawSocket(server.wsUrl, { headers: { 'x-forwarded-for': ip } });
      const outcome = await raw.init({ authorization: `Bearer ${secret}` });
      if (outcome === 'ack') {
        raw.socket.close(1000);
        return 'ack';
      }
      return { code: outcome.code, reason: outcome.reason };
    }

    it('counts connects with bad keys, then refuses every key from the address over HTTP and WebSocket', async () => {
      const { key } = await createTenant(server);
      const ip = freshAddress();
      for (let i = 0; i < LIMIT; i++) {
        const outcome = await connect(ip, unknownKey());
        expect(outcome).toEqual({ code: 4401, reason: expect.stringMatching(/^Unauthorized: /) });
      }
      const refused = await connect(ip, key.secret);
      expect(refused).toEqual({ code: 4401, reason: expect.stringMatching(/^Unauthorized: Too many failed authentications/) });
      expectBlocked(await viewerAs(ip, key.secret));
      expect(await auditEntriesOf(ip)).toHaveLength(1);
      expect(await connect(freshAddress(), key.secret)).toBe('ack');
    });

    it('refuses a WebSocket connect from an address that used up its failures over HTTP', async () => {
      const { key } = await createTenant(server);
      const ip = freshAddress();
      expect(await connect(ip, key.secret)).toBe('ack');
      await fail(ip, LIMIT);
      expect(await connect(ip, key.secret)).toEqual({ code: 4401, reason: expect.stringMatching(/Too many failed authentications/) });
    });
  });
});
