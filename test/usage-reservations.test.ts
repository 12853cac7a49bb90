import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, createTenant } from './helpers/fixtures';
import { expectRefused, ok } from './helpers/expect';

/**
 * Reserve-then-settle budgets (reserveUsage / settleUsage / releaseUsage): holds taken with the
 * verification's REQUESTS charge so concurrent callers never hold past a TOKENS / COST_USD
 * quota, a session's budget or a tokens-per-window limit; settling replaces the hold with the
 * actual usage; releasing and the TTL give it back. Also per-model prices and the tokenizer.
 */

const QUOTA_FIELDS = 'organizationId apiKeyId meter period limit used held remaining percentUsed';
const RESERVE = `mutation($input: ReserveUsageInput!) { reserveUsage(input: $input) {
  id tokens costUsd expiresAt verify { valid code keyId quotas { ${QUOTA_FIELDS} } session { id tokensUsed } } } }`;
const SETTLE = `mutation($input: SettleUsageInput!) { settleUsage(input: $input) { recorded quotas { ${QUOTA_FIELDS} } session { id status tokensUsed } } }`;
const RELEASE = 'mutation($id: ID!) { releaseUsage(reservationId: $id) }';
const QUOTAS = `query($organizationId: ID) { quotas(organizationId: $organizationId) { ${QUOTA_FIELDS} } }`;
const RECORD = `mutation($input: RecordUsageInput!) { recordUsage(input: $input) { recorded quotas { ${QUOTA_FIELDS} } } }`;
const ADD_CREDITS = 'mutation($input: AddSessionCreditsInput!) { addSessionCredits(input: $input) { available } }';
const CREATE_SESSION = 'mutation($input: CreateSessionInput) { createSession(input: $input) { id tokenLimit } }';
const KEY_WINDOWS = 'query($id: ID!) { apiKey(id: $id) { rateLimits { name limit windowSeconds meter } } }';

interface Quota { meter: string; period: string; limit: number; used: number; held: number; remaining: number }
interface Reservation { id: string | null; tokens: number; costUsd: number; expiresAt: string | null; verify: { valid: boolean; code: string; quotas: Quota[] } }

let server: TestServer;
let sequence = 0;

beforeAll(async () => {
  server = await startTestServer({ env: { MODEL_PRICES: JSON.stringify({ 'small-model': { input: 2, output: 8 } }) } });
});

afterAll(async () => {
  await server.close();
});

/** An organization whose quotas are `quotas`, with a key of its own (no rate limits unless given). */
async function budgetedKey(quotas: Array<Record<string, unknown>>, keyInput: Record<string, unknown> = {}) {
  const organization = await createOrganization(server, { quotas });
  const key = await createKey(server, { organizationId: organization.id, preset: 'ADMIN', rateLimits: [], ...keyInput });
  return { organizationId: organization.id, key };
}

function reserve(secret: string, input: Record<string, unknown> = {}, callerKey?: string) {
  sequence += 1;
  return server.gql<{ reserveUsage: Reservation }>(RESERVE, { input: { key: secret, idempotencyKey: `r-${sequence}`, ...input } }, { key: callerKey });
}

async function reserved(secret: string, input: Record<string, unknown> = {}): Promise<Reservation> {
  return ok(await reserve(secret, input)).reserveUsage;
}

async function settle(input: Record<string, unknown>, callerKey?: string) {
  return server.gql(SETTLE, { input }, { key: callerKey });
}

async function quota(organizationId: string, meter = 'TOKENS'): Promise<Quota> {
  const quotas: Quota[] = ok(await server.gql(QUOTAS, { organizationId })).quotas;
  return quotas.find((entry) => entry.meter === meter)!;
}

const TOKENS_MONTH = (limit: number) => ({ meter: 'TOKENS', period: 'MONTH', limit });

