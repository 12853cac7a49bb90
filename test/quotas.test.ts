import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, createTenant, CreatedKey, quotaStatus } from './helpers/fixtures';
import { ok, expectRefused } from './helpers/expect';
import { QuotaFieldsFragment, UpdateOrganizationDocument } from './helpers/operations';

/**
 * Quotas: what `quotas`, Organization.quotas and ApiKey.quotas show after verifications and
 * recordUsage; REQUESTS / TOKENS / COST_USD enforcement (verifyKey and the key's own GraphQL
 * calls); quotas of a key and of its organization together; rotation; UTC period boundaries
 * (on a dedicated server whose clock the tests move); tenancy.
 */

const QUOTA_FIELDS = 'organizationId apiKeyId meter period limit used held remaining percentUsed resetsAt';
const QUOTAS = `query($organizationId: ID, $apiKeyId: ID) { quotas(organizationId: $organizationId, apiKeyId: $apiKeyId) { ${QUOTA_FIELDS} } }`;
const ORGANIZATION_QUOTAS = `query($id: ID) { organization(id: $id) { id quotas { ${QUOTA_FIELDS} } } }`;
const KEY_QUOTAS = `query($id: ID!) { apiKey(id: $id) { id quotas { ${QUOTA_FIELDS} } } }`;
const VERIFY = `mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code keyId organizationId quotas { ${QUOTA_FIELDS} } } }`;
const RECORD = `mutation($input: RecordUsageInput!) { recordUsage(input: $input) { recorded quotas { ${QUOTA_FIELDS} } } }`;
const ROTATE = `mutation($id: ID!, $grace: Int) { rotateApiKey(id: $id, gracePeriodSeconds: $grace) { secret apiKey { id rotatedFromId quotas { ${QUOTA_FIELDS} } } } }`;
const VIEWER = '{ viewer { apiKey { id } } }';

type QuotaStatus = QuotaFieldsFragment;

/** Quotas in a stable order (the API does not promise one). */
function sorted(quotas: QuotaStatus[]): QuotaStatus[] {
  return [...quotas].sort((a, b) => `${a.apiKeyId ?? ''}/${a.meter}/${a.period}`.localeCompare(`${b.apiKeyId ?? ''}/${b.meter}/${b.period}`));
}

async function verify(server: TestServer, secret: string, input: Record<string, unknown> = {}) {
  return ok(await server.gql(VERIFY, { input: { key: secret, ...input } })).verifyKey as { valid: boolean; code: string; keyId: string | null; quotas: QuotaStatus[] };
}

let idempotency = 0;
async function record(server: TestServer, apiKeyId: string, input: Record<string, unknown> = {}, callerKey?: string) {
  idempotency += 1;
  const response = await server.gql(RECORD, { input: { apiKeyId, operation: 'chat', idempotencyKey: `q-${process.pid}-${idempotency}`, ...input } }, { key: callerKey });
  return ok(response).recordUsage as { recorded: boolean; quotas: QuotaStatus[] };
}

async function quotasOf(server: TestServer, args: { organizationId?: string; apiKeyId?: string }, key?: string): Promise<QuotaStatus[]> {
  return sorted(ok(await server.gql(QUOTAS, args, { key })).quotas);
}

/** A fresh organization with the given quotas, and a key (no rate limits) with its own quotas. */
async function setup(server: TestServer, organizationQuotas: unknown[], keyQuotas: unknown[] = [], keyInput: Record<string, unknown> = {}) {
  const organization = await createOrganization(server, { quotas: organizationQuotas });
  const key = await createKey(server, { organizationId: organization.id, rateLimits: [], quotas: keyQuotas, ...keyInput });
  return { organizationId: organization.id, key };
}

