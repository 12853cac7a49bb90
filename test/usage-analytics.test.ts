import { startTestServer, TestServer, GraphQLResponse } from './helpers/server';
import { createKey, createTenant } from './helpers/fixtures';

/**
 * Verification analytics: usage(range).byOutcome (verifyKey outcomes counted in memory per UTC
 * hour and flushed with the usage buffer; who each outcome belongs to) and usage(range).byHour
 * (hourly rollups for whole days, events for the partial ones, backfilled from the events
 * recorded before the analytics migration); percentUsed rounded to two decimals.
 */

const VERIFY = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code keyId } }';
const RECORD = 'mutation($input: RecordUsageInput!) { recordUsage(input: $input) { recorded } }';
const BUCKET = 'key requests errors tokens costUsd avgLatencyMs';
const USAGE = `query($range: UsageRange) { usage(range: $range) { requests tokens byOutcome { code count } byHour { ${BUCKET} } byDay { key requests } } }`;
const QUOTAS = 'query($organizationId: ID) { quotas(organizationId: $organizationId) { meter used percentUsed } }';

interface Bucket { key: string; requests: number; errors: number; tokens: number; costUsd: number; avgLatencyMs: number | null }
interface Summary { requests: number; tokens: number; byOutcome: Array<{ code: string; count: number }>; byHour: Bucket[]; byDay: Array<{ key: string; requests: number }> }

function ok<T = any>(response: GraphQLResponse<T>): T {
  if (response.status !== 200 || response.body.errors) throw new Error(`unexpected response ${response.status}: ${JSON.stringify(response.body)}`);
  return response.body.data as T;
}

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ clockStart: '2026-04-07T10:20:00.000Z' });
});

afterAll(async () => {
  await server?.close();
});

async function verify(secret: string, input: Record<string, unknown> = {}, callerKey?: string): Promise<{ valid: boolean; code: string; keyId: string | null }> {
  return ok(await server.gql(VERIFY, { input: { key: secret, ...input } }, { key: callerKey })).verifyKey;
}

async function usage(range: Record<string, unknown>, key?: string): Promise<Summary> {
  return ok(await server.gql(USAGE, { range }, { key })).usage;
}

let idempotency = 0;
async function record(apiKeyId: string, tokens: number): Promise<void> {
  idempotency += 1;
  ok(await server.gql(RECORD, { input: { apiKeyId, operation: 'chat', tokens, idempotencyKey: `analytics-${idempotency}` } }));
}

/** A malformed secret: refused as NOT_FOUND before any lookup. */
const UNKNOWN = 'kw_live_thisisnotarealkeyatall';

