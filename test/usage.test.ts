import { platformOf, startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, createTenant } from './helpers/fixtures';
import { createTestDatabase, TestDatabase } from './helpers/database';
import type { App } from '../src/app';
import { ok, expectRefused, expectBadInput } from './helpers/expect';

/**
 * Usage metering: recordUsage (quotas, session, idempotency, input checks, tenancy), the
 * usage(range) summary (exact totals and breakdowns; GraphQL calls and verifications as events;
 * ranges over several days, which read daily rollups for whole days and events for the partial
 * ones), lastUsedAt / requestCount, and a graceful stop that loses no buffered event.
 */

const QUOTA_FIELDS = 'organizationId apiKeyId meter period limit used remaining percentUsed resetsAt';
const SESSION_FIELDS = 'id organizationId apiKeyId status tokenLimit tokensUsed tokensRemaining requestCount endedAt';
const RECORD = `mutation($input: RecordUsageInput!) { recordUsage(input: $input) { recorded quotas { ${QUOTA_FIELDS} } session { ${SESSION_FIELDS} } } }`;
const BUCKET = 'key requests errors tokens costUsd avgLatencyMs';
const USAGE = `query($range: UsageRange) { usage(range: $range) {
  from to requests errors tokens costUsd avgLatencyMs byOperation { ${BUCKET} } byApiKey { ${BUCKET} } byDay { ${BUCKET} } } }`;
const QUOTAS = `query($organizationId: ID, $apiKeyId: ID) { quotas(organizationId: $organizationId, apiKeyId: $apiKeyId) { ${QUOTA_FIELDS} } }`;
const VERIFY = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code keyId } }';
const SESSION = `query($id: ID!) { session(id: $id) { ${SESSION_FIELDS} } }`;
const CREATE_SESSION = `mutation($input: CreateSessionInput) { createSession(input: $input) { ${SESSION_FIELDS} } }`;
const ADD_CREDITS = 'mutation($input: AddSessionCreditsInput!) { addSessionCredits(input: $input) { available } }';
const KEY_USE = 'query($id: ID!) { apiKey(id: $id) { id lastUsedAt requestCount } }';

interface Bucket { key: string; requests: number; errors: number; tokens: number; costUsd: number; avgLatencyMs: number | null }
interface Summary extends Omit<Bucket, 'key'> { from: string; to: string; byOperation: Bucket[]; byApiKey: Bucket[]; byDay: Bucket[] }

function bucket(key: string, requests: number, errors: number, tokens: number, costUsd: number, avgLatencyMs: number | null): Bucket {
  return { key, requests, errors, tokens, costUsd, avgLatencyMs };
}

