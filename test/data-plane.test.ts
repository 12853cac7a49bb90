import fs from 'node:fs';
import path from 'node:path';
import { buildSchema, getNamedType, GraphQLObjectType, isObjectType } from 'graphql';
import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, uniqueName } from './helpers/fixtures';
import { ok, SECRET_PATTERN } from './helpers/expect';

/**
 * The plain-HTTP data plane (POST /v1/verify, /v1/usage, /v1/reserve, /v1/settle, GET /v1/openapi.json): the same
 * pipeline as GraphQL, answering the same JSON. Answers are compared with GraphQL's, every field
 * selected (the selection is built from schema.graphql, so a new field is compared too).
 */
const schema = buildSchema(fs.readFileSync(path.join(__dirname, '..', 'schema.graphql'), 'utf8'));

/** `{ every field { every field … } }` of an object type of the schema. */
function everyField(type: GraphQLObjectType): string {
  return `{ ${Object.values(type.getFields()).map((field) => {
    const named = getNamedType(field.type);
    return isObjectType(named) ? `${field.name} ${everyField(named)}` : field.name;
  }).join(' ')} }`;
}

const VERIFY = `mutation($input: VerifyKeyInput!) { verifyKey(input: $input) ${everyField(schema.getType('VerifyKeyResult') as GraphQLObjectType)} }`;
const RECORD = `mutation($input: RecordUsageInput!) { recordUsage(input: $input) ${everyField(schema.getType('UsageRecorded') as GraphQLObjectType)} }`;
const RESERVE = `mutation($input: ReserveUsageInput!) { reserveUsage(input: $input) ${everyField(schema.getType('UsageReservation') as GraphQLObjectType)} }`;
const SETTLE = `mutation($input: SettleUsageInput!) { settleUsage(input: $input) ${everyField(schema.getType('UsageRecorded') as GraphQLObjectType)} }`;
const ROTATE = 'mutation($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 0) { apiKey { id } } }';

interface Case {
  /** The key to verify and what to ask, in the state that gives `code`. */
  arrange(server: TestServer): Promise<{ input: Record<string, unknown> }>;
}

const quota = (limit: number) => ({ meter: 'REQUESTS', period: 'MONTH', limit });

/** A key of a fresh organization; `organization` and `key` are added to the inputs. */
async function keyOf(server: TestServer, key: Record<string, unknown> = {}, organization: Record<string, unknown> = {}) {
  const created = await createOrganization(server, organization);
  return createKey(server, { organizationId: created.id, ...key });
}

/** Every VerifyCode but VALID: a refusal takes nothing, so two calls in a row answer the same. */
const REFUSALS: Record<string, Case> = {
  NOT_FOUND: { arrange: async () => ({ input: { key: 'kw_live_not-a-key' } }) },
  DISABLED: {
    async arrange(server) {
      const key = await keyOf(server);
      ok(await server.gql('mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { id } }', { id: key.id }));
      return { input: { key: key.secret } };
    },
  },
  REVOKED: {
    async arrange(server) {
      const key = await keyOf(server);
      ok(await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "compared") { id } }', { id: key.id }));
      return { input: { key: key.secret } };
    },
  },
  EXPIRED: {
    async arrange(server) {
      const key = await keyOf(server);
      ok(await server.gql(ROTATE, { id: key.id }));
      return { input: { key: key.secret } };
    },
  },
  ORGANIZATION_SUSPENDED: {
    async arrange(server) {
      const key = await keyOf(server);
      ok(await server.gql('mutation($id: ID!) { setOrganizationStatus(id: $id, status: SUSPENDED) { id } }', { id: key.organizationId }));
      return { input: { key: key.secret } };
    },
  },
  FORBIDDEN_IP: { arrange: async (server) => ({ input: { key: (await keyOf(server, { ipAllowlist: ['10.0.0.0/8'] })).secret, ip: '192.0.2.7' } }) },
  INSUFFICIENT_SCOPE: { arrange: async (server) => ({ input: { key: (await keyOf(server, { scopes: ['inference:run'] })).secret, requiredScopes: ['inference:train'] } }) },
  RATE_LIMITED: {
    async arrange(server) {
      const key = await keyOf(server, { rateLimits: [{ name: 'tiny', limit: 1, windowSeconds: 60 }] });
      ok(await server.gql(VERIFY, { input: { key: key.secret } }));
      return { input: { key: key.secret } };
    },
  },
  QUOTA_EXCEEDED: {
    async arrange(server) {
      const key = await keyOf(server, { rateLimits: [], quotas: [quota(1)] });
      ok(await server.gql(VERIFY, { input: { key: key.secret } }));
      return { input: { key: key.secret } };
    },
  },
  NO_ACTIVE_SESSION: { arrange: async (server) => ({ input: { key: (await keyOf(server)).secret, requireSession: true } }) },
};