describe('reserveUsage', () => {
  it('holds exactly what fits: 200 concurrent reservations of 100 tokens against 10,000 → 100 held, 100 QUOTA_EXCEEDED', async () => {
    const { organizationId, key } = await budgetedKey([TOKENS_MONTH(10_000)]);
    const results = await Promise.all(Array.from({ length: 200 }, () => reserve(key.secret, { tokens: 100 }).then((response) => ok(response).reserveUsage)));
    const held = results.filter((result) => result.id !== null);
    const refused = results.filter((result) => result.id === null);
    expect(held).toHaveLength(100);
    expect(new Set(held.map((result) => result.id)).size).toBe(100);
    expect(refused.map((result) => [result.verify.code, result.tokens, result.costUsd, result.expiresAt])).toEqual(Array(100).fill(['QUOTA_EXCEEDED', 0, 0, null]));
    expect(await quota(organizationId)).toMatchObject({ used: 0, held: 10_000, remaining: 0 });
  });

  it('answers a refused key as data with nothing held, as verifyKey does', async () => {
    const response = ok(await reserve('kw_live_notakey', { tokens: 5 })).reserveUsage;
    expect(response).toMatchObject({ id: null, tokens: 0, costUsd: 0, expiresAt: null, verify: { valid: false, code: 'NOT_FOUND' } });
  });

  it('shows the hold in the verify result and in QuotaStatus, remaining = limit − used − held', async () => {
    const { organizationId, key } = await budgetedKey([TOKENS_MONTH(1_000)]);
    const reservation = await reserved(key.secret, { tokens: 300, ttlSeconds: 60 });
    expect(reservation).toMatchObject({ tokens: 300, costUsd: 0, verify: { valid: true, code: 'VALID' } });
    expect(new Date(reservation.expiresAt!).getTime()).toBe(server.clock.now().getTime() + 60_000);
    expect(reservation.verify.quotas.find((entry) => entry.meter === 'TOKENS')).toMatchObject({ used: 0, held: 300, remaining: 700 });
    expect(await quota(organizationId)).toMatchObject({ used: 0, held: 300, remaining: 700 });
  });

  it('returns the first reservation for the same idempotencyKey and amounts, and refuses other amounts with IDEMPOTENCY_CONFLICT', async () => {
    const { organizationId, key } = await budgetedKey([TOKENS_MONTH(1_000)]);
    const input = { key: key.secret, tokens: 400, idempotencyKey: 'once' };
    const first = ok(await server.gql(RESERVE, { input })).reserveUsage;
    const again = ok(await server.gql(RESERVE, { input })).reserveUsage;
    expect(again).toMatchObject({ id: first.id, tokens: 400, expiresAt: first.expiresAt, verify: { valid: true } });
    expect(await quota(organizationId)).toMatchObject({ held: 400 });
    expectRefused(await server.gql(RESERVE, { input: { ...input, tokens: 401 } }), 'IDEMPOTENCY_CONFLICT', 409);
  });

  it('checks its input: ttlSeconds 10–3600, non-negative tokens, an idempotencyKey', async () => {
    const { key } = await budgetedKey([]);
    expectRefused(await reserve(key.secret, { ttlSeconds: 5 }), 'BAD_USER_INPUT');
    expectRefused(await reserve(key.secret, { ttlSeconds: 3601 }), 'BAD_USER_INPUT');
    expectRefused(await reserve(key.secret, { tokens: -1 }), 'BAD_USER_INPUT');
    expectRefused(await reserve(key.secret, { idempotencyKey: '' }), 'BAD_USER_INPUT');
  });
});