function byKey(buckets: Bucket[]): Bucket[] {
  return [...buckets].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** A summary with its breakdowns in a stable order (the API does not promise one). */
function normalized(summary: Summary): Summary {
  return { ...summary, byOperation: byKey(summary.byOperation), byApiKey: byKey(summary.byApiKey), byDay: byKey(summary.byDay) };
}

let idempotency = 0;
function nextIdempotencyKey(): string {
  idempotency += 1;
  return `u-${process.pid}-${idempotency}`;
}

async function record(server: TestServer, apiKeyId: string, input: Record<string, unknown> = {}, callerKey?: string) {
  const response = await server.gql(RECORD, { input: { apiKeyId, operation: 'chat', idempotencyKey: nextIdempotencyKey(), ...input } }, { key: callerKey });
  return ok(response).recordUsage as { recorded: boolean; quotas: any[]; session: any };
}

async function verify(server: TestServer, secret: string, input: Record<string, unknown> = {}) {
  return ok(await server.gql(VERIFY, { input: { key: secret, ...input } })).verifyKey as { valid: boolean; code: string };
}

async function usage(server: TestServer, range: Record<string, unknown>, key?: string): Promise<Summary> {
  return normalized(ok(await server.gql(USAGE, { range }, { key })).usage);
}

async function used(server: TestServer, args: { organizationId?: string; apiKeyId?: string }): Promise<Record<string, number>> {
  const quotas: Array<{ meter: string; period: string; used: number }> = ok(await server.gql(QUOTAS, args)).quotas;
  return Object.fromEntries(quotas.map((quota) => [`${quota.meter}/${quota.period}`, quota.used]));
}

/** An organization with a key (no rate limits) that has TOKENS and COST_USD lifetime quotas. */
async function meteredKey(server: TestServer, keyInput: Record<string, unknown> = {}) {
  const organization = await createOrganization(server);
  const key = await createKey(server, {
    organizationId: organization.id, rateLimits: [], preset: 'ADMIN',
    quotas: [{ meter: 'TOKENS', period: 'LIFETIME', limit: 100_000 }, { meter: 'COST_USD', period: 'LIFETIME', limit: 1000 }],
    ...keyInput,
  });
  return { organizationId: organization.id, key };
}

const EMPTY = { requests: 0, errors: 0, tokens: 0, costUsd: 0, avgLatencyMs: null, byOperation: [], byApiKey: [], byDay: [] };

describe('recordUsage', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  it("records usage for a key of the caller's own organization and answers recorded: true with the quotas after counting", async () => {
    const { organizationId, key } = await meteredKey(server);
    const response = await server.gql(RECORD, {
      input: { apiKeyId: key.id, operation: 'chat.completions', statusCode: 200, latencyMs: 12.5, tokens: 40, costUsd: 0.5, idempotencyKey: 'happy-1' },
    }, { key: key.secret });
    expect(response.status).toBe(200);
    const result = response.body.data.recordUsage;
    expect(result.recorded).toBe(true);
    expect(result.session).toBeNull();
    expect(result.quotas.map((quota: any) => [quota.meter, quota.used]).sort()).toEqual([['COST_USD', 0.5], ['TOKENS', 40]]);

    const summary = await usage(server, { organizationId });
    expect(summary.byOperation.find((entry) => entry.key === 'chat.completions')).toEqual(bucket('chat.completions', 1, 0, 40, 0.5, 12.5));
    // The recordUsage call itself, made with the tenant key, is an event of its own.
    expect(summary.byOperation.find((entry) => entry.key === 'recordUsage')).toMatchObject({ requests: 1, errors: 0, tokens: 0, costUsd: 0 });
    expect(summary).toMatchObject({ requests: 2, errors: 0, tokens: 40, costUsd: 0.5 });
  });

  it('counts an idempotencyKey once: a repeat answers recorded: false and changes neither quotas, session nor usage', async () => {
    const { organizationId, key } = await meteredKey(server);
    ok(await server.gql(ADD_CREDITS, { input: { organizationId, sessions: 1, idempotencyKey: 'buy-1' } }));
    const session = ok(await server.gql(CREATE_SESSION, { input: { tokenLimit: 1000 } }, { key: key.secret })).createSession;
    const input = { apiKeyId: key.id, sessionId: session.id, operation: 'chat', tokens: 100, costUsd: 1.25, latencyMs: 30, statusCode: 200, idempotencyKey: 'same-request' };

    const first = ok(await server.gql(RECORD, { input })).recordUsage;
    expect(first.recorded).toBe(true);
    expect(first.session).toMatchObject({ id: session.id, tokensUsed: 100, tokensRemaining: 900, requestCount: 1, status: 'ACTIVE' });
    const second = ok(await server.gql(RECORD, { input })).recordUsage;
    expect(second.recorded).toBe(false);
    expect(second.quotas).toEqual(first.quotas);
    expect(second.session).toMatchObject({ id: session.id, tokensUsed: 100, requestCount: 1 });
    const third = ok(await server.gql(RECORD, { input })).recordUsage;
    expect(third.recorded).toBe(false);

    expect(await used(server, { apiKeyId: key.id })).toEqual({ 'TOKENS/LIFETIME': 100, 'COST_USD/LIFETIME': 1.25 });
    expect(ok(await server.gql(SESSION, { id: session.id })).session).toMatchObject({ tokensUsed: 100, tokensRemaining: 900, requestCount: 1 });
    const summary = await usage(server, { organizationId });
    expect(summary.byOperation.find((entry) => entry.key === 'chat')).toEqual(bucket('chat', 1, 0, 100, 1.25, 30));
  });

  it.each([
    ['tokens', { tokens: 101 }],
    ['characters instead of tokens', { tokens: null, characters: 404 }],
    ['costUsd', { costUsd: 2 }],
    ['operation', { operation: 'embed' }],
    ['statusCode', { statusCode: 500 }],
    ['latencyMs', { latencyMs: 31 }],
    ['apiKeyId (another key of the organization)', 'other-key'],
  ])('refuses the same idempotencyKey with a different %s with 409 IDEMPOTENCY_CONFLICT and writes nothing', async (_what, change) => {
    const { organizationId, key } = await meteredKey(server);
    const otherKey = await createKey(server, { organizationId, rateLimits: [] });
    const input = { apiKeyId: key.id, operation: 'chat', tokens: 100, costUsd: 1, latencyMs: 30, statusCode: 200, idempotencyKey: 'reused' };
    expect((await record(server, key.id, input)).recorded).toBe(true);

    const changed = change === 'other-key' ? { ...input, apiKeyId: otherKey.id } : { ...input, ...(change as Record<string, unknown>) };
    const conflict = await server.gql(RECORD, { input: changed });
    expectRefused(conflict, 'IDEMPOTENCY_CONFLICT', 409);
    expect(conflict.body.data).toBeNull();
    expect(await used(server, { apiKeyId: key.id })).toEqual({ 'TOKENS/LIFETIME': 100, 'COST_USD/LIFETIME': 1 });
    expect(await usage(server, { organizationId })).toMatchObject({ requests: 1, tokens: 100, costUsd: 1 });
  });

  it('keeps idempotency keys of different organizations apart', async () => {
    const first = await meteredKey(server);
    const second = await meteredKey(server);
    expect((await record(server, first.key.id, { tokens: 5, idempotencyKey: 'shared-name' })).recorded).toBe(true);
    expect((await record(server, second.key.id, { tokens: 7, idempotencyKey: 'shared-name' })).recorded).toBe(true);
    expect(await used(server, { apiKeyId: second.key.id })).toEqual({ 'TOKENS/LIFETIME': 7, 'COST_USD/LIFETIME': 0 });
  });

  it.each([
    ['tokens', { tokens: -1 }],
    ['characters', { tokens: null, characters: -4 }],
    ['costUsd', { costUsd: -0.01 }],
    ['latencyMs', { latencyMs: -1 }],
    ['statusCode', { statusCode: 99 }],
    ['statusCode', { statusCode: 600 }],
    ['operation', { operation: '' }],
    ['operation', { operation: '   ' }],
    ['operation', { operation: 'x'.repeat(201) }],
    ['idempotencyKey', { idempotencyKey: '' }],
  ])('refuses a bad %s (%j) with 400 BAD_USER_INPUT and writes nothing', async (field, change) => {
    const { organizationId, key } = await meteredKey(server);
    const valid = { apiKeyId: key.id, operation: 'chat', tokens: 10, costUsd: 1, statusCode: 200, idempotencyKey: 'bad-input' };
    const refused = await server.gql(RECORD, { input: { ...valid, ...change } });
    expectBadInput(refused, field);
    expect(refused.body.data).toBeNull();

    expect(await used(server, { apiKeyId: key.id })).toEqual({ 'TOKENS/LIFETIME': 0, 'COST_USD/LIFETIME': 0 });
    expect(await usage(server, { organizationId })).toMatchObject(EMPTY);
    // The refused call claimed nothing: the same idempotencyKey still records.
    expect((await record(server, key.id, valid)).recorded).toBe(true);
    expect(await used(server, { apiKeyId: key.id })).toEqual({ 'TOKENS/LIFETIME': 10, 'COST_USD/LIFETIME': 1 });
  });

  it('refuses an unknown or deleted apiKeyId with 404 NOT_FOUND', async () => {
    const { organizationId, key } = await meteredKey(server);
    ok(await server.gql('mutation($id: ID!) { deleteApiKey(id: $id) }', { id: key.id }));
    expectRefused(await server.gql(RECORD, { input: { apiKeyId: key.id, operation: 'chat', tokens: 1, idempotencyKey: 'deleted' } }), 'NOT_FOUND');
    expectRefused(await server.gql(RECORD, { input: { apiKeyId: 'key_00000000000000000000000000', operation: 'chat', tokens: 1, idempotencyKey: 'unknown' } }), 'NOT_FOUND');
    expect(await usage(server, { organizationId })).toMatchObject(EMPTY);
  });

  it("refuses another organization's key from a customer organization's usage:write key with 404 NOT_FOUND and writes nothing", async () => {
    const caller = await createTenant(server);
    const target = await meteredKey(server);
    const refused = await server.gql(RECORD, { input: { apiKeyId: target.key.id, operation: 'chat', tokens: 10, costUsd: 1, idempotencyKey: 'cross' } }, { key: caller.key.secret });
    expectRefused(refused, 'NOT_FOUND');
    expect(await used(server, { apiKeyId: target.key.id })).toEqual({ 'TOKENS/LIFETIME': 0, 'COST_USD/LIFETIME': 0 });
    expect(await usage(server, { organizationId: target.organizationId })).toMatchObject(EMPTY);
  });

  it("lets a platform-organization usage:write key (not an admin) record for a key of any organization", async () => {
    const recorder = await createKey(server, { organizationId: server.platformOrganizationId, scopes: ['usage:write'], rateLimits: [] });
    const target = await meteredKey(server);
    const result = await record(server, target.key.id, { tokens: 10, costUsd: 0.5, operation: 'platform-recorded' }, recorder.secret);
    expect(result.recorded).toBe(true);
    expect(await used(server, { apiKeyId: target.key.id })).toEqual({ 'TOKENS/LIFETIME': 10, 'COST_USD/LIFETIME': 0.5 });
    const summary = await usage(server, { organizationId: target.organizationId });
    expect(summary.byOperation).toEqual([bucket('platform-recorded', 1, 0, 10, 0.5, null)]);
    expect(summary.byApiKey).toEqual([bucket(target.key.id, 1, 0, 10, 0.5, null)]);
  });

  it("refuses an unknown session or another organization's session with 404 NOT_FOUND and writes nothing", async () => {
    const mine = await meteredKey(server);
    const other = await meteredKey(server);
    ok(await server.gql(ADD_CREDITS, { input: { organizationId: other.organizationId, sessions: 1, idempotencyKey: 'other' } }));
    const foreign = ok(await server.gql(CREATE_SESSION, {}, { key: other.key.secret })).createSession;

    for (const sessionId of [foreign.id, 'ses_00000000000000000000000000']) {
      const refused = await server.gql(RECORD, { input: { apiKeyId: mine.key.id, sessionId, operation: 'chat', tokens: 10, idempotencyKey: 'with-session' } }, { key: mine.key.secret });
      expectRefused(refused, 'NOT_FOUND');
    }
    expect(await used(server, { apiKeyId: mine.key.id })).toEqual({ 'TOKENS/LIFETIME': 0, 'COST_USD/LIFETIME': 0 });
    expect(ok(await server.gql(SESSION, { id: foreign.id })).session).toMatchObject({ tokensUsed: 0, requestCount: 0, status: 'ACTIVE' });
    // Nothing claimed the idempotency key either.
    expect((await record(server, mine.key.id, { tokens: 10, idempotencyKey: 'with-session' })).recorded).toBe(true);
  });

  it('refuses recordUsage to a key without usage:write with 403 INSUFFICIENT_SCOPE', async () => {
    const organization = await createOrganization(server);
    const reader = await createKey(server, { organizationId: organization.id, preset: 'READ' });
    const refused = await server.gql(RECORD, { input: { apiKeyId: reader.id, operation: 'chat', tokens: 1, idempotencyKey: 'scope' } }, { key: reader.secret });
    expectRefused(refused, 'INSUFFICIENT_SCOPE');
    expect(await usage(server, { organizationId: organization.id })).toMatchObject(EMPTY);
  });
});