describe('usage.byOutcome', () => {
  it('counts each verifyKey outcome under the verified key and its organization, VALID first and codes in VerifyCode order', async () => {
    server.clock.set('2026-04-07T10:20:00.000Z');
    const tenant = await createTenant(server);
    const key = await createKey(server, { organizationId: tenant.organizationId, preset: 'INFERENCE', rateLimits: [{ name: 'tiny', limit: 2, windowSeconds: 3600 }] });
    const revoked = await createKey(server, { organizationId: tenant.organizationId, preset: 'READ' });
    ok(await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "analytics test") { status } }', { id: revoked.id }));

    expect(await verify(key.secret)).toMatchObject({ valid: true, code: 'VALID' });
    expect(await verify(key.secret, { requiredScopes: ['inference:run'] })).toMatchObject({ code: 'VALID' });
    expect(await verify(key.secret, { requiredScopes: ['keys:write'] })).toMatchObject({ code: 'INSUFFICIENT_SCOPE' });
    expect(await verify(key.secret)).toMatchObject({ code: 'RATE_LIMITED' });
    expect(await verify(revoked.secret)).toMatchObject({ code: 'REVOKED' });

    const summary = await usage({ organizationId: tenant.organizationId });
    expect(summary.byOutcome).toEqual([
      { code: 'VALID', count: 2 },
      { code: 'REVOKED', count: 1 },
      { code: 'INSUFFICIENT_SCOPE', count: 1 },
      { code: 'RATE_LIMITED', count: 1 },
    ]);
    // Only that key's outcomes with apiKeyId; the tenant's own ADMIN key may read them too.
    expect((await usage({ apiKeyId: revoked.id }, tenant.key.secret)).byOutcome).toEqual([{ code: 'REVOKED', count: 1 }]);
    expect((await usage({ apiKeyId: key.id }, tenant.key.secret)).byOutcome).toEqual([
      { code: 'VALID', count: 2 },
      { code: 'INSUFFICIENT_SCOPE', count: 1 },
      { code: 'RATE_LIMITED', count: 1 },
    ]);
  });

  it("counts a key nobody knows under the verifying caller's organization: the tenant's for a tenant verifier, the platform's for the platform's service", async () => {
    server.clock.set('2026-04-07T10:25:00.000Z');
    const tenant = await createTenant(server);
    const other = await createTenant(server);
    const tenantVerifier = await createKey(server, { organizationId: tenant.organizationId, scopes: ['keys:verify', 'usage:read'], rateLimits: [] });
    const platformService = await createKey(server, { organizationId: server.platformOrganizationId, scopes: ['keys:verify'], rateLimits: [] });
    const platformBefore = await usage({ organizationId: server.platformOrganizationId });

    // An unknown key, and another organization's key: both NOT_FOUND for the tenant, with no key named.
    expect(await verify(UNKNOWN, {}, tenantVerifier.secret)).toEqual({ valid: false, code: 'NOT_FOUND', keyId: null });
    expect(await verify(other.key.secret, {}, tenantVerifier.secret)).toEqual({ valid: false, code: 'NOT_FOUND', keyId: null });
    expect((await usage({ organizationId: tenant.organizationId })).byOutcome).toEqual([{ code: 'NOT_FOUND', count: 2 }]);
    // The other organization's key was never verified as far as its own organization can tell.
    expect((await usage({ organizationId: other.organizationId })).byOutcome).toEqual([]);
    // A refusal naming no key is no key's: the verifier key's own breakdown stays empty.
    expect((await usage({ apiKeyId: tenantVerifier.id }, tenant.key.secret)).byOutcome).toEqual([]);

    expect(await verify(UNKNOWN, {}, platformService.secret)).toMatchObject({ code: 'NOT_FOUND' });
    expect(await verify(other.key.secret, {}, platformService.secret)).toMatchObject({ code: 'VALID' });
    const platformAfter = await usage({ organizationId: server.platformOrganizationId });
    const notFound = (summary: Summary) => summary.byOutcome.find((entry) => entry.code === 'NOT_FOUND')?.count ?? 0;
    expect(notFound(platformAfter) - notFound(platformBefore)).toBe(1);
    expect(platformAfter.byOutcome.find((entry) => entry.code === 'VALID')).toBeUndefined();
    expect((await usage({ organizationId: other.organizationId })).byOutcome).toEqual([{ code: 'VALID', count: 1 }]);
  });

  it("does not count keyward's own API calls, only verifyKey", async () => {
    server.clock.set('2026-04-07T10:30:00.000Z');
    const tenant = await createTenant(server);
    for (let i = 0; i < 3; i += 1) ok(await server.gql('{ viewer { scopes } }', {}, { key: tenant.key.secret }));
    const summary = await usage({ organizationId: tenant.organizationId });
    expect(summary.requests).toBeGreaterThanOrEqual(3);
    expect(summary.byOutcome).toEqual([]);
  });

  it('counts every UTC hour the range touches as a whole', async () => {
    const tenant = await createTenant(server);
    server.clock.set('2026-04-08T10:20:00.000Z');
    await verify(tenant.key.secret);
    server.clock.set('2026-04-08T12:10:00.000Z');
    await verify(tenant.key.secret);
    await verify(tenant.key.secret);
    server.clock.set('2026-04-08T13:00:00.000Z');
    const organizationId = tenant.organizationId;

    // 10:30–11:30 touches the 10 o'clock hour (whole: the 10:20 verification counts) and 11.
    expect((await usage({ organizationId, from: '2026-04-08T10:30:00.000Z', to: '2026-04-08T11:30:00.000Z' })).byOutcome).toEqual([{ code: 'VALID', count: 1 }]);
    expect((await usage({ organizationId, from: '2026-04-08T11:00:00.000Z', to: '2026-04-08T11:59:59.999Z' })).byOutcome).toEqual([]);
    expect((await usage({ organizationId, from: '2026-04-08T11:00:00.000Z', to: '2026-04-08T12:00:00.000Z' })).byOutcome).toEqual([{ code: 'VALID', count: 2 }]);
    expect((await usage({ organizationId, from: '2026-04-08T00:00:00.000Z' })).byOutcome).toEqual([{ code: 'VALID', count: 3 }]);
  });

  it('keeps outcomes counted in memory until the buffer is flushed, and writes them with it', async () => {
    server.clock.set('2026-04-08T14:00:00.000Z');
    const tenant = await createTenant(server);
    await verify(tenant.key.secret);
    const stored = async () => Number((await server.app.dataSource.query(
      'SELECT COALESCE(SUM(count), 0) AS total FROM verification_outcomes WHERE organization_id = ?', [tenant.organizationId],
    ))[0].total);
    await server.app.usageBuffer.flush();
    expect(await stored()).toBe(1);
    await verify(tenant.key.secret);
    await verify(tenant.key.secret);
    // Repeated outcomes of one hour, organization, key and code are one row, incremented.
    await server.app.usageBuffer.flush();
    expect(await stored()).toBe(3);
    const rows = await server.app.dataSource.query('SELECT hour, api_key_id, code, count FROM verification_outcomes WHERE organization_id = ?', [tenant.organizationId]);
    expect(rows.map((row: Record<string, unknown>) => ({ ...row, count: Number(row.count) }))).toEqual([{ hour: '2026-04-08T14', api_key_id: tenant.key.id, code: 'VALID', count: 3 }]);
  });
});