describe('quotas', () => {
  let server: TestServer;
  // The default ManualClock start: 2026-01-15T12:00:00.000Z. Tests here do not move it.
  const DAY_END = '2026-01-16T00:00:00.000Z';
  const MONTH_END = '2026-02-01T00:00:00.000Z';

  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  it("shows used, remaining, percentUsed and resetsAt of an organization's and a key's quotas after verifications", async () => {
    const { organizationId, key } = await setup(server,
      [{ meter: 'REQUESTS', period: 'DAY', limit: 10 }, { meter: 'REQUESTS', period: 'MONTH', limit: 100 }],
      [{ meter: 'REQUESTS', period: 'LIFETIME', limit: 5 }]);
    const org = { organizationId };
    const own = { apiKeyId: key.id };

    expect(sorted(key.apiKey.quotas)).toEqual([quotaStatus(own, 'REQUESTS', 'LIFETIME', 5, 0, null)]);
    expect(await quotasOf(server, { organizationId })).toEqual(sorted([
      quotaStatus(org, 'REQUESTS', 'DAY', 10, 0, DAY_END), quotaStatus(org, 'REQUESTS', 'MONTH', 100, 0, MONTH_END),
    ]));

    expect((await verify(server, key.secret)).valid).toBe(true);
    const second = await verify(server, key.secret, { cost: 3 });
    expect(second).toMatchObject({ valid: true, code: 'VALID', keyId: key.id });
    // The verification's own result shows every applicable quota after it was counted.
    const expectedOrganization = sorted([quotaStatus(org, 'REQUESTS', 'DAY', 10, 4, DAY_END), quotaStatus(org, 'REQUESTS', 'MONTH', 100, 4, MONTH_END)]);
    const expectedKey = [quotaStatus(own, 'REQUESTS', 'LIFETIME', 5, 4, null)];
    expect(sorted(second.quotas)).toEqual(sorted([...expectedOrganization, ...expectedKey]));

    expect(await quotasOf(server, { organizationId })).toEqual(expectedOrganization);
    expect(await quotasOf(server, { apiKeyId: key.id })).toEqual(expectedKey);
    const organization = ok(await server.gql(ORGANIZATION_QUOTAS, { id: organizationId })).organization;
    expect(sorted(organization.quotas)).toEqual(expectedOrganization);
    const apiKey = ok(await server.gql(KEY_QUOTAS, { id: key.id })).apiKey;
    expect(apiKey.quotas).toEqual(expectedKey);
    expect(expectedKey[0]).toMatchObject({ remaining: 1, percentUsed: 80 });
    expect(expectedOrganization[0]).toMatchObject({ period: 'DAY', remaining: 6, percentUsed: 40 });
  });

  it("counts a tenant's own GraphQL call on its REQUESTS quotas, so the quotas it reads include that call", async () => {
    const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 10 }] });
    const tenant = await createKey(server, { organizationId: organization.id, preset: 'ADMIN', quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 20 }] });
    const org = { organizationId: organization.id };

    expect(await quotasOf(server, {}, tenant.secret)).toEqual([quotaStatus(org, 'REQUESTS', 'DAY', 10, 1, DAY_END)]);
    expect(await quotasOf(server, { apiKeyId: tenant.id }, tenant.secret)).toEqual([quotaStatus({ apiKeyId: tenant.id }, 'REQUESTS', 'MONTH', 20, 2, MONTH_END)]);
    const viaOrganization = ok(await server.gql(ORGANIZATION_QUOTAS, {}, { key: tenant.secret })).organization;
    expect(viaOrganization.quotas).toEqual([quotaStatus(org, 'REQUESTS', 'DAY', 10, 3, DAY_END)]);
    const viaKey = ok(await server.gql(KEY_QUOTAS, { id: tenant.id }, { key: tenant.secret })).apiKey;
    expect(viaKey.quotas).toEqual([quotaStatus({ apiKeyId: tenant.id }, 'REQUESTS', 'MONTH', 20, 4, MONTH_END)]);
    // Reading with the platform admin key (another organization) takes nothing from them.
    expect(await quotasOf(server, { organizationId: organization.id })).toEqual([quotaStatus(org, 'REQUESTS', 'DAY', 10, 4, DAY_END)]);
  });

  it('adds recorded tokens (or characters / 4 rounded up) and costUsd to TOKENS and COST_USD quotas, and nothing to REQUESTS', async () => {
    const { organizationId, key } = await setup(server,
      [{ meter: 'TOKENS', period: 'MONTH', limit: 5000 }, { meter: 'REQUESTS', period: 'DAY', limit: 100 }],
      [{ meter: 'TOKENS', period: 'DAY', limit: 1000 }, { meter: 'COST_USD', period: 'MONTH', limit: 10 }]);
    const org = { organizationId };
    const own = { apiKeyId: key.id };
    const expected = (tokens: number, cost: number) => sorted([
      quotaStatus(org, 'TOKENS', 'MONTH', 5000, tokens, MONTH_END),
      quotaStatus(org, 'REQUESTS', 'DAY', 100, 0, DAY_END),
      quotaStatus(own, 'TOKENS', 'DAY', 1000, tokens, DAY_END),
      quotaStatus(own, 'COST_USD', 'MONTH', 10, cost, MONTH_END),
    ]);

    const first = await record(server, key.id, { tokens: 100, costUsd: 0.25 });
    expect(first.recorded).toBe(true);
    expect(sorted(first.quotas)).toEqual(expected(100, 0.25));

    // 10 characters are ceil(10 / 4) = 3 tokens.
    expect(sorted((await record(server, key.id, { characters: 10, costUsd: 1.5 })).quotas)).toEqual(expected(103, 1.75));
    // tokens, when given, win over characters.
    expect(sorted((await record(server, key.id, { tokens: 5, characters: 400 })).quotas)).toEqual(expected(108, 1.75));
    // Exactly divisible: 8 characters are 2 tokens.
    expect(sorted((await record(server, key.id, { characters: 8 })).quotas)).toEqual(expected(110, 1.75));
    // Neither tokens nor cost: nothing to add.
    expect(sorted((await record(server, key.id, { statusCode: 200 })).quotas)).toEqual(expected(110, 1.75));

    const all = await quotasOf(server, { organizationId });
    const mine = await quotasOf(server, { apiKeyId: key.id });
    expect(sorted([...all, ...mine])).toEqual(expected(110, 1.75));
    expect(mine.find((quota) => quota.meter === 'TOKENS')).toMatchObject({ used: 110, remaining: 890, percentUsed: 11 });
    expect(mine.find((quota) => quota.meter === 'COST_USD')).toMatchObject({ used: 1.75, remaining: 8.25, percentUsed: 17.5 });
  });

  it("refuses verifyKey with QUOTA_EXCEEDED and the key's GraphQL calls with 429 QUOTA_EXCEEDED once TOKENS used reaches the limit", async () => {
    const { key } = await setup(server, [], [{ meter: 'TOKENS', period: 'DAY', limit: 100 }]);
    await record(server, key.id, { tokens: 99 });
    expect((await verify(server, key.secret)).valid).toBe(true);
    expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);

    await record(server, key.id, { tokens: 1 });
    const refused = await verify(server, key.secret);
    expect(refused).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED', keyId: key.id });
    expectRefused(await server.gql(VIEWER, {}, { key: key.secret }), 'QUOTA_EXCEEDED');

    // Usage that already happened is still recorded whole, past the limit.
    const over = await record(server, key.id, { tokens: 50 });
    expect(over.recorded).toBe(true);
    expect(over.quotas).toEqual([quotaStatus({ apiKeyId: key.id }, 'TOKENS', 'DAY', 100, 150, DAY_END)]);
    expect(over.quotas[0]).toMatchObject({ remaining: 0, percentUsed: 100 });
    expect((await verify(server, key.secret)).code).toBe('QUOTA_EXCEEDED');
  });

  it("refuses every key of an organization once the organization's COST_USD quota is used up", async () => {
    const { organizationId, key } = await setup(server, [{ meter: 'COST_USD', period: 'LIFETIME', limit: 1 }]);
    const sibling = await createKey(server, { organizationId, rateLimits: [] });
    await record(server, key.id, { costUsd: 0.5 });
    expect((await verify(server, sibling.secret)).valid).toBe(true);
    const second = await record(server, sibling.id, { costUsd: 0.5 });
    expect(second.quotas).toEqual([quotaStatus({ organizationId }, 'COST_USD', 'LIFETIME', 1, 1, null)]);

    expect(await verify(server, key.secret)).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED', keyId: key.id });
    expect(await verify(server, sibling.secret)).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED', keyId: sibling.id });
    expectRefused(await server.gql(VIEWER, {}, { key: sibling.secret }), 'QUOTA_EXCEEDED');
    expect(await quotasOf(server, { organizationId })).toEqual([quotaStatus({ organizationId }, 'COST_USD', 'LIFETIME', 1, 1, null)]);
  });

  it("takes REQUESTS from both the key's and the organization's quotas, and the tighter one refuses", async () => {
    const { organizationId, key: tight } = await setup(server, [{ meter: 'REQUESTS', period: 'DAY', limit: 5 }], [{ meter: 'REQUESTS', period: 'DAY', limit: 3 }]);
    const loose = await createKey(server, { organizationId, rateLimits: [] });
    const org = { organizationId };

    for (let i = 0; i < 3; i += 1) expect((await verify(server, tight.secret)).valid).toBe(true);
    // The key's own quota (3) is the tighter one; the refused request takes nothing from the organization.
    const refusedByKey = await verify(server, tight.secret);
    expect(refusedByKey).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED' });
    expect(await quotasOf(server, { organizationId })).toEqual([quotaStatus(org, 'REQUESTS', 'DAY', 5, 3, DAY_END)]);
    expect(await quotasOf(server, { apiKeyId: tight.id })).toEqual([quotaStatus({ apiKeyId: tight.id }, 'REQUESTS', 'DAY', 3, 3, DAY_END)]);

    // Another key without a quota of its own: now the organization's is the tighter one.
    expect((await verify(server, loose.secret)).valid).toBe(true);
    expect((await server.gql(VIEWER, {}, { key: loose.secret })).status).toBe(200);
    expect(await verify(server, loose.secret)).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED' });
    expectRefused(await server.gql(VIEWER, {}, { key: loose.secret }), 'QUOTA_EXCEEDED');
    expect(await quotasOf(server, { organizationId })).toEqual([quotaStatus(org, 'REQUESTS', 'DAY', 5, 5, DAY_END)]);
    expect(await quotasOf(server, { apiKeyId: tight.id })).toEqual([quotaStatus({ apiKeyId: tight.id }, 'REQUESTS', 'DAY', 3, 3, DAY_END)]);
  });

  it('takes cost units from REQUESTS quotas and refuses a cost that does not fit, taking nothing', async () => {
    const { key } = await setup(server, [], [{ meter: 'REQUESTS', period: 'LIFETIME', limit: 10 }]);
    expect((await verify(server, key.secret, { cost: 7 })).quotas).toEqual([quotaStatus({ apiKeyId: key.id }, 'REQUESTS', 'LIFETIME', 10, 7, null)]);
    expect(await verify(server, key.secret, { cost: 4 })).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED' });
    expect((await verify(server, key.secret, { cost: 3 })).quotas).toEqual([quotaStatus({ apiKeyId: key.id }, 'REQUESTS', 'LIFETIME', 10, 10, null)]);
    expect(await verify(server, key.secret)).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED' });
  });

  it('never admits more REQUESTS than the limit under concurrent verifications', async () => {
    const { organizationId, key } = await setup(server, [{ meter: 'REQUESTS', period: 'DAY', limit: 7 }]);
    const results = await Promise.all(Array.from({ length: 20 }, () => verify(server, key.secret)));
    expect(results.filter((result) => result.valid)).toHaveLength(7);
    expect(results.filter((result) => !result.valid).map((result) => result.code)).toEqual(Array(13).fill('QUOTA_EXCEEDED'));
    expect(await quotasOf(server, { organizationId })).toEqual([quotaStatus({ organizationId }, 'REQUESTS', 'DAY', 7, 7, DAY_END)]);
  });

  // Fails today: updateOrganization replaces the quota rows, and the counters are kept per row.
  it("keeps what the period used when the platform admin changes the organization's quotas: lowered below the usage, the very next verifyKey is QUOTA_EXCEEDED", async () => {
    const { organizationId, key } = await setup(server, [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }]);
    for (let call = 1; call <= 3; call++) expect(await verify(server, key.secret)).toMatchObject({ valid: true, code: 'VALID' });

    ok(await server.gql(UpdateOrganizationDocument, { id: organizationId, input: { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 2 }] } }));
    expect(await quotasOf(server, { organizationId })).toEqual([quotaStatus({ organizationId }, 'REQUESTS', 'DAY', 2, 3, DAY_END)]);
    expect(await verify(server, key.secret)).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED' });
  });

  it('keeps counting on the same quotas after rotation: the old secret in its grace period and the new one share them', async () => {
    const { key: old } = await setup(server, [], [{ meter: 'REQUESTS', period: 'LIFETIME', limit: 6 }, { meter: 'TOKENS', period: 'LIFETIME', limit: 1000 }]);
    await verify(server, old.secret);
    await verify(server, old.secret);
    await record(server, old.id, { tokens: 10 });

    const rotated = ok(await server.gql(ROTATE, { id: old.id, grace: 3600 })).rotateApiKey;
    const fresh: CreatedKey = { id: rotated.apiKey.id, secret: rotated.secret, organizationId: old.organizationId, apiKey: rotated.apiKey };
    expect(fresh.apiKey.rotatedFromId).toBe(old.id);
    const expected = (requests: number, tokens: number) => sorted([
      quotaStatus({ apiKeyId: fresh.id }, 'REQUESTS', 'LIFETIME', 6, requests, null),
      quotaStatus({ apiKeyId: fresh.id }, 'TOKENS', 'LIFETIME', 1000, tokens, null),
    ]);
    expect(sorted(fresh.apiKey.quotas)).toEqual(expected(2, 10));

    const viaOld = await verify(server, old.secret);
    expect(viaOld).toMatchObject({ valid: true, keyId: old.id });
    expect(sorted(viaOld.quotas)).toEqual(expected(3, 10));
    await verify(server, fresh.secret);
    const viaNew = await verify(server, fresh.secret);
    expect(sorted(viaNew.quotas)).toEqual(expected(5, 10));
    // recordUsage on either key id charges the same TOKENS quota.
    await record(server, old.id, { tokens: 5 });
    expect(sorted((await record(server, fresh.id, { tokens: 7 })).quotas)).toEqual(expected(5, 22));

    expect(sorted(ok(await server.gql(KEY_QUOTAS, { id: fresh.id })).apiKey.quotas)).toEqual(expected(5, 22));
    expect(await quotasOf(server, { apiKeyId: fresh.id })).toEqual(expected(5, 22));
    // The quotas moved to the new key.
    expect(await quotasOf(server, { apiKeyId: old.id })).toEqual([]);

    await verify(server, old.secret);
    expect(await verify(server, old.secret)).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED' });
    expect(await verify(server, fresh.secret)).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED' });
    expect(await quotasOf(server, { apiKeyId: fresh.id })).toEqual(expected(6, 22));
  });

  it("shows the caller organization's quotas by default and refuses another organization's with 404 NOT_FOUND and another organization's key with 404 NOT_FOUND", async () => {
    const mine = await createTenant(server, { quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: 50 }] });
    const other = await createTenant(server, { quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: 70 }] });
    const otherKey = await createKey(server, { organizationId: other.organizationId, quotas: [{ meter: 'TOKENS', period: 'DAY', limit: 9 }] });

    expect(await quotasOf(server, {}, mine.key.secret)).toEqual([quotaStatus({ organizationId: mine.organizationId }, 'TOKENS', 'MONTH', 50, 0, MONTH_END)]);

    const byOrganization = await server.gql(QUOTAS, { organizationId: other.organizationId }, { key: mine.key.secret });
    expectRefused(byOrganization, 'NOT_FOUND');
    expect(byOrganization.body.data).toBeNull();
    const byKey = await server.gql(QUOTAS, { apiKeyId: otherKey.id }, { key: mine.key.secret });
    expectRefused(byKey, 'NOT_FOUND');
    expect(byKey.body.data).toBeNull();
    expectRefused(await server.gql(KEY_QUOTAS, { id: otherKey.id }, { key: mine.key.secret }), 'NOT_FOUND');
    expectRefused(await server.gql(ORGANIZATION_QUOTAS, { id: other.organizationId }, { key: mine.key.secret }), 'NOT_FOUND');
    expectRefused(await server.gql(QUOTAS, { apiKeyId: 'key_0000000000000000000000000' }, { key: mine.key.secret }), 'NOT_FOUND');

    // The platform admin sees any organization's and any key's.
    expect(await quotasOf(server, { apiKeyId: otherKey.id })).toEqual([quotaStatus({ apiKeyId: otherKey.id }, 'TOKENS', 'DAY', 9, 0, DAY_END)]);
  });

  it('refuses quotas to a key without usage:read with 403 INSUFFICIENT_SCOPE', async () => {
    const organization = await createOrganization(server);
    const key = await createKey(server, { organizationId: organization.id, scopes: ['keys:read'] });
    expectRefused(await server.gql(QUOTAS, {}, { key: key.secret }), 'INSUFFICIENT_SCOPE');
  });
});