describe('usage summary', () => {
  let server: TestServer;
  const TODAY = '2026-01-15';
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  it('sums exactly what was sent: totals, errors, tokens, costUsd, avgLatencyMs and byOperation, byApiKey and byDay', async () => {
    const organization = await createOrganization(server);
    const first = await createKey(server, { organizationId: organization.id, rateLimits: [] });
    const second = await createKey(server, { organizationId: organization.id, rateLimits: [] });
    await record(server, first.id, { operation: 'chat', tokens: 100, costUsd: 0.5, latencyMs: 120, statusCode: 200 });
    await record(server, first.id, { operation: 'chat', tokens: 50, costUsd: 0.25, latencyMs: 80, statusCode: 201 });
    await record(server, second.id, { operation: 'embed', tokens: 10, costUsd: 0.125, latencyMs: 40, statusCode: 500 });
    for (let i = 0; i < 4; i += 1) expect((await verify(server, first.secret, { operation: 'POST /v1/predict' })).valid).toBe(true);
    // A refused verification is not an event.
    expect((await verify(server, first.secret, { operation: 'POST /v1/predict', requiredScopes: ['inference:run'] })).code).toBe('INSUFFICIENT_SCOPE');
    // A verification without an operation is labelled verifyKey.
    expect((await verify(server, second.secret)).valid).toBe(true);

    const summary = await usage(server, { organizationId: organization.id });
    expect(summary).toEqual({
      from: '2026-01-01T00:00:00.000Z',
      to: '2026-01-15T12:00:00.000Z',
      requests: 8,
      errors: 1,
      tokens: 160,
      costUsd: 0.875,
      avgLatencyMs: 80,
      byOperation: byKey([
        bucket('chat', 2, 0, 150, 0.75, 100),
        bucket('embed', 1, 1, 10, 0.125, 40),
        bucket('POST /v1/predict', 4, 0, 0, 0, null),
        bucket('verifyKey', 1, 0, 0, 0, null),
      ]),
      byApiKey: byKey([
        bucket(first.id, 6, 0, 150, 0.75, 100),
        bucket(second.id, 2, 1, 10, 0.125, 40),
      ]),
      byDay: [bucket(TODAY, 8, 1, 160, 0.875, 80)],
    });

    const onlySecond = await usage(server, { apiKeyId: second.id });
    expect(onlySecond).toMatchObject({ requests: 2, errors: 1, tokens: 10, costUsd: 0.125, avgLatencyMs: 40 });
    expect(onlySecond.byApiKey).toEqual([bucket(second.id, 2, 1, 10, 0.125, 40)]);
    expect(onlySecond.byOperation).toEqual(byKey([bucket('embed', 1, 1, 10, 0.125, 40), bucket('verifyKey', 1, 0, 0, 0, null)]));
  });

  it('records each GraphQL call made with a tenant key as an event labelled with its operation name or root fields', async () => {
    const { organizationId, key } = await createTenant(server);
    const stranger = await createTenant(server);
    expect((await server.gql('{ viewer { apiKey { id } } }', {}, { key: key.secret })).status).toBe(200);
    expect((await server.gql('query ListKeys { apiKeys { totalCount } }', {}, { key: key.secret })).status).toBe(200);
    expect((await server.gql('{ organization { id } apiKeys { totalCount } }', {}, { key: key.secret })).status).toBe(200);
    expect((await server.gql('mutation Rename($id: ID!) { updateApiKey(id: $id, input: { name: "renamed" }) { id } }', { id: key.id }, { key: key.secret })).status).toBe(200);
    // Refused by the resolver: still an event, counted as an error.
    expectRefused(await server.gql('query($id: ID!) { apiKey(id: $id) { id } }', { id: stranger.key.id }, { key: key.secret }), 'NOT_FOUND');

    const summary = await usage(server, { organizationId });
    expect(summary).toMatchObject({ requests: 5, errors: 1, tokens: 0, costUsd: 0 });
    const operations = summary.byOperation.map(({ avgLatencyMs, ...rest }) => rest);
    expect(operations).toEqual(byKey([
      bucket('viewer', 1, 0, 0, 0, null),
      bucket('ListKeys', 1, 0, 0, 0, null),
      bucket('organization+apiKeys', 1, 0, 0, 0, null),
      bucket('Rename', 1, 0, 0, 0, null),
      bucket('apiKey', 1, 1, 0, 0, null),
    ]).map(({ avgLatencyMs, ...rest }) => rest));
    for (const entry of summary.byOperation) {
      expect(typeof entry.avgLatencyMs).toBe('number');
      expect(entry.avgLatencyMs).toBeGreaterThanOrEqual(0);
    }
    expect(summary.byApiKey.map((entry) => [entry.key, entry.requests, entry.errors])).toEqual([[key.id, 5, 1]]);
    expect(summary.byDay.map((entry) => [entry.key, entry.requests, entry.errors])).toEqual([[TODAY, 5, 1]]);
    // An event belongs to the calling key's organization, never to the organization it asked about.
    expectRefused(await server.gql(USAGE, { range: { organizationId: stranger.organizationId } }, { key: key.secret }), 'NOT_FOUND');
    expect(await usage(server, { organizationId: stranger.organizationId })).toMatchObject(EMPTY);
  });

  it("refuses another organization's usage with 404 NOT_FOUND and another organization's key with 404 NOT_FOUND", async () => {
    const mine = await createTenant(server);
    const other = await createTenant(server);
    expectRefused(await server.gql(USAGE, { range: { organizationId: other.organizationId } }, { key: mine.key.secret }), 'NOT_FOUND');
    expectRefused(await server.gql(USAGE, { range: { apiKeyId: other.key.id } }, { key: mine.key.secret }), 'NOT_FOUND');
  });

  it.each([
    ['from equal to to', '2026-01-10T00:00:00.000Z', '2026-01-10T00:00:00.000Z'],
    ['from after to', '2026-01-11T00:00:00.000Z', '2026-01-10T00:00:00.000Z'],
  ])('refuses a range with %s with 400 BAD_USER_INPUT', async (_what, from, to) => {
    const { organizationId } = await createTenant(server);
    const refused = await server.gql(USAGE, { range: { organizationId, from, to } });
    expectBadInput(refused, 'from');
  });

  it("updates a key's lastUsedAt and requestCount after its verifications and calls (once the buffer is flushed)", async () => {
    const organization = await createOrganization(server);
    const key = await createKey(server, { organizationId: organization.id, preset: 'READ' });
    expect(ok(await server.gql(KEY_USE, { id: key.id })).apiKey).toEqual({ id: key.id, lastUsedAt: null, requestCount: 0 });

    await verify(server, key.secret);
    await verify(server, key.secret, { operation: 'GET /v1/models' });
    expect((await server.gql('{ viewer { apiKey { id } } }', {}, { key: key.secret })).status).toBe(200);
    // Refused: not a use.
    expect((await verify(server, key.secret, { requiredScopes: ['keys:write'] })).code).toBe('INSUFFICIENT_SCOPE');
    await server.app.usageBuffer.flush();
    expect(ok(await server.gql(KEY_USE, { id: key.id })).apiKey).toEqual({ id: key.id, lastUsedAt: server.clock.now().toISOString(), requestCount: 3 });

    await verify(server, key.secret);
    await server.app.usageBuffer.flush();
    expect(ok(await server.gql(KEY_USE, { id: key.id })).apiKey.requestCount).toBe(4);
  });
});

