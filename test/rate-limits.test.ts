import { startTestServer, TestServer, GraphQLResponse } from './helpers/server';
import { createKey, createOrganization, createTenant } from './helpers/fixtures';
import { Admission, busiestSpan, randomBetween, seededRandom } from './helpers/sliding-windows';
import { expectRefused } from './helpers/expect';

const VIEWER = '{ viewer { scopes } }';
const RATE_LIMIT_STATUS = 'query($id: ID!) { rateLimitStatus(apiKeyId: $id) { apiKeyId name limit remaining windowSeconds resetAt } }';
const RATE_LIMIT_LOG = 'query($id: ID!, $first: Int) { rateLimitLog(apiKeyId: $id, first: $first) { apiKeyId name limit operation ip at } }';
const RESET = 'mutation($id: ID!, $name: String) { resetRateLimit(apiKeyId: $id, name: $name) { apiKeyId name limit remaining windowSeconds resetAt } }';
const VERIFY = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code rateLimits { name remaining } } }';
const VERIFY_WINDOWS = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code rateLimits { name remaining resetAt } } }';
const AUDIT_LOG = 'query($organizationId: ID) { auditLog(organizationId: $organizationId, first: 500) { nodes { action actorKeyId targetType targetId organizationId metadata } } }';
const QUOTAS = 'query($organizationId: ID) { quotas(organizationId: $organizationId) { meter period used } }';

const LOCALHOST = /^(::ffff:)?127\.0\.0\.1$/;

/** X-RateLimit-Reset for a unit freeing up at `date`: epoch seconds, rounded up. */
function resetHeader(date: Date | string): string {
  return String(Math.ceil(new Date(date).getTime() / 1000));
}

/** `date` moved by `seconds`. */
function plus(date: Date | string, seconds: number): Date {
  return new Date(new Date(date).getTime() + seconds * 1000);
}

function rateLimitHeaders(response: GraphQLResponse): { limit: string | null; remaining: string | null; reset: string | null } {
  return {
    limit: response.headers.get('x-ratelimit-limit'),
    remaining: response.headers.get('x-ratelimit-remaining'),
    reset: response.headers.get('x-ratelimit-reset'),
  };
}