describe('the plain-HTTP data plane', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  describe('POST /v1/verify answers what verifyKey answers', () => {
    it.each(Object.keys(REFUSALS))('for %s: the same JSON as GraphQL, every field', async (code) => {
      const { input } = await REFUSALS[code].arrange(server);
      const graphql = ok(await server.gql(VERIFY, { input })).verifyKey;
      const plain = await server.post('/v1/verify', input);
      expect(graphql.code).toBe(code);
      expect({ status: plain.status, body: plain.body }).toEqual({ status: 200, body: graphql });
    });

    it('for VALID: the same JSON as GraphQL, each window and quota one unit further on', async () => {
      const key = await keyOf(server, { rateLimits: [{ name: 'per-minute', limit: 100, windowSeconds: 60 }], quotas: [quota(1000)], meta: { plan: 'pro' } }, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 500 }] });
      const graphql = ok(await server.gql(VERIFY, { input: { key: key.secret } })).verifyKey;
      const plain = await server.post('/v1/verify', { key: key.secret });
      expect(graphql).toMatchObject({ code: 'VALID', meta: { plan: 'pro' } });
      expect(graphql.rateLimits).toHaveLength(1);
      expect(graphql.quotas).toHaveLength(2);
      const percent = (used: number, limit: number) => Math.round((used / limit) * 10_000) / 100;
      expect({ status: plain.status, body: plain.body }).toEqual({
        status: 200,
        body: {
          ...graphql,
          rateLimits: graphql.rateLimits.map((window: any) => ({ ...window, remaining: window.remaining - 1 })),
          quotas: graphql.quotas.map((status: any) => ({ ...status, used: status.used + 1, remaining: status.remaining - 1, percentUsed: percent(status.used + 1, status.limit) })),
        },
      });
    });

    it('for VALID with an active session: the same session, its computed fields included', async () => {
      const organization = await createOrganization(server);
      const admin = await createKey(server, { organizationId: organization.id, preset: 'ADMIN' });
      ok(await server.gql('mutation($input: AddSessionCreditsInput!) { addSessionCredits(input: $input) { available } }', { input: { organizationId: organization.id, sessions: 1, idempotencyKey: uniqueName('pay') } }));
      ok(await server.gql('mutation { createSession { id } }', {}, { key: admin.secret }));
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      const input = { key: key.secret, requireSession: true };
      const graphql = ok(await server.gql(VERIFY, { input })).verifyKey;
      expect(graphql.session).toMatchObject({ status: 'ACTIVE', tokensRemaining: 100_000 });
      const plain = await server.post('/v1/verify', input);
      expect({ status: plain.status, body: plain.body }).toEqual({ status: 200, body: graphql });
    });
  });

  describe("the caller's own problems", () => {
    it('answers 401 UNAUTHENTICATED without a key, and the refusal code of a refused caller key', async () => {
      const none = await server.post('/v1/verify', { key: 'kw_live_x' }, { key: null });
      expect({ status: none.status, code: none.body.error?.code }).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
      const caller = await createKey(server, { scopes: ['keys:verify'], rateLimits: [] });
      ok(await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "gone") { id } }', { id: caller.id }));
      const revoked = await server.post('/v1/verify', { key: 'kw_live_x' }, { key: caller.secret });
      expect({ status: revoked.status, body: revoked.body }).toEqual({ status: 401, body: { error: { code: 'KEY_REVOKED', message: expect.any(String) } } });
    });

    it('answers 403 INSUFFICIENT_SCOPE to a caller without keys:verify, and consumes nothing of the key it asked about', async () => {
      const caller = await createKey(server, { scopes: ['usage:write'], rateLimits: [] });
      const target = await keyOf(server, { rateLimits: [{ name: 'tiny', limit: 1, windowSeconds: 60 }] });
      const refused = await server.post('/v1/verify', { key: target.secret }, { key: caller.secret });
      expect({ status: refused.status, code: refused.body.error?.code }).toEqual({ status: 403, code: 'INSUFFICIENT_SCOPE' });
      expect(ok(await server.gql('mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { code } }', { input: { key: target.secret } })).verifyKey.code).toBe('VALID');
    });

    it.each([
      ['a body that is not JSON', '{"key": ', 'body is not valid JSON'],
      ['a body that is not an object', '["kw_live_x"]', 'body'],
      ['no key', '{}', 'key'],
      ['a cost that is not an Int', JSON.stringify({ key: 'kw_live_x', cost: 'kw_live_0123456789abcdefghijABCDEFGHIJ01234' }), 'cost'],
      ['an unknown field', JSON.stringify({ key: 'kw_live_x', costs: 2 }), 'costs'],
      ['a cost out of range', JSON.stringify({ key: 'kw_live_x', cost: 0 }), 'cost'],
    ])('answers 400 BAD_USER_INPUT for %s, naming the field and never the value', async (_what, body, field) => {
      const response = await server.post('/v1/verify', body);
      expect({ status: response.status, code: response.body.error?.code }).toEqual({ status: 400, code: 'BAD_USER_INPUT' });
      expect(response.body.error.message).toContain(field);
      expect(response.body.error.message).not.toMatch(SECRET_PATTERN);
    });

    it('answers 429 RATE_LIMITED with Retry-After and X-RateLimit-* when the caller key is out of its window', async () => {
      const caller = await createKey(server, { scopes: ['keys:verify'], rateLimits: [{ name: 'per-minute', limit: 1, windowSeconds: 60 }] });
      const first = await server.post('/v1/verify', { key: 'kw_live_x' }, { key: caller.secret });
      expect(first.status).toBe(200);
      expect(first.headers.get('x-ratelimit-remaining')).toBe('0');
      const second = await server.post('/v1/verify', { key: 'kw_live_x' }, { key: caller.secret });
      expect({ status: second.status, code: second.body.error?.code, retryAfter: second.headers.get('retry-after') }).toEqual({ status: 429, code: 'RATE_LIMITED', retryAfter: '60' });
    });

    it('answers 413 PAYLOAD_TOO_LARGE above 1 MiB', async () => {
      const response = await server.post('/v1/verify', { key: 'x'.repeat(1024 * 1024 + 10) });
      expect({ status: response.status, code: response.body.error?.code }).toEqual({ status: 413, code: 'PAYLOAD_TOO_LARGE' });
    });
  });

  describe('POST /v1/usage answers what recordUsage answers', () => {
    it('records once per idempotencyKey, with the same JSON as GraphQL', async () => {
      const key = await keyOf(server, {}, { quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: 1000 }] });
      const input = { apiKeyId: key.id, operation: 'POST /predict', statusCode: 200, tokens: 7, idempotencyKey: uniqueName('call') };
      const plain = await server.post('/v1/usage', input);
      expect(plain.status).toBe(200);
      expect(plain.body).toMatchObject({ recorded: true, quotas: [{ meter: 'TOKENS', used: 7 }], session: null });
      // The same call again, over GraphQL: counted once, the same state.
      const again = ok(await server.gql(RECORD, { input })).recordUsage;
      expect(again).toEqual({ ...plain.body, recorded: false });
    });

    it('refuses a caller without usage:write with 403', async () => {
      const caller = await createKey(server, { scopes: ['keys:verify'], rateLimits: [] });
      const response = await server.post('/v1/usage', { apiKeyId: 'key_x', operation: 'x', idempotencyKey: 'k' }, { key: caller.secret });
      expect({ status: response.status, code: response.body.error?.code }).toEqual({ status: 403, code: 'INSUFFICIENT_SCOPE' });
    });
  });

  describe('POST /v1/reserve and /v1/settle answer what reserveUsage and settleUsage answer', () => {
    it('holds, then settles, with the same JSON as GraphQL (a repeat of each answers the same state)', async () => {
      const key = await keyOf(server, { rateLimits: [] }, { quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: 1000 }] });
      const input = { key: key.secret, tokens: 300, idempotencyKey: uniqueName('reserve') };
      const plain = await server.post('/v1/reserve', input);
      expect(plain.status).toBe(200);
      expect(plain.body).toMatchObject({ id: expect.any(String), tokens: 300, costUsd: 0, verify: { valid: true, quotas: [{ meter: 'TOKENS', used: 0, held: 300, remaining: 700 }] } });
      expect(ok(await server.gql(RESERVE, { input })).reserveUsage).toEqual(plain.body);

      const settle = { reservationId: plain.body.id, inputTokens: 100, outputTokens: 20 };
      const settled = await server.post('/v1/settle', settle);
      expect(settled.status).toBe(200);
      expect(settled.body).toMatchObject({ recorded: true, quotas: [{ meter: 'TOKENS', used: 120, held: 0, remaining: 880 }], session: null });
      expect(ok(await server.gql(SETTLE, { input: settle })).settleUsage).toEqual({ ...settled.body, recorded: false });
    });

    it('answers a refused key as data (200, id null) and a caller without usage:write with 403', async () => {
      const refused = await server.post('/v1/reserve', { key: 'kw_live_x', tokens: 1, idempotencyKey: 'x' });
      expect({ status: refused.status, body: refused.body }).toMatchObject({ status: 200, body: { id: null, tokens: 0, verify: { valid: false, code: 'NOT_FOUND' } } });
      const caller = await createKey(server, { scopes: ['keys:verify'], rateLimits: [] });
      const response = await server.post('/v1/settle', { reservationId: 'rsv_x' }, { key: caller.secret });
      expect({ status: response.status, code: response.body.error?.code }).toEqual({ status: 403, code: 'INSUFFICIENT_SCOPE' });
    });
  });

  describe('the same pipeline as GraphQL', () => {
    it("meters the caller: its own usage event per call, named after the route, and its X-RateLimit-* headers", async () => {
      const organization = await createOrganization(server);
      const caller = await createKey(server, { organizationId: organization.id, scopes: ['keys:verify'], rateLimits: [{ name: 'per-minute', limit: 10, windowSeconds: 60 }] });
      for (let call = 0; call < 3; call++) expect((await server.post('/v1/verify', { key: 'kw_live_x' }, { key: caller.secret })).status).toBe(200);
      await server.app.usageBuffer.flush();
      const usage = ok(await server.gql('query($range: UsageRange) { usage(range: $range) { byOperation { key requests } byOutcome { code count } } }', { range: { apiKeyId: caller.id } })).usage;
      expect(usage.byOperation).toEqual([{ key: 'POST /v1/verify', requests: 3 }]);
      const status = ok(await server.gql('query($id: ID!) { rateLimitStatus(apiKeyId: $id) { remaining } }', { id: caller.id })).rateLimitStatus;
      expect(status).toEqual([{ remaining: 7 }]);
    });

    it('writes an access line and counts the verifications in /metrics', async () => {
      const before = await (await fetch(new URL('/metrics', server.url))).text();
      const count = (text: string) => Number(/keyward_verifications_total\{code="NOT_FOUND"\} (\d+)/.exec(text)?.[1] ?? 0);
      const response = await server.post('/v1/verify', { key: 'kw_live_x' });
      expect(response.body.code).toBe('NOT_FOUND');
      const requestId = response.headers.get('x-request-id');
      const after = await (await fetch(new URL('/metrics', server.url))).text();
      expect(count(after)).toBe(count(before) + 1);
      const line = server.logs.map((text) => JSON.parse(text)).find((entry) => entry.requestId === requestId && entry.msg === 'graphql request');
      expect(line).toMatchObject({ method: 'POST', operation: 'POST /v1/verify', operationType: 'mutation', status: 200 });
    });
  });

  describe('GET /v1/openapi.json', () => {
    it('is public and describes every route with the schema types, fields and defaults included', async () => {
      const response = await fetch(new URL('/v1/openapi.json', server.url));
      expect(response.status).toBe(200);
      const document = await response.json() as any;
      expect(document.openapi).toBe('3.1.0');
      expect(Object.keys(document.paths)).toEqual(['/v1/verify', '/v1/usage', '/v1/reserve', '/v1/settle']);
      expect(document.paths['/v1/reserve'].post.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/UsageReservation' });
      const input = document.components.schemas.VerifyKeyInput;
      expect(Object.keys(input.properties)).toEqual(Object.keys((schema.getType('VerifyKeyInput') as any).getFields()));
      expect(input.required).toEqual(['key']);
      expect(input.properties.cost).toMatchObject({ default: 1 });
      const result = document.components.schemas.VerifyKeyResult;
      expect(Object.keys(result.properties)).toEqual(Object.keys((schema.getType('VerifyKeyResult') as GraphQLObjectType).getFields()));
      expect(document.components.schemas.VerifyCode.enum).toContain('NO_ACTIVE_SESSION');
      expect(document.paths['/v1/verify'].post.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/VerifyKeyResult' });
    });
  });
});