describe('usage over time (a server whose clock the tests move)', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer({ clockStart: '2026-02-10T00:00:00.000Z' }); });
  afterAll(async () => { await server.close(); });

  it('sums a range over three days exactly: whole days from the rollups, the partial first and last days from the events', async () => {
    server.clock.set('2026-02-10T00:00:00.000Z');
    const organization = await createOrganization(server);
    const chatKey = await createKey(server, { organizationId: organization.id, rateLimits: [] });
    const embedKey = await createKey(server, { organizationId: organization.id, rateLimits: [] });
    const at = async (moment: string, fn: () => Promise<unknown>) => {
      server.clock.set(moment);
      await fn();
      // Flushing as we go makes later flushes add onto existing rollup rows.
      await server.app.usageBuffer.flush();
    };
    const chat = (input: Record<string, unknown>) => record(server, chatKey.id, { operation: 'chat', ...input });
    const embed = (input: Record<string, unknown>) => record(server, embedKey.id, { operation: 'embed', ...input });
    const predict = () => verify(server, chatKey.secret, { operation: 'POST /v1/predict' });

    await at('2026-02-10T02:00:00.000Z', () => chat({ tokens: 1, costUsd: 0.5, latencyMs: 10 })); // before `from`
    await at('2026-02-10T10:00:00.000Z', () => chat({ tokens: 2, costUsd: 0.25, latencyMs: 20 })); // exactly `from`
    await at('2026-02-10T20:00:00.000Z', async () => { await embed({ tokens: 4, statusCode: 500, latencyMs: 30 }); await predict(); });
    await at('2026-02-11T00:00:00.000Z', () => chat({ tokens: 8, latencyMs: 40 }));
    await at('2026-02-11T12:00:00.000Z', async () => { await chat({ tokens: 16, costUsd: 0.125, latencyMs: 60 }); await predict(); await predict(); });
    await at('2026-02-11T23:59:59.999Z', () => chat({ tokens: 32, statusCode: 404 }));
    await at('2026-02-12T00:00:00.000Z', () => embed({ tokens: 64, latencyMs: 50 }));
    await at('2026-02-12T12:00:00.000Z', () => chat({ tokens: 128, latencyMs: 70 })); // exactly `to`
    await at('2026-02-12T12:00:00.001Z', () => chat({ tokens: 256 })); // after `to`
    await at('2026-02-12T22:00:00.000Z', () => embed({ tokens: 512, costUsd: 4 })); // after `to`
    server.clock.set('2026-02-13T09:00:00.000Z');

    const range = { organizationId: organization.id, from: '2026-02-10T10:00:00.000Z', to: '2026-02-12T12:00:00.000Z' };
    const summary = await usage(server, range);
    expect(summary).toEqual({
      from: range.from,
      to: range.to,
      requests: 10,
      errors: 2,
      tokens: 254,
      costUsd: 0.375,
      avgLatencyMs: 45,
      byOperation: byKey([
        bucket('chat', 5, 1, 186, 0.375, 47.5),
        bucket('embed', 2, 1, 68, 0, 40),
        bucket('POST /v1/predict', 3, 0, 0, 0, null),
      ]),
      byApiKey: byKey([
        bucket(chatKey.id, 8, 1, 186, 0.375, 47.5),
        bucket(embedKey.id, 2, 1, 68, 0, 40),
      ]),
      byDay: [
        bucket('2026-02-10', 3, 1, 6, 0.25, 25),
        bucket('2026-02-11', 5, 1, 56, 0.125, 50),
        bucket('2026-02-12', 2, 0, 192, 0, 60),
      ],
    });
    // The totals are the sum of the days.
    expect(summary.byDay.reduce((sum, day) => sum + day.requests, 0)).toBe(summary.requests);
    expect(summary.byDay.reduce((sum, day) => sum + day.tokens, 0)).toBe(summary.tokens);

    // Whole days only (rollups alone), including what was outside the first range.
    const wholeDays = await usage(server, { organizationId: organization.id, from: '2026-02-10T00:00:00.000Z', to: '2026-02-13T00:00:00.000Z' });
    expect(wholeDays).toMatchObject({ requests: 13, errors: 2, tokens: 1023, costUsd: 4.875, avgLatencyMs: 40 });
    expect(wholeDays.byDay).toEqual([
      bucket('2026-02-10', 4, 1, 7, 0.75, 20),
      bucket('2026-02-11', 5, 1, 56, 0.125, 50),
      bucket('2026-02-12', 4, 0, 960, 4, 60),
    ]);

    // Inside a single day (events only), and one key only.
    const midday = await usage(server, { organizationId: organization.id, from: '2026-02-11T06:00:00.000Z', to: '2026-02-11T18:00:00.000Z' });
    expect(midday).toMatchObject({ requests: 3, errors: 0, tokens: 16, costUsd: 0.125, avgLatencyMs: 60 });
    expect(midday.byOperation).toEqual(byKey([bucket('chat', 1, 0, 16, 0.125, 60), bucket('POST /v1/predict', 2, 0, 0, 0, null)]));
    const embedOnly = await usage(server, { apiKeyId: embedKey.id, from: range.from, to: range.to });
    expect(embedOnly).toMatchObject({ requests: 2, errors: 1, tokens: 68, costUsd: 0, avgLatencyMs: 40 });
    expect(embedOnly.byDay).toEqual([bucket('2026-02-10', 1, 1, 4, 0, 30), bucket('2026-02-12', 1, 0, 64, 0, 50)]);

    // The default range: from the start of the current UTC month to now.
    const defaults = await usage(server, { organizationId: organization.id });
    expect(defaults).toMatchObject({ from: '2026-02-01T00:00:00.000Z', to: '2026-02-13T09:00:00.000Z', requests: 13, tokens: 1023 });
  });

  it('counts an idempotencyKey again once 24 hours have passed', async () => {
    server.clock.set('2026-03-01T08:00:00.000Z');
    const { key } = await meteredKey(server);
    const input = { tokens: 10, costUsd: 1, idempotencyKey: 'daily-job' };
    expect((await record(server, key.id, input)).recorded).toBe(true);

    server.clock.set('2026-03-02T07:59:59.000Z');
    expect((await record(server, key.id, input)).recorded).toBe(false);
    expectRefused(await server.gql(RECORD, { input: { apiKeyId: key.id, operation: 'chat', ...input, tokens: 11 } }), 'IDEMPOTENCY_CONFLICT', 409);
    expect(await used(server, { apiKeyId: key.id })).toEqual({ 'TOKENS/LIFETIME': 10, 'COST_USD/LIFETIME': 1 });

    server.clock.set('2026-03-02T08:00:01.000Z');
    expect((await record(server, key.id, input)).recorded).toBe(true);
    expect((await record(server, key.id, input)).recorded).toBe(false);
    expect(await used(server, { apiKeyId: key.id })).toEqual({ 'TOKENS/LIFETIME': 20, 'COST_USD/LIFETIME': 2 });
    const summary = await usage(server, { apiKeyId: key.id, from: '2026-03-01T00:00:00.000Z' });
    expect(summary.byDay).toEqual([bucket('2026-03-01', 1, 0, 10, 1, null), bucket('2026-03-02', 1, 0, 10, 1, null)]);
  });
});