describe('settleUsage and releaseUsage', () => {
  it('settling for less frees the difference at once', async () => {
    const { organizationId, key } = await budgetedKey([TOKENS_MONTH(10_000)]);
    const reservation = await reserved(key.secret, { tokens: 5_000 });
    const settled = ok(await settle({ reservationId: reservation.id, inputTokens: 1_000, outputTokens: 2_000 })).settleUsage;
    expect(settled.recorded).toBe(true);
    expect(settled.quotas.find((entry: Quota) => entry.meter === 'TOKENS')).toMatchObject({ used: 3_000, held: 0, remaining: 7_000 });
    expect((await reserved(key.secret, { tokens: 7_000 })).id).not.toBeNull();
    expect((await reserved(key.secret, { tokens: 1 })).verify.code).toBe('QUOTA_EXCEEDED');
    expect(await quota(organizationId)).toMatchObject({ used: 3_000, held: 7_000, remaining: 0 });
  });

  it('settling for more charges it all, and the next reservation sees it', async () => {
    const { organizationId, key } = await budgetedKey([TOKENS_MONTH(10_000)]);
    const reservation = await reserved(key.secret, { tokens: 1_000 });
    ok(await settle({ reservationId: reservation.id, tokens: 4_000 }));
    expect(await quota(organizationId)).toMatchObject({ used: 4_000, held: 0, remaining: 6_000 });
    expect((await reserved(key.secret, { tokens: 6_001 })).verify.code).toBe('QUOTA_EXCEEDED');
    expect((await reserved(key.secret, { tokens: 6_000 })).id).not.toBeNull();
  });

  it('is idempotent per reservation: the same settle again records nothing, other amounts are IDEMPOTENCY_CONFLICT', async () => {
    const { organizationId, key } = await budgetedKey([TOKENS_MONTH(10_000)]);
    const reservation = await reserved(key.secret, { tokens: 500 });
    expect(ok(await settle({ reservationId: reservation.id, tokens: 200 })).settleUsage.recorded).toBe(true);
    expect(ok(await settle({ reservationId: reservation.id, tokens: 200 })).settleUsage.recorded).toBe(false);
    expectRefused(await settle({ reservationId: reservation.id, tokens: 300 }), 'IDEMPOTENCY_CONFLICT', 409);
    expect(await quota(organizationId)).toMatchObject({ used: 200, held: 0 });
  });

  it('counts a reserved and settled call as one usage event, with the settled tokens and cost', async () => {
    const { key } = await budgetedKey([TOKENS_MONTH(10_000)]);
    const reservation = await reserved(key.secret, { tokens: 500, operation: 'POST /v1/chat' });
    ok(await settle({ reservationId: reservation.id, tokens: 321, costUsd: 0.25, statusCode: 200, latencyMs: 40 }));
    await server.app.usageBuffer.flush();
    const usage = ok(await server.gql('query($range: UsageRange) { usage(range: $range) { byOperation { key requests tokens costUsd avgLatencyMs } } }', { range: { apiKeyId: key.id } })).usage;
    expect(usage.byOperation).toEqual([{ key: 'POST /v1/chat', requests: 1, tokens: 321, costUsd: 0.25, avgLatencyMs: 40 }]);
  });

  it('releaseUsage gives the hold back once; a later settle still charges what was used', async () => {
    const { organizationId, key } = await budgetedKey([TOKENS_MONTH(1_000)]);
    const reservation = await reserved(key.secret, { tokens: 800 });
    expect(ok(await server.gql(RELEASE, { id: reservation.id })).releaseUsage).toBe(true);
    expect(ok(await server.gql(RELEASE, { id: reservation.id })).releaseUsage).toBe(false);
    expect(await quota(organizationId)).toMatchObject({ used: 0, held: 0, remaining: 1_000 });
    ok(await settle({ reservationId: reservation.id, tokens: 50 }));
    expect(await quota(organizationId)).toMatchObject({ used: 50, held: 0, remaining: 950 });
  });

  it('releases a reservation whose TTL has passed (injected clock), before the next reserve and on quota reads', async () => {
    const { organizationId, key } = await budgetedKey([TOKENS_MONTH(1_000)]);
    await reserved(key.secret, { tokens: 1_000, ttlSeconds: 30 });
    expect((await reserved(key.secret, { tokens: 1 })).verify.code).toBe('QUOTA_EXCEEDED');
    server.clock.advance(29_000);
    expect(await quota(organizationId)).toMatchObject({ held: 1_000 });
    server.clock.advance(1_000);
    expect(await quota(organizationId)).toMatchObject({ used: 0, held: 0, remaining: 1_000 });
    await reserved(key.secret, { tokens: 1_000, ttlSeconds: 30 });
    server.clock.advance(30_000);
    expect((await reserved(key.secret, { tokens: 1_000 })).id).not.toBeNull();
  });

  it("answers NOT_FOUND for another organization's reservation, and changes nothing", async () => {
    const { organizationId, key } = await budgetedKey([TOKENS_MONTH(1_000)]);
    const other = await createTenant(server);
    const reservation = await reserved(key.secret, { tokens: 100 });
    expectRefused(await settle({ reservationId: reservation.id, tokens: 1 }, other.key.secret), 'NOT_FOUND');
    expectRefused(await server.gql(RELEASE, { id: reservation.id }, { key: other.key.secret }), 'NOT_FOUND');
    expectRefused(await settle({ reservationId: 'rsv_unknown', tokens: 1 }), 'NOT_FOUND');
    expect(await quota(organizationId)).toMatchObject({ used: 0, held: 100 });
    // Its own organization's key may settle it.
    expect(ok(await settle({ reservationId: reservation.id, tokens: 1 }, key.secret)).settleUsage.recorded).toBe(true);
  });
});