describe('rate limits', () => {
  let server: TestServer;
  let adminKeyId: string;
  beforeAll(async () => {
    server = await startTestServer();
    adminKeyId = (await server.gql('{ viewer { apiKey { id } } }')).body.data.viewer.apiKey.id;
  });
  afterAll(async () => { await server.close(); });

  /** Runs `body` with the clock set to `at`, and puts the clock back afterwards. */
  async function at<T>(time: string, body: () => Promise<T>): Promise<T> {
    const original = server.clock.now();
    server.clock.set(time);
    try {
      return await body();
    } finally {
      server.clock.set(original);
    }
  }

  /** Remaining units per window name, read by the platform admin (which has no rate limits). */
  async function remaining(keyId: string): Promise<Record<string, number>> {
    const response = await server.gql(RATE_LIMIT_STATUS, { id: keyId });
    expect(response.status).toBe(200);
    return Object.fromEntries(response.body.data.rateLimitStatus.map((state: any) => [state.name, state.remaining]));
  }

  async function keyWithLimits(rateLimits: Array<{ name: string; limit: number; windowSeconds: number }>, extra: Record<string, unknown> = {}) {
    const organization = await createOrganization(server);
    return createKey(server, { organizationId: organization.id, rateLimits, ...extra });
  }

  describe('headers and refusals of GraphQL calls', () => {
    it('admits 3 calls with X-RateLimit headers, refuses the 4th with 429 RATE_LIMITED and Retry-After, and admits again once the oldest call is a window old', async () => {
      const key = await keyWithLimits([{ name: 'per-minute', limit: 3, windowSeconds: 60 }]);
      await at('2026-01-15T12:30:15.500Z', async () => {
        // The first call's unit frees up at 12:31:15.500: X-RateLimit-Reset says 12:31:16.
        const oldestFree = '2026-01-15T12:31:15.500Z';
        for (const left of ['2', '1', '0']) {
          const response = await server.gql(VIEWER, {}, { key: key.secret });
          expect(response.status).toBe(200);
          expect(response.body.data.viewer.scopes).toEqual(key.apiKey.scopes);
          expect(rateLimitHeaders(response)).toEqual({ limit: '3', remaining: left, reset: resetHeader(oldestFree) });
          expect(response.headers.get('retry-after')).toBeNull();
          server.clock.advance(10_000);
        }
        // 12:30:45.500: the three calls of the last 30 s fill the window.
        const refused = await server.gql(VIEWER, {}, { key: key.secret });
        expectRefused(refused, 'RATE_LIMITED');
        expect(refused.body.data?.viewer ?? null).toBeNull();
        expect(refused.headers.get('retry-after')).toBe('30');
        expect(rateLimitHeaders(refused)).toEqual({ limit: '3', remaining: '0', reset: resetHeader(oldestFree) });

        server.clock.set(plus(oldestFree, -0.001));
        const early = await server.gql(VIEWER, {}, { key: key.secret });
        expectRefused(early, 'RATE_LIMITED');
        expect(early.headers.get('retry-after')).toBe('1');

        server.clock.set(oldestFree);
        const again = await server.gql(VIEWER, {}, { key: key.secret });
        expect(again.status).toBe(200);
        // The calls of 12:30:25.500 and 12:30:35.500 still count, and this one.
        expect(rateLimitHeaders(again)).toEqual({ limit: '3', remaining: '0', reset: resetHeader('2026-01-15T12:31:25.500Z') });
      });
    });

    it('sends Retry-After: 1 when the next unit frees up in less than a second', async () => {
      const key = await keyWithLimits([{ name: 'per-minute', limit: 1, windowSeconds: 60 }]);
      await at('2026-01-15T12:40:00.700Z', async () => {
        expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
        server.clock.advance(59_500);
        const refused = await server.gql(VIEWER, {}, { key: key.secret });
        expectRefused(refused, 'RATE_LIMITED');
        expect(refused.headers.get('retry-after')).toBe('1');
      });
    });

    it('reports the window with the least remaining in the headers when a key has two', async () => {
      const key = await keyWithLimits([{ name: 'per-minute', limit: 3, windowSeconds: 60 }, { name: 'per-hour', limit: 4, windowSeconds: 3600 }]);
      await at('2026-01-15T13:20:00.000Z', async () => {
        const minute = '2026-01-15T13:21:00.000Z';
        const hour = '2026-01-15T14:20:00.000Z';
        const first = await server.gql(VIEWER, {}, { key: key.secret });
        expect(rateLimitHeaders(first)).toEqual({ limit: '3', remaining: '2', reset: resetHeader(minute) });
        const second = await server.gql(VIEWER, {}, { key: key.secret });
        expect(rateLimitHeaders(second)).toEqual({ limit: '3', remaining: '1', reset: resetHeader(minute) });
        // A minute later: per-minute has 2 left, per-hour only 1 (its units free up at 14:20).
        server.clock.set(minute);
        const third = await server.gql(VIEWER, {}, { key: key.secret });
        expect(third.status).toBe(200);
        expect(rateLimitHeaders(third)).toEqual({ limit: '4', remaining: '1', reset: resetHeader(hour) });
        await server.gql(VIEWER, {}, { key: key.secret });
        const refused = await server.gql(VIEWER, {}, { key: key.secret });
        expectRefused(refused, 'RATE_LIMITED');
        expect(refused.headers.get('retry-after')).toBe(String((Date.parse(hour) - Date.parse(minute)) / 1000));
      });
    });

    it('reports the default per-minute window (60) in the headers of a key created without rateLimits', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id });
      const response = await server.gql(VIEWER, {}, { key: key.secret });
      expect(response.status).toBe(200);
      expect(rateLimitHeaders(response)).toEqual({ limit: '60', remaining: '59', reset: resetHeader(plus(server.clock.now(), 60)) });
    });

    it('sends no X-RateLimit headers for a key with rateLimits []', async () => {
      const key = await keyWithLimits([]);
      for (let i = 0; i < 3; i++) {
        const response = await server.gql(VIEWER, {}, { key: key.secret });
        expect(response.status).toBe(200);
        expect(rateLimitHeaders(response)).toEqual({ limit: null, remaining: null, reset: null });
        expect(response.headers.get('retry-after')).toBeNull();
      }
      expect(await remaining(key.id)).toEqual({});
    });

    it('consumes no rate-limit unit for a call refused with 403 INSUFFICIENT_SCOPE', async () => {
      const key = await keyWithLimits([{ name: 'per-minute', limit: 2, windowSeconds: 60 }], { scopes: ['inference:run'] });
      for (let i = 0; i < 4; i++) expectRefused(await server.gql('{ apiKeys { totalCount } }', {}, { key: key.secret }), 'INSUFFICIENT_SCOPE');
      expect(await remaining(key.id)).toEqual({ 'per-minute': 2 });
      const allowed = await server.gql(VIEWER, {}, { key: key.secret });
      expect(allowed.status).toBe(200);
      expect(allowed.headers.get('x-ratelimit-remaining')).toBe('1');
    });

    it('refuses the third call of an organization with a REQUESTS DAY quota of 2 with 429 QUOTA_EXCEEDED and gives the rate-limit unit back', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 2 }] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [{ name: 'per-minute', limit: 10, windowSeconds: 60 }] });
      expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
      expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
      const refused = await server.gql(VIEWER, {}, { key: key.secret });
      expectRefused(refused, 'QUOTA_EXCEEDED');
      // Retry-After points at the next UTC midnight, when the DAY quota starts afresh.
      const now = server.clock.now().getTime();
      const midnight = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate() + 1);
      expect(refused.headers.get('retry-after')).toBe(String(Math.ceil((midnight - now) / 1000)));
      expect(refused.body.data?.viewer ?? null).toBeNull();
      expect((await server.gql(QUOTAS, { organizationId: organization.id })).body.data.quotas).toEqual([{ meter: 'REQUESTS', period: 'DAY', used: 2 }]);
      expect(await remaining(key.id)).toEqual({ 'per-minute': 8 });
    });

    it('takes nothing from the quota for a call refused with RATE_LIMITED', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 10 }] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [{ name: 'per-minute', limit: 1, windowSeconds: 60 }] });
      expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
      for (let i = 0; i < 3; i++) expectRefused(await server.gql(VIEWER, {}, { key: key.secret }), 'RATE_LIMITED');
      expect((await server.gql(QUOTAS, { organizationId: organization.id })).body.data.quotas).toEqual([{ meter: 'REQUESTS', period: 'DAY', used: 1 }]);
    });
  });

  describe('rateLimitLog', () => {
    it('keeps every refusal with name, limit, operation label and ip, newest first', async () => {
      const key = await keyWithLimits([{ name: 'per-minute', limit: 1, windowSeconds: 60 }]);
      expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
      expectRefused(await server.gql(VIEWER, {}, { key: key.secret }), 'RATE_LIMITED');
      expectRefused(await server.gql('query WhoAmI { viewer { scopes } }', {}, { key: key.secret }), 'RATE_LIMITED');
      expectRefused(await server.gql('{ viewer { scopes } organization { id } }', {}, { key: key.secret }), 'RATE_LIMITED');

      const response = await server.gql(RATE_LIMIT_LOG, { id: key.id });
      expect(response.status).toBe(200);
      const log = response.body.data.rateLimitLog;
      expect(log.map((event: any) => event.operation)).toEqual(['viewer+organization', 'WhoAmI', 'viewer']);
      for (const event of log) {
        expect(event).toMatchObject({ apiKeyId: key.id, name: 'per-minute', limit: 1, at: server.clock.now().toISOString() });
        expect(event.ip).toMatch(LOCALHOST);
      }
      const first = await server.gql(RATE_LIMIT_LOG, { id: key.id, first: 1 });
      expect(first.body.data.rateLimitLog.map((event: any) => event.operation)).toEqual(['viewer+organization']);
    });

    it('is empty for a key that was never refused', async () => {
      const key = await keyWithLimits([{ name: 'per-minute', limit: 5, windowSeconds: 60 }]);
      expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
      expect((await server.gql(RATE_LIMIT_LOG, { id: key.id })).body.data.rateLimitLog).toEqual([]);
    });
  });

  describe('rateLimitStatus', () => {
    it('shows what is left without consuming, whichever key asks', async () => {
      const { organizationId, key: tenantKey } = await createTenant(server);
      const key = await createKey(server, { organizationId, rateLimits: [{ name: 'per-minute', limit: 3, windowSeconds: 60 }, { name: 'per-day', limit: 100, windowSeconds: 86_400 }] });
      expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
      const now = server.clock.now();
      for (let i = 0; i < 3; i++) {
        const response = await server.gql(RATE_LIMIT_STATUS, { id: key.id }, { key: tenantKey.secret });
        expect(response.status).toBe(200);
        expect(response.body.data.rateLimitStatus).toEqual([
          { apiKeyId: key.id, name: 'per-minute', limit: 3, remaining: 2, windowSeconds: 60, resetAt: plus(now, 60).toISOString() },
          { apiKeyId: key.id, name: 'per-day', limit: 100, remaining: 99, windowSeconds: 86_400, resetAt: plus(now, 86_400).toISOString() },
        ]);
      }
      expect(await remaining(key.id)).toEqual({ 'per-minute': 2, 'per-day': 99 });
    });
  });

  describe('resetRateLimit', () => {
    it('starts every window afresh so calls pass again, and writes a rate_limit.reset audit entry', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [{ name: 'per-minute', limit: 2, windowSeconds: 60 }, { name: 'per-hour', limit: 50, windowSeconds: 3600 }] });
      await server.gql(VIEWER, {}, { key: key.secret });
      await server.gql(VIEWER, {}, { key: key.secret });
      expectRefused(await server.gql(VIEWER, {}, { key: key.secret }), 'RATE_LIMITED');

      const reset = await server.gql(RESET, { id: key.id });
      expect(reset.status).toBe(200);
      expect(reset.body.data.resetRateLimit.map((state: any) => [state.name, state.remaining])).toEqual([['per-minute', 2], ['per-hour', 50]]);
      expect(await remaining(key.id)).toEqual({ 'per-minute': 2, 'per-hour': 50 });
      const again = await server.gql(VIEWER, {}, { key: key.secret });
      expect(again.status).toBe(200);
      expect(again.headers.get('x-ratelimit-remaining')).toBe('1');

      const entries = (await server.gql(AUDIT_LOG, { organizationId: organization.id })).body.data.auditLog.nodes;
      const resets = entries.filter((entry: any) => entry.action === 'rate_limit.reset');
      expect(resets).toHaveLength(1);
      expect(resets[0]).toMatchObject({ actorKeyId: adminKeyId, targetType: 'api_key', targetId: key.id, organizationId: organization.id });
    });

    it('resets only the named window when a name is given', async () => {
      const key = await keyWithLimits([{ name: 'per-minute', limit: 5, windowSeconds: 60 }, { name: 'per-hour', limit: 50, windowSeconds: 3600 }]);
      for (let i = 0; i < 3; i++) await server.gql(VIEWER, {}, { key: key.secret });
      const reset = await server.gql(RESET, { id: key.id, name: 'per-minute' });
      expect(reset.status).toBe(200);
      expect(reset.body.data.resetRateLimit.map((state: any) => [state.name, state.remaining])).toEqual([['per-minute', 5], ['per-hour', 47]]);
      expect(await remaining(key.id)).toEqual({ 'per-minute': 5, 'per-hour': 47 });
    });

    it('refuses an unknown window name with 400 BAD_USER_INPUT, resetting and auditing nothing', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [{ name: 'per-minute', limit: 5, windowSeconds: 60 }] });
      await server.gql(VIEWER, {}, { key: key.secret });
      const response = await server.gql(RESET, { id: key.id, name: 'per-fortnight' });
      expectRefused(response, 'BAD_USER_INPUT');
      expect(response.body.errors![0].message).toContain('name');
      expect(await remaining(key.id)).toEqual({ 'per-minute': 4 });
      const entries = (await server.gql(AUDIT_LOG, { organizationId: organization.id })).body.data.auditLog.nodes;
      expect(entries.filter((entry: any) => entry.action === 'rate_limit.reset')).toEqual([]);
    });
  });

  describe("another organization's key", () => {
    it.each([
      ['rateLimitStatus', RATE_LIMIT_STATUS, {}],
      ['rateLimitLog', RATE_LIMIT_LOG, {}],
      ['resetRateLimit', RESET, {}],
    ])('answers %s with 404 NOT_FOUND and reveals or changes nothing', async (field, query, extra) => {
      const caller = await createTenant(server);
      const other = await createOrganization(server);
      const foreign = await createKey(server, { organizationId: other.id, rateLimits: [{ name: 'per-minute', limit: 1, windowSeconds: 60 }] });
      await server.gql(VIEWER, {}, { key: foreign.secret });
      expectRefused(await server.gql(VIEWER, {}, { key: foreign.secret }), 'RATE_LIMITED');

      const response = await server.gql(query, { id: foreign.id, ...extra }, { key: caller.key.secret });
      expectRefused(response, 'NOT_FOUND');
      expect(response.body.data?.[field] ?? null).toBeNull();
      expect(await remaining(foreign.id)).toEqual({ 'per-minute': 0 });
      const entries = (await server.gql(AUDIT_LOG, { organizationId: other.id })).body.data.auditLog.nodes;
      expect(entries.filter((entry: any) => entry.action === 'rate_limit.reset')).toEqual([]);
    });
  });

  describe('rotation and verifyKey', () => {
    it('lets the old and the new secret share the same windows after rotation', async () => {
      const key = await keyWithLimits([{ name: 'per-minute', limit: 3, windowSeconds: 60 }]);
      expect((await server.gql(VIEWER, {}, { key: key.secret })).headers.get('x-ratelimit-remaining')).toBe('2');
      const rotated = await server.gql('mutation($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 3600) { secret apiKey { id } } }', { id: key.id });
      expect(rotated.status).toBe(200);
      const newSecret = rotated.body.data.rotateApiKey.secret;
      const newId = rotated.body.data.rotateApiKey.apiKey.id;

      expect((await server.gql(VIEWER, {}, { key: newSecret })).headers.get('x-ratelimit-remaining')).toBe('1');
      expect((await server.gql(VIEWER, {}, { key: key.secret })).headers.get('x-ratelimit-remaining')).toBe('0');
      expectRefused(await server.gql(VIEWER, {}, { key: newSecret }), 'RATE_LIMITED');
      expectRefused(await server.gql(VIEWER, {}, { key: key.secret }), 'RATE_LIMITED');
      expect(await remaining(newId)).toEqual({ 'per-minute': 0 });
      expect(await remaining(key.id)).toEqual({ 'per-minute': 0 });

      // A reset through the new key's id frees the shared windows for both secrets.
      expect((await server.gql(RESET, { id: newId })).status).toBe(200);
      expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
      expect((await server.gql(VIEWER, {}, { key: newSecret })).headers.get('x-ratelimit-remaining')).toBe('1');
    });

    it('takes the verifyKey cost (5) from every window of the verified key, all or nothing', async () => {
      const target = await keyWithLimits([{ name: 'per-minute', limit: 10, windowSeconds: 60 }, { name: 'per-hour', limit: 20, windowSeconds: 3600 }]);
      const first = await server.gql(VERIFY, { input: { key: target.secret, cost: 5 } });
      expect(first.body.data.verifyKey).toEqual({ valid: true, code: 'VALID', rateLimits: [{ name: 'per-minute', remaining: 5 }, { name: 'per-hour', remaining: 15 }] });
      expect(await remaining(target.id)).toEqual({ 'per-minute': 5, 'per-hour': 15 });

      const refused = await server.gql(VERIFY, { input: { key: target.secret, cost: 6 } });
      expect(refused.status).toBe(200);
      expect(refused.body.data.verifyKey).toMatchObject({ valid: false, code: 'RATE_LIMITED' });
      expect(await remaining(target.id)).toEqual({ 'per-minute': 5, 'per-hour': 15 });
    });

    it('charges the calling service key 1 per verifyKey call, whatever the cost asked for the verified key', async () => {
      const service = await createKey(server, { organizationId: server.platformOrganizationId, scopes: ['keys:verify'], rateLimits: [{ name: 'per-minute', limit: 10, windowSeconds: 60 }] });
      const target = await keyWithLimits([{ name: 'per-minute', limit: 100, windowSeconds: 60 }]);
      const response = await server.gql(VERIFY, { input: { key: target.secret, cost: 5 } }, { key: service.secret });
      expect(response.status).toBe(200);
      expect(response.body.data.verifyKey.code).toBe('VALID');
      expect(rateLimitHeaders(response)).toMatchObject({ limit: '10', remaining: '9' });
      expect(await remaining(service.id)).toEqual({ 'per-minute': 9 });
      expect(await remaining(target.id)).toEqual({ 'per-minute': 95 });
    });
  });

  describe('sliding windows: no span of windowSeconds admits more than limit', () => {
    it('refuses a burst across what used to be a window boundary (5 per 2 s: 5 at 1.9 s, none of 5 more at 2.1 s) and admits again exactly at resetAt', async () => {
      const key = await keyWithLimits([{ name: 'burst', limit: 5, windowSeconds: 2 }]);
      await at('2026-01-15T15:00:01.900Z', async () => {
        for (let i = 0; i < 5; i++) expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
        server.clock.set('2026-01-15T15:00:02.100Z');
        for (let i = 0; i < 5; i++) {
          const refused = await server.gql(VIEWER, {}, { key: key.secret });
          expectRefused(refused, 'RATE_LIMITED');
          expect(refused.headers.get('retry-after')).toBe('2'); // 1.8 s, rounded up
          expect(rateLimitHeaders(refused)).toEqual({ limit: '5', remaining: '0', reset: resetHeader('2026-01-15T15:00:03.900Z') });
        }
        const [state] = (await server.gql(RATE_LIMIT_STATUS, { id: key.id })).body.data.rateLimitStatus;
        expect(state).toMatchObject({ remaining: 0, resetAt: '2026-01-15T15:00:03.900Z' });

        server.clock.set(plus(state.resetAt, -0.001));
        expectRefused(await server.gql(VIEWER, {}, { key: key.secret }), 'RATE_LIMITED');
        server.clock.set(state.resetAt);
        for (let i = 0; i < 5; i++) expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
        expectRefused(await server.gql(VIEWER, {}, { key: key.secret }), 'RATE_LIMITED');
      });
    });

    it.each([1, 2, 3])('admits a request exactly when its cost fits the last 2 s, over pseudo-random clock steps and costs (seed %i)', async (seed) => {
      const random = seededRandom(seed);
      const limit = 5;
      const windowMs = 2_000;
      const key = await keyWithLimits([{ name: 'burst', limit, windowSeconds: windowMs / 1000 }]);
      const admissions: Admission[] = [];
      await at('2026-01-15T16:00:00.000Z', async () => {
        for (let step = 0; step < 120; step++) {
          server.clock.advance(randomBetween(random, 0, 700));
          const now = server.clock.now().getTime();
          const cost = randomBetween(random, 1, 3);
          const inWindow = admissions.filter((admission) => admission.at > now - windowMs);
          const used = inWindow.reduce((sum, admission) => sum + admission.cost, 0);
          const fits = used + cost <= limit;

          const response = await server.gql(VERIFY_WINDOWS, { input: { key: key.secret, cost } });
          const result = response.body.data.verifyKey;
          expect({ step, code: result.code }).toEqual({ step, code: fits ? 'VALID' : 'RATE_LIMITED' });
          if (fits) admissions.push({ at: now, cost });
          // remaining and resetAt (the oldest counted unit frees up) after this request.
          const oldest = inWindow[0]?.at ?? now;
          expect({ step, state: result.rateLimits[0] }).toEqual({
            step, state: { name: 'burst', remaining: limit - used - (fits ? cost : 0), resetAt: new Date(oldest + windowMs).toISOString() },
          });
        }
      });
      expect(busiestSpan(admissions, windowMs).units).toBeLessThanOrEqual(limit);
      // The sequence exercised both outcomes.
      expect(admissions.length).toBeGreaterThan(30);
      expect(admissions.length).toBeLessThan(120);
    });

    it('admits exactly 10 of 50 concurrent verifications against a limit of 10', async () => {
      const key = await keyWithLimits([{ name: 'per-minute', limit: 10, windowSeconds: 60 }]);
      const responses = await Promise.all(Array.from({ length: 50 }, () => server.gql(VERIFY, { input: { key: key.secret } })));
      const codes = responses.map((response) => response.body.data.verifyKey.code);
      expect(codes.filter((code) => code === 'VALID')).toHaveLength(10);
      expect(codes.filter((code) => code === 'RATE_LIMITED')).toHaveLength(40);
      expect(await remaining(key.id)).toEqual({ 'per-minute': 0 });
    });
  });
});