describe('quota periods (UTC boundaries, on a server whose clock the tests move)', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer({ clockStart: '2026-03-10T23:59:59.900Z' }); });
  afterAll(async () => { await server.close(); });

  it('restarts a DAY counter at 00:00 UTC and moves resetsAt to the next midnight', async () => {
    server.clock.set('2026-03-10T23:59:59.900Z');
    const { organizationId, key } = await setup(server, [{ meter: 'REQUESTS', period: 'DAY', limit: 3 }]);
    const org = { organizationId };
    for (let i = 0; i < 3; i += 1) expect((await verify(server, key.secret)).valid).toBe(true);
    expect(await verify(server, key.secret)).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED' });
    expect(await quotasOf(server, { organizationId })).toEqual([quotaStatus(org, 'REQUESTS', 'DAY', 3, 3, '2026-03-11T00:00:00.000Z')]);

    server.clock.set('2026-03-11T00:00:00.000Z');
    expect(await quotasOf(server, { organizationId })).toEqual([quotaStatus(org, 'REQUESTS', 'DAY', 3, 0, '2026-03-12T00:00:00.000Z')]);
    const again = await verify(server, key.secret);
    expect(again.valid).toBe(true);
    expect(again.quotas).toEqual([quotaStatus(org, 'REQUESTS', 'DAY', 3, 1, '2026-03-12T00:00:00.000Z')]);
  });

  it('admits a key refused by its DAY TOKENS quota again from 00:00 UTC', async () => {
    server.clock.set('2026-04-20T23:59:59.900Z');
    const { key } = await setup(server, [], [{ meter: 'TOKENS', period: 'DAY', limit: 100 }]);
    await record(server, key.id, { tokens: 100 });
    expect(await verify(server, key.secret)).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED' });

    server.clock.set('2026-04-21T00:00:00.000Z');
    const admitted = await verify(server, key.secret);
    expect(admitted.valid).toBe(true);
    expect(admitted.quotas).toEqual([quotaStatus({ apiKeyId: key.id }, 'TOKENS', 'DAY', 100, 0, '2026-04-22T00:00:00.000Z')]);
  });

  it('rolls MONTH and DAY counters over from January 31 to February 1 but not LIFETIME', async () => {
    server.clock.set('2026-01-31T23:59:59.000Z');
    const { organizationId, key } = await setup(server,
      [{ meter: 'REQUESTS', period: 'DAY', limit: 50 }, { meter: 'REQUESTS', period: 'MONTH', limit: 100 }, { meter: 'REQUESTS', period: 'LIFETIME', limit: 1000 }],
      [{ meter: 'TOKENS', period: 'MONTH', limit: 500 }]);
    const org = { organizationId };
    for (let i = 0; i < 3; i += 1) await verify(server, key.secret);
    await record(server, key.id, { tokens: 200 });
    expect(await quotasOf(server, { organizationId })).toEqual(sorted([
      quotaStatus(org, 'REQUESTS', 'DAY', 50, 3, '2026-02-01T00:00:00.000Z'),
      quotaStatus(org, 'REQUESTS', 'MONTH', 100, 3, '2026-02-01T00:00:00.000Z'),
      quotaStatus(org, 'REQUESTS', 'LIFETIME', 1000, 3, null),
    ]));
    expect(await quotasOf(server, { apiKeyId: key.id })).toEqual([quotaStatus({ apiKeyId: key.id }, 'TOKENS', 'MONTH', 500, 200, '2026-02-01T00:00:00.000Z')]);

    server.clock.set('2026-02-01T00:00:00.000Z');
    expect(await quotasOf(server, { organizationId })).toEqual(sorted([
      quotaStatus(org, 'REQUESTS', 'DAY', 50, 0, '2026-02-02T00:00:00.000Z'),
      quotaStatus(org, 'REQUESTS', 'MONTH', 100, 0, '2026-03-01T00:00:00.000Z'),
      quotaStatus(org, 'REQUESTS', 'LIFETIME', 1000, 3, null),
    ]));
    expect(await quotasOf(server, { apiKeyId: key.id })).toEqual([quotaStatus({ apiKeyId: key.id }, 'TOKENS', 'MONTH', 500, 0, '2026-03-01T00:00:00.000Z')]);

    await verify(server, key.secret);
    const organization = ok(await server.gql(ORGANIZATION_QUOTAS, { id: organizationId })).organization;
    expect(sorted(organization.quotas)).toEqual(sorted([
      quotaStatus(org, 'REQUESTS', 'DAY', 50, 1, '2026-02-02T00:00:00.000Z'),
      quotaStatus(org, 'REQUESTS', 'MONTH', 100, 1, '2026-03-01T00:00:00.000Z'),
      quotaStatus(org, 'REQUESTS', 'LIFETIME', 1000, 4, null),
    ]));
  });

  it('rolls MONTH counters over from December 31 to January 1 of the next year', async () => {
    server.clock.set('2026-12-31T23:59:59.999Z');
    const { organizationId, key } = await setup(server, [{ meter: 'REQUESTS', period: 'MONTH', limit: 2 }, { meter: 'REQUESTS', period: 'DAY', limit: 10 }]);
    const org = { organizationId };
    await verify(server, key.secret);
    await verify(server, key.secret);
    expect(await verify(server, key.secret)).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED' });
    expect(await quotasOf(server, { organizationId })).toEqual(sorted([
      quotaStatus(org, 'REQUESTS', 'MONTH', 2, 2, '2027-01-01T00:00:00.000Z'),
      quotaStatus(org, 'REQUESTS', 'DAY', 10, 2, '2027-01-01T00:00:00.000Z'),
    ]));

    server.clock.set('2027-01-01T00:00:00.000Z');
    expect(await quotasOf(server, { organizationId })).toEqual(sorted([
      quotaStatus(org, 'REQUESTS', 'MONTH', 2, 0, '2027-02-01T00:00:00.000Z'),
      quotaStatus(org, 'REQUESTS', 'DAY', 10, 0, '2027-01-02T00:00:00.000Z'),
    ]));
    expect((await verify(server, key.secret)).valid).toBe(true);
  });

  it('never resets a LIFETIME quota (resetsAt null), however far the clock moves', async () => {
    server.clock.set('2026-05-01T08:00:00.000Z');
    const { key } = await setup(server, [], [{ meter: 'REQUESTS', period: 'LIFETIME', limit: 3 }, { meter: 'TOKENS', period: 'LIFETIME', limit: 10 }]);
    const own = { apiKeyId: key.id };
    for (let i = 0; i < 3; i += 1) await verify(server, key.secret);
    await record(server, key.id, { tokens: 4 });
    const expected = (tokens: number) => sorted([quotaStatus(own, 'REQUESTS', 'LIFETIME', 3, 3, null), quotaStatus(own, 'TOKENS', 'LIFETIME', 10, tokens, null)]);
    expect(await quotasOf(server, { apiKeyId: key.id })).toEqual(expected(4));

    for (const moment of ['2026-05-02T00:00:00.000Z', '2026-06-01T00:00:00.000Z', '2028-01-01T00:00:00.000Z']) {
      server.clock.set(moment);
      expect(await quotasOf(server, { apiKeyId: key.id })).toEqual(expected(4));
      expect(await verify(server, key.secret)).toMatchObject({ valid: false, code: 'QUOTA_EXCEEDED' });
    }
    await record(server, key.id, { tokens: 6 });
    expect(await quotasOf(server, { apiKeyId: key.id })).toEqual(expected(10));
  });
});