describe('session budgets', () => {
  it('holds tokens on the active session with requireSession; refuses what does not fit; settling charges the session', async () => {
    const tenant = await createTenant(server);
    ok(await server.gql(ADD_CREDITS, { input: { organizationId: tenant.organizationId, sessions: 1, idempotencyKey: `c-${tenant.organizationId}` } }));
    const noSession = await reserved(tenant.key.secret, { tokens: 10, requireSession: true });
    expect(noSession).toMatchObject({ id: null, verify: { code: 'NO_ACTIVE_SESSION' } });
    const session = ok(await server.gql(CREATE_SESSION, { input: { tokenLimit: 1_000 } }, { key: tenant.key.secret })).createSession;
    const first = await reserved(tenant.key.secret, { tokens: 600, requireSession: true });
    expect(first.id).not.toBeNull();
    expect((await reserved(tenant.key.secret, { tokens: 600, requireSession: true })).verify.code).toBe('QUOTA_EXCEEDED');
    const settled = ok(await settle({ reservationId: first.id, tokens: 100 })).settleUsage;
    expect(settled.session).toMatchObject({ id: session.id, status: 'ACTIVE', tokensUsed: 100 });
    expect((await reserved(tenant.key.secret, { tokens: 900, requireSession: true })).id).not.toBeNull();
    expect((await reserved(tenant.key.secret, { tokens: 1, requireSession: true })).verify.code).toBe('QUOTA_EXCEEDED');
  });
});

describe('tokens-per-window limits (meter TOKENS)', () => {
  it('holds tokens on a TOKENS window at reserve, corrects it on settle, and frees it as the window slides', async () => {
    const { key } = await budgetedKey([], { rateLimits: [{ name: 'tpm', limit: 1_000, windowSeconds: 60, meter: 'TOKENS' }, { name: 'rpm', limit: 100, windowSeconds: 60 }] });
    expect(ok(await server.gql(KEY_WINDOWS, { id: key.id })).apiKey.rateLimits).toEqual([
      { name: 'tpm', limit: 1_000, windowSeconds: 60, meter: 'TOKENS' },
      { name: 'rpm', limit: 100, windowSeconds: 60, meter: 'REQUESTS' },
    ]);
    const first = await reserved(key.secret, { tokens: 600 });
    expect(first.id).not.toBeNull();
    expect((await reserved(key.secret, { tokens: 600 })).verify.code).toBe('RATE_LIMITED');
    ok(await settle({ reservationId: first.id, tokens: 100 }));
    expect((await reserved(key.secret, { tokens: 600 })).id).not.toBeNull();
    expect((await reserved(key.secret, { tokens: 400 })).verify.code).toBe('RATE_LIMITED');
    server.clock.advance(61_000);
    expect((await reserved(key.secret, { tokens: 1_000 })).id).not.toBeNull();
  });

  it('takes more than was held when the settle reports more, so the next reservation waits for it', async () => {
    const { key } = await budgetedKey([], { rateLimits: [{ name: 'tpm', limit: 1_000, windowSeconds: 60, meter: 'TOKENS' }] });
    const first = await reserved(key.secret, { tokens: 100 });
    ok(await settle({ reservationId: first.id, tokens: 900 }));
    expect((await reserved(key.secret, { tokens: 101 })).verify.code).toBe('RATE_LIMITED');
    expect((await reserved(key.secret, { tokens: 100 })).id).not.toBeNull();
  });

  it('refuses a window meter other than REQUESTS or TOKENS', async () => {
    const tenant = await createOrganization(server);
    const response = await server.gql('mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }', {
      input: { organizationId: tenant.id, name: 'k', rateLimits: [{ name: 'usd', limit: 5, windowSeconds: 60, meter: 'COST_USD' }] },
    });
    expectRefused(response, 'BAD_USER_INPUT');
    expect(response.body.errors![0].message).toContain('rateLimits[0].meter');
  });
});