describe('graceful stop', () => {
  let database: TestDatabase;
  beforeEach(async () => { database = await createTestDatabase(); });
  afterEach(async () => { await database.drop(); });

  async function countEvents(app: App, organizationId: string): Promise<{ events: number; tokens: number; daily: number }> {
    const [events] = await app.dataSource.query('SELECT COUNT(*) AS n, SUM(tokens) AS t FROM usage_events WHERE organization_id = ?', [organizationId]);
    const [daily] = await app.dataSource.query('SELECT SUM(requests) AS n FROM usage_daily WHERE organization_id = ?', [organizationId]);
    return { events: Number(events.n), tokens: Number(events.t ?? 0), daily: Number(daily.n ?? 0) };
  }

  it('loses no usage event of a burst of 300 recordUsage calls when the server stops right after it', async () => {
    const first = await startTestServer({ database });
    let organizationId = '';
    let keyId = '';
    try {
      organizationId = ok(await first.gql('mutation { createOrganization(input: { name: "Burst" }) { id } }', {})).createOrganization.id;
      keyId = ok(await first.gql('mutation($o: ID!) { createApiKey(input: { organizationId: $o, name: "burst", rateLimits: [] }) { apiKey { id } } }', { o: organizationId })).createApiKey.apiKey.id;
      const responses = await Promise.all(Array.from({ length: 300 }, (_, i) => first.gql(RECORD, {
        input: { apiKeyId: keyId, operation: 'burst', tokens: i + 1, idempotencyKey: `burst-${i}` },
      })));
      expect(responses.map((response) => response.status)).toEqual(Array(300).fill(200));
      expect(responses.filter((response) => response.body.data?.recordUsage.recorded === true)).toHaveLength(300);
    } finally {
      await first.close();
    }

    const second = await startTestServer({ database, platform: platformOf(first) });
    try {
      expect(await countEvents(second.app, organizationId)).toEqual({ events: 300, tokens: 45_150, daily: 300 });
      const summary = normalized(ok(await second.gql(USAGE, { range: { organizationId: organizationId } })).usage);
      expect(summary).toMatchObject({ requests: 300, errors: 0, tokens: 45_150 });
      expect(summary.byApiKey).toEqual([bucket(keyId, 300, 0, 45_150, 0, null)]);
      const wholeDay = normalized(ok(await second.gql(USAGE, { range: { organizationId: organizationId, from: '2026-01-15T00:00:00.000Z', to: '2026-01-16T00:00:00.000Z' } })).usage);
      expect(wholeDay.byDay).toEqual([bucket('2026-01-15', 300, 0, 45_150, 0, null)]);
    } finally {
      await second.close();
    }
  });

  it('keeps the event of every recordUsage the server counted when the stop begins while a burst is in flight', async () => {
    const first = await startTestServer({ database });
    const organizationId: string = ok(await first.gql('mutation { createOrganization(input: { name: "In flight" }) { id } }', {})).createOrganization.id;
    const keyId: string = ok(await first.gql(`mutation($o: ID!) { createApiKey(input: { organizationId: $o, name: "burst", rateLimits: [],
      quotas: [{ meter: TOKENS, period: LIFETIME, limit: 1000000 }] }) { apiKey { id } } }`, { o: organizationId })).createApiKey.apiKey.id;

    let answered = 0;
    let startStop: () => void = () => undefined;
    const twentyAnswered = new Promise<void>((resolve) => { startStop = resolve; });
    const burst = Promise.allSettled(Array.from({ length: 300 }, (_, i) => first.gql(RECORD, {
      input: { apiKeyId: keyId, operation: 'burst', tokens: 1, idempotencyKey: `flight-${i}` },
    }).then((response) => {
      answered += 1;
      if (answered === 20) startStop();
      return response;
    })));
    await twentyAnswered;
    const stopping = first.close();
    const settled = await burst;
    await stopping;
    // Connections the server had not accepted yet are refused; the requests it took are finished.
    const recorded = settled.filter((result) => result.status === 'fulfilled' && result.value.body.data?.recordUsage?.recorded === true).length;
    expect(recorded).toBeGreaterThanOrEqual(20);

    const second = await startTestServer({ database, platform: platformOf(first) });
    try {
      // The TOKENS quota counter is written before answering (never buffered): it counts every
      // recordUsage the server took. Each of them must have its event and its rollup.
      const charged = (await second.app.quotas.statuses({ apiKeyId: keyId }))[0].used;
      expect(charged).toBeGreaterThanOrEqual(recorded);
      expect(await countEvents(second.app, organizationId)).toEqual({ events: charged, tokens: charged, daily: charged });
    } finally {
      await second.close();
    }
  });
});