describe('usage.byHour', () => {
  it('buckets usage per UTC hour across whole and partial days, summing to the totals', async () => {
    const tenant = await createTenant(server);
    const key = await createKey(server, { organizationId: tenant.organizationId, preset: 'INFERENCE' });
    const at = async (moment: string, tokens: number) => {
      server.clock.set(moment);
      await record(key.id, tokens);
    };
    await at('2026-05-01T10:15:00.000Z', 1); // before the range
    await at('2026-05-01T10:45:00.000Z', 2); // partial first day: from the events
    await at('2026-05-01T10:50:00.000Z', 4);
    await at('2026-05-01T13:00:00.000Z', 8);
    await at('2026-05-02T05:30:00.000Z', 16); // a whole day: from the hourly rollup
    await at('2026-05-02T23:59:59.999Z', 32);
    await at('2026-05-03T09:00:00.000Z', 64); // partial last day
    await at('2026-05-03T09:45:00.000Z', 128); // after the range
    server.clock.set('2026-05-03T12:00:00.000Z');

    const summary = await usage({ apiKeyId: key.id, from: '2026-05-01T10:30:00.000Z', to: '2026-05-03T09:30:00.000Z' });
    expect(summary.byHour.map((bucket) => [bucket.key, bucket.requests, bucket.tokens])).toEqual([
      ['2026-05-01T10:00:00.000Z', 2, 6],
      ['2026-05-01T13:00:00.000Z', 1, 8],
      ['2026-05-02T05:00:00.000Z', 1, 16],
      ['2026-05-02T23:00:00.000Z', 1, 32],
      ['2026-05-03T09:00:00.000Z', 1, 64],
    ]);
    expect(summary.tokens).toBe(126);
    expect(summary.byHour.reduce((sum, bucket) => sum + bucket.requests, 0)).toBe(summary.requests);
    expect(summary.byDay.map((bucket) => bucket.key)).toEqual(['2026-05-01', '2026-05-02', '2026-05-03']);
    // Every hour key parses as the hour's start.
    for (const bucket of summary.byHour) expect(new Date(bucket.key).getUTCMinutes()).toBe(0);
  });

  it('has hourly buckets for events recorded before the analytics migration ran (backfilled from the events)', async () => {
    const tenant = await createTenant(server);
    server.clock.set('2026-06-01T08:10:00.000Z');
    await record(tenant.key.id, 5);
    server.clock.set('2026-06-02T09:10:00.000Z');
    await record(tenant.key.id, 7);
    await server.app.usageBuffer.flush();
    const { dataSource } = server.app;
    // Back to the schema before the migration, then forward again: the hourly table is rebuilt from usage_events.
    await dataSource.undoLastMigration({ transaction: 'each' });
    await dataSource.runMigrations({ transaction: 'each' });
    server.clock.set('2026-06-05T00:00:00.000Z');
    const summary = await usage({ organizationId: tenant.organizationId, from: '2026-06-01T00:00:00.000Z' });
    expect(summary.byHour.filter((bucket) => bucket.tokens > 0).map((bucket) => [bucket.key, bucket.requests, bucket.tokens])).toEqual([
      ['2026-06-01T08:00:00.000Z', 1, 5],
      ['2026-06-02T09:00:00.000Z', 1, 7],
    ]);
  });
});

describe('QuotaStatus.percentUsed', () => {
  it('is rounded to two decimals, and is 100 only once the quota is used up', async () => {
    server.clock.set('2026-07-01T10:00:00.000Z');
    const tenant = await createTenant(server, { quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: 100_000 }, { meter: 'REQUESTS', period: 'MONTH', limit: 3 }] });
    const key = await createKey(server, { organizationId: tenant.organizationId, preset: 'INFERENCE', rateLimits: [] });
    const percent = async (meter: string) => {
      const quotas: Array<{ meter: string; percentUsed: number }> = ok(await server.gql(QUOTAS, { organizationId: tenant.organizationId })).quotas;
      return quotas.find((quota) => quota.meter === meter)!.percentUsed;
    };
    await verify(key.secret);
    expect(await percent('REQUESTS')).toBe(33.33);
    await verify(key.secret);
    expect(await percent('REQUESTS')).toBe(66.67);

    await record(key.id, 7);
    expect(await percent('TOKENS')).toBe(0.01);
    await record(key.id, 99_990);
    expect(await percent('TOKENS')).toBe(99.99);
    await record(key.id, 2);
    expect(await percent('TOKENS')).toBe(99.99);
    await record(key.id, 1);
    expect(await percent('TOKENS')).toBe(100);
  });
});