describe('prices and token counts', () => {
  it('computes costUsd from MODEL_PRICES: recordUsage from input / output tokens, reserve at the higher price, settle from the split', async () => {
    const { organizationId, key } = await budgetedKey([{ meter: 'COST_USD', period: 'MONTH', limit: 1 }]);
    const recorded = ok(await server.gql(RECORD, { input: { apiKeyId: key.id, operation: 'chat', model: 'small-model', inputTokens: 1_000, outputTokens: 500, idempotencyKey: 'p1' } })).recordUsage;
    // 1,000 × $2 / 1M + 500 × $8 / 1M
    expect(recorded.quotas.find((entry: Quota) => entry.meter === 'COST_USD').used).toBeCloseTo(0.006, 9);
    const reservation = await reserved(key.secret, { model: 'small-model', tokens: 10_000 });
    expect(reservation.costUsd).toBeCloseTo(0.08, 9);
    expect((await quota(organizationId, 'COST_USD')).held).toBeCloseTo(0.08, 9);
    ok(await settle({ reservationId: reservation.id, inputTokens: 2_000, outputTokens: 1_000 }));
    const after = await quota(organizationId, 'COST_USD');
    expect(after.held).toBe(0);
    expect(after.used).toBeCloseTo(0.006 + 0.012, 9);
  });

  it('refuses a model without a price when no cost is given (BAD_USER_INPUT), and takes a given cost for it', async () => {
    const { key } = await budgetedKey([]);
    const record = (input: Record<string, unknown>) => server.gql(RECORD, { input: { apiKeyId: key.id, operation: 'chat', idempotencyKey: `u-${Math.random()}`, ...input } });
    const refused = await record({ model: 'unknown-model', tokens: 10 });
    expectRefused(refused, 'BAD_USER_INPUT');
    expect(refused.body.errors![0].message).toContain('model');
    expectRefused(await reserve(key.secret, { model: 'unknown-model', tokens: 10 }), 'BAD_USER_INPUT');
    expect(ok(await record({ model: 'unknown-model', tokens: 10, costUsd: 0.5 })).recordUsage.recorded).toBe(true);
  });

  it('counts text with the o200k_base tokenizer and marks only the characters / 4 estimate as estimated', async () => {
    const { organizationId, key } = await budgetedKey([TOKENS_MONTH(1_000)]);
    ok(await server.gql(RECORD, { input: { apiKeyId: key.id, operation: 'counted', text: 'Hello, world!', idempotencyKey: 't1' } }));
    expect(await quota(organizationId)).toMatchObject({ used: 4 });
    ok(await server.gql(RECORD, { input: { apiKeyId: key.id, operation: 'estimated', characters: 10, idempotencyKey: 't2' } }));
    expect(await quota(organizationId)).toMatchObject({ used: 7 });
    await server.app.usageBuffer.flush();
    const events: Array<{ operation: string; tokens: number | string; tokens_estimated: number | boolean }> = await server.app.dataSource.query(
      'SELECT operation, tokens, tokens_estimated FROM usage_events WHERE api_key_id = ? AND operation IN (?, ?) ORDER BY operation', [key.id, 'counted', 'estimated']);
    expect(events.map((event) => [event.operation, Number(event.tokens), Boolean(Number(event.tokens_estimated))])).toEqual([['counted', 4, false], ['estimated', 3, true]]);
  });
});
