import http from 'node:http';
import net from 'node:net';
import express, { Express } from 'express';
import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, CreatedKey } from './helpers/fixtures';
import { ok } from './helpers/expect';
import { KeywardClient, KeywardClientError } from '@keyward/client';
import { keyward, KeywardMiddlewareOptions, KeywardErrorContext } from '@keyward/client/express';

/**
 * The Express middleware (`keyward/express`) in front of a small platform API, against a real
 * keyward: key sources, every refusal status with its JSON body and headers, req.keyward, usage
 * recorded after the response, the optional local cache and its trade-off, and what happens when
 * keyward cannot be reached. The middleware reads time from keyward's test clock (`now`).
 */

const BUCKET = 'key requests errors tokens costUsd avgLatencyMs';
const USAGE = `query($range: UsageRange) { usage(range: $range) { requests errors tokens byOperation { ${BUCKET} } } }`;
const RATE_LIMIT_STATUS = 'query($id: ID!) { rateLimitStatus(apiKeyId: $id) { name limit remaining } }';
const SESSION = 'query($id: ID!) { session(id: $id) { id status tokensUsed } }';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface Bucket { key: string; requests: number; errors: number; tokens: number; costUsd: number; avgLatencyMs: number | null }

interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

let server: TestServer;
let service: CreatedKey;
const listening: http.Server[] = [];

beforeAll(async () => {
  server = await startTestServer();
  service = await createKey(server, { organizationId: server.platformOrganizationId, scopes: ['keys:verify', 'usage:write'], rateLimits: [] });
});

afterEach(async () => {
  for (const app of listening.splice(0)) {
    app.closeAllConnections();
    await new Promise((resolve) => app.close(resolve));
  }
});

afterAll(async () => {
  await server?.close();
});

/** A client for the platform service, with its calls counted. */
function serviceClient(secret = service.secret, url = server.url): { client: KeywardClient; verifyCalls: jest.SpyInstance; recordCalls: jest.SpyInstance } {
  const client = new KeywardClient({ url, apiKey: secret, retries: 0, timeoutMs: 5_000 });
  return { client, verifyCalls: jest.spyOn(client, 'verifyKey'), recordCalls: jest.spyOn(client, 'recordUsage') };
}

async function listen(app: Express): Promise<string> {
  const httpServer = http.createServer(app);
  listening.push(httpServer);
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(httpServer.address() as net.AddressInfo).port}`;
}

/**
 * A platform API: a public /health, POST /v1/predict and GET /v1/items/:id protected on the
 * route, and /v2 protected at router level. Handlers echo req.keyward; /v1/predict takes
 * `tokens`, `characters`, `status` and `delayMs` from its JSON body.
 */
async function platformApi(options: Partial<KeywardMiddlewareOptions> & { client: KeywardMiddlewareOptions['client'] }, trustProxy = false): Promise<string> {
  const app = express();
  app.set('trust proxy', trustProxy);
  const protect = keyward({ now: () => server.clock.now().getTime(), onError: () => {}, ...options });
  app.get('/health', (_req, res) => { res.json({ status: 'ok' }); });
  app.post('/v1/predict', express.json(), protect, async (req, res) => {
    const { tokens, characters, status, delayMs } = req.body ?? {};
    if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
    if (tokens !== undefined) res.locals.keywardTokens = tokens;
    if (characters !== undefined) res.locals.keywardCharacters = characters;
    res.status(status ?? 200).json({ keyward: req.keyward });
  });
  app.get('/v1/items/:id', protect, (req, res) => { res.json({ keyward: req.keyward }); });
  const router = express.Router();
  router.get('/items/:id', (req, res) => { res.json({ keyward: req.keyward }); });
  app.use('/v2', protect, router);
  return listen(app);
}

async function call(url: string, path: string, options: { key?: string; via?: 'bearer' | 'x-api-key'; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key !== undefined) {
    if (options.via === 'x-api-key') headers['x-api-key'] = options.key;
    else headers.authorization = `Bearer ${options.key}`;
  }
  const init: RequestInit = { method: options.body === undefined ? 'GET' : 'POST', headers };
  if (options.body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(url + path, init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}

const predict = (url: string, key?: string, body: Record<string, unknown> = {}) => call(url, '/v1/predict', { key, body });

function expectMiddlewareRefused(answer: Answer, status: number, code: string): void {
  expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code });
  expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
  expect(typeof answer.body.error.message).toBe('string');
  expect(answer.body.error.message.length).toBeGreaterThan(0);
}

/** A customer organization's key; by default holding inference:run and the default rate limits. */
async function customerKey(input: Record<string, unknown> = {}): Promise<CreatedKey> {
  const organization = await createOrganization(server);
  return createKey(server, { organizationId: organization.id, scopes: ['inference:run'], ...input });
}

/** The data of a GraphQL call to keyward itself (by default as the platform admin). */
async function keywardData(query: string, variables: Record<string, unknown>, key?: string): Promise<any> {
  return ok(await server.gql(query, variables, { key }));
}

async function usageOf(apiKeyId: string): Promise<{ requests: number; errors: number; tokens: number; byOperation: Bucket[] }> {
  return (await keywardData(USAGE, { range: { apiKeyId } })).usage;
}

async function remaining(apiKeyId: string): Promise<Record<string, number>> {
  const states: Array<{ name: string; remaining: number }> = (await keywardData(RATE_LIMIT_STATUS, { id: apiKeyId })).rateLimitStatus;
  return Object.fromEntries(states.map((state) => [state.name, state.remaining]));
}

/** Usage is recorded after the response, fire-and-forget: poll until it shows (at most ~3 s). */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let attempt = 0; attempt < 60 && !done(value); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    value = await read();
  }
  return value;
}

async function closedPortUrl(): Promise<string> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return `http://127.0.0.1:${port}/graphql`;
}

/** X-RateLimit-Reset for a unit freeing up at `ms`: epoch seconds, rounded up. */
function epochSeconds(ms: number): string {
  return String(Math.ceil(ms / 1000));
}

describe('admitting a request', () => {
  it('admits a key sent as Authorization: Bearer and puts the verification result on req.keyward', async () => {
    const { client, verifyCalls } = serviceClient();
    const url = await platformApi({ client, requiredScopes: ['inference:run'] });
    const key = await customerKey({ meta: { plan: 'pro' } });

    const answer = await predict(url, key.secret);

    expect(answer.status).toBe(200);
    expect(answer.body.keyward).toMatchObject({
      valid: true,
      code: 'VALID',
      keyId: key.id,
      organizationId: key.organizationId,
      environment: 'LIVE',
      scopes: ['inference:run'],
      meta: { plan: 'pro' },
      cached: false,
      failOpen: false,
      operation: 'POST /v1/predict',
      session: null,
    });
    expect(answer.body.keyward.rateLimits.map((state: any) => [state.name, state.limit, state.remaining])).toEqual([['per-minute', 60, 59], ['per-hour', 1000, 999]]);
    expect(verifyCalls).toHaveBeenCalledTimes(1);
    expect(verifyCalls.mock.calls[0][0]).toEqual({
      key: key.secret, cost: 1, requiredScopes: ['inference:run'], ip: expect.stringMatching(/^(::ffff:)?127\.0\.0\.1$/), operation: 'POST /v1/predict', requireSession: false, recordEvent: false,
    });
  });

  it('admits a key sent in the X-API-Key header', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client, requiredScopes: ['inference:run'] });
    const key = await customerKey();

    const answer = await call(url, '/v1/predict', { key: key.secret, via: 'x-api-key', body: {} });

    expect(answer.status).toBe(200);
    expect(answer.body.keyward.keyId).toBe(key.id);
  });

  it('sets X-RateLimit-Limit, -Remaining and -Reset (epoch seconds) from the tightest window', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey({ rateLimits: [{ name: 'per-hour', limit: 100, windowSeconds: 3600 }, { name: 'burst', limit: 3, windowSeconds: 10 }] });
    const now = server.clock.now().getTime();

    const first = await predict(url, key.secret);
    const second = await predict(url, key.secret);

    expect(first.status).toBe(200);
    expect([first.headers.get('x-ratelimit-limit'), first.headers.get('x-ratelimit-remaining'), first.headers.get('x-ratelimit-reset')])
      .toEqual(['3', '2', epochSeconds(now + 10_000)]);
    expect([second.headers.get('x-ratelimit-limit'), second.headers.get('x-ratelimit-remaining')]).toEqual(['3', '1']);
  });

  it('sets no X-RateLimit headers for a key without rate limits', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey({ rateLimits: [] });

    const answer = await predict(url, key.secret);

    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-ratelimit-limit')).toBeNull();
    expect(answer.body.keyward.rateLimits).toEqual([]);
  });

  it('leaves unprotected routes alone', async () => {
    const { client, verifyCalls } = serviceClient();
    const url = await platformApi({ client });

    const answer = await call(url, '/health');

    expect({ status: answer.status, body: answer.body }).toEqual({ status: 200, body: { status: 'ok' } });
    expect(verifyCalls).not.toHaveBeenCalled();
  });

  it('takes cost units from the rate limits, from a number or a function of the request', async () => {
    const { client, verifyCalls } = serviceClient();
    const key = await customerKey({ rateLimits: [{ name: 'units', limit: 100, windowSeconds: 3600 }] });
    const fixed = await platformApi({ client, cost: 5 });
    const perRequest = await platformApi({ client, cost: (req) => Number(req.get('x-units') ?? 1) });

    expect((await predict(fixed, key.secret)).headers.get('x-ratelimit-remaining')).toBe('95');
    expect((await call(perRequest, '/v1/predict', { key: key.secret, body: {}, headers: { 'x-units': '7' } })).headers.get('x-ratelimit-remaining')).toBe('88');
    expect(verifyCalls.mock.calls.map(([input]) => input.cost)).toEqual([5, 7]);
    expect(await remaining(key.id)).toEqual({ units: 88 });
  });

  it('names the operation METHOD + route pattern on a route, METHOD + path at router level, or as the operation option says', async () => {
    const { client, verifyCalls } = serviceClient();
    const url = await platformApi({ client });
    const custom = await platformApi({ client, operation: (req) => `items.read ${req.method}` });
    const key = await customerKey();

    const onRoute = await call(url, '/v1/items/42', { key: key.secret });
    const onRouter = await call(url, '/v2/items/42', { key: key.secret });
    const named = await call(custom, '/v1/items/42', { key: key.secret });

    expect([onRoute.status, onRouter.status, named.status]).toEqual([200, 200, 200]);
    expect([onRoute.body.keyward.operation, onRouter.body.keyward.operation, named.body.keyward.operation])
      .toEqual(['GET /v1/items/:id', 'GET /v2/items/42', 'items.read GET']);
    expect(verifyCalls.mock.calls.map(([input]) => input.operation)).toEqual(['GET /v1/items/:id', 'GET /v2/items/42', 'items.read GET']);
  });

  it("passes the client address as Express sees it, honouring the app's trust proxy setting", async () => {
    const { client } = serviceClient();
    const direct = await platformApi({ client });
    const behindProxy = await platformApi({ client }, true);
    const key = await customerKey({ ipAllowlist: ['203.0.113.7'] });
    const forwarded = { 'x-forwarded-for': '203.0.113.7' };

    const refused = await call(direct, '/v1/predict', { key: key.secret, body: {}, headers: forwarded });
    const admitted = await call(behindProxy, '/v1/predict', { key: key.secret, body: {}, headers: forwarded });

    expectMiddlewareRefused(refused, 403, 'FORBIDDEN_IP');
    expect(admitted.status).toBe(200);
  });
});

describe('key sources', () => {
  it('ignores a key in the query string unless keyFrom.query names the parameter', async () => {
    const { client, verifyCalls } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey();

    const answer = await call(url, `/v1/items/1?api_key=${key.secret}`);

    expectMiddlewareRefused(answer, 401, 'UNAUTHENTICATED');
    expect(verifyCalls).not.toHaveBeenCalled();
  });

  it('reads the key from the named query parameter when keyFrom.query is set, headers still working', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client, keyFrom: { query: 'api_key' } });
    const key = await customerKey();

    const fromQuery = await call(url, `/v1/items/1?api_key=${key.secret}`);
    const fromHeader = await call(url, '/v1/items/1', { key: key.secret });
    const otherParameter = await call(url, `/v1/items/1?key=${key.secret}`);

    expect([fromQuery.status, fromHeader.status]).toEqual([200, 200]);
    expect(fromQuery.body.keyward.keyId).toBe(key.id);
    expectMiddlewareRefused(otherParameter, 401, 'UNAUTHENTICATED');
  });

  it('ignores the headers when keyFrom.header is false', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client, keyFrom: { header: false, query: 'api_key' } });
    const key = await customerKey();

    const fromHeader = await call(url, '/v1/items/1', { key: key.secret });
    const fromQuery = await call(url, `/v1/items/1?api_key=${key.secret}`);

    expectMiddlewareRefused(fromHeader, 401, 'UNAUTHENTICATED');
    expect(fromHeader.body.error.message).toContain('api_key');
    expect(fromQuery.status).toBe(200);
  });

  it('refuses options that leave no source for the key, or a cost that is not a whole number from 1', () => {
    const { client } = serviceClient();
    expect(() => keyward({ client, keyFrom: { header: false } })).toThrow(/keyFrom/);
    expect(() => keyward({ client, cost: 0 })).toThrow(/cost/);
    expect(() => keyward({ client, cost: 1.5 })).toThrow(/cost/);
    expect(() => keyward({ client, cache: { ttlMs: 0 } })).toThrow(/ttlMs/);
  });
});

describe('refusals', () => {
  it('refuses a request without a key with 401 UNAUTHENTICATED and WWW-Authenticate, without asking keyward', async () => {
    const { client, verifyCalls } = serviceClient();
    const url = await platformApi({ client });

    const answer = await predict(url);
    const emptyBearer = await call(url, '/v1/predict', { body: {}, headers: { authorization: 'Bearer ' } });
    const basic = await call(url, '/v1/predict', { body: {}, headers: { authorization: 'Basic dXNlcjpwYXNz' } });

    expectMiddlewareRefused(answer, 401, 'UNAUTHENTICATED');
    expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expectMiddlewareRefused(emptyBearer, 401, 'UNAUTHENTICATED');
    expectMiddlewareRefused(basic, 401, 'UNAUTHENTICATED');
    expect(verifyCalls).not.toHaveBeenCalled();
  });

  it('reads the key as keyward does: an Authorization header that is not a Bearer token is refused even beside an X-API-Key', async () => {
    const { client, verifyCalls } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey();

    const answer = await call(url, '/v1/predict', { key: key.secret, via: 'x-api-key', body: {}, headers: { authorization: 'Basic dXNlcjpwYXNz' } });

    expectMiddlewareRefused(answer, 401, 'UNAUTHENTICATED');
    expect(answer.body.error.message).toMatch(/Authorization header must be "Bearer/);
    expect(verifyCalls).not.toHaveBeenCalled();
  });

  it('refuses an unknown or malformed key with 401 INVALID_API_KEY', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey();
    const tampered = key.secret.slice(0, -1) + (key.secret.endsWith('a') ? 'b' : 'a');

    const malformed = await predict(url, 'not-a-key');
    const wrongChecksum = await predict(url, tampered);

    expectMiddlewareRefused(malformed, 401, 'INVALID_API_KEY');
    expectMiddlewareRefused(wrongChecksum, 401, 'INVALID_API_KEY');
    expect(malformed.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('refuses a revoked key with 401 KEY_REVOKED', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey();
    expect((await predict(url, key.secret)).status).toBe(200);

    await keywardData('mutation($id: ID!) { revokeApiKey(id: $id, reason: "leaked") { status } }', { id: key.id });

    expectMiddlewareRefused(await predict(url, key.secret), 401, 'KEY_REVOKED');
  });

  it('refuses a disabled key with 401 KEY_DISABLED', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey();
    await keywardData('mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { status } }', { id: key.id });

    expectMiddlewareRefused(await predict(url, key.secret), 401, 'KEY_DISABLED');
  });

  it('refuses an expired key with 401 KEY_EXPIRED', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey({ expiresAt: new Date(server.clock.now().getTime() + 3600_000).toISOString() });
    expect((await predict(url, key.secret)).status).toBe(200);

    server.clock.advance(2 * 3600_000);
    try {
      expectMiddlewareRefused(await predict(url, key.secret), 401, 'KEY_EXPIRED');
    } finally {
      server.clock.advance(-2 * 3600_000);
    }
  });

  it('refuses a key without a required scope with 403 INSUFFICIENT_SCOPE naming the scope', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client, requiredScopes: ['inference:run', 'inference:fine-tune'] });
    const key = await customerKey({ scopes: ['inference:run'] });

    const answer = await predict(url, key.secret);

    expectMiddlewareRefused(answer, 403, 'INSUFFICIENT_SCOPE');
    expect(answer.body.error.message).toContain('inference:fine-tune');
    expect(answer.headers.get('www-authenticate')).toBeNull();
  });

  it('refuses a key of a suspended organization with 403 ORGANIZATION_SUSPENDED', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey();
    await keywardData('mutation($id: ID!) { setOrganizationStatus(id: $id, status: SUSPENDED) { status } }', { id: key.organizationId });

    expectMiddlewareRefused(await predict(url, key.secret), 403, 'ORGANIZATION_SUSPENDED');
  });

  it('answers 429 RATE_LIMITED with Retry-After and X-RateLimit-* once a window is used up', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey({ rateLimits: [{ name: 'burst', limit: 2, windowSeconds: 60 }] });
    server.clock.advance(15_000);
    try {
      const first = server.clock.now().getTime();
      expect((await predict(url, key.secret)).status).toBe(200);
      server.clock.advance(20_000);
      expect((await predict(url, key.secret)).status).toBe(200);

      const answer = await predict(url, key.secret);

      // The first call's unit frees up 60 s after it, 40 s from now.
      expectMiddlewareRefused(answer, 429, 'RATE_LIMITED');
      expect(answer.headers.get('retry-after')).toBe('40');
      expect([answer.headers.get('x-ratelimit-limit'), answer.headers.get('x-ratelimit-remaining'), answer.headers.get('x-ratelimit-reset')])
        .toEqual(['2', '0', epochSeconds(first + 60_000)]);
    } finally {
      server.clock.advance(-35_000);
    }
  });

  it('answers 429 QUOTA_EXCEEDED with Retry-After until the quota period resets', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey({ quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1 }] });
    const now = server.clock.now().getTime();
    const midnight = (Math.floor(now / 86_400_000) + 1) * 86_400_000;
    expect((await predict(url, key.secret)).status).toBe(200);

    const answer = await predict(url, key.secret);

    expectMiddlewareRefused(answer, 429, 'QUOTA_EXCEEDED');
    expect(answer.headers.get('retry-after')).toBe(String(Math.ceil((midnight - now) / 1000)));
    // The refused request took nothing from the rate limits: the first call's unit only.
    expect([answer.headers.get('x-ratelimit-limit'), answer.headers.get('x-ratelimit-remaining')]).toEqual(['60', '59']);
  });

  it('answers 429 QUOTA_EXCEEDED without Retry-After when the cost is above maxCostPerRequest (waiting does not help)', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client, cost: 10 });
    const key = await customerKey({ maxCostPerRequest: 5 });

    const answer = await predict(url, key.secret);

    expectMiddlewareRefused(answer, 429, 'QUOTA_EXCEEDED');
    expect(answer.headers.get('retry-after')).toBeNull();
  });

  it('answers 402 NO_ACTIVE_SESSION when requireSession is set and the organization has no active session', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client, requireSession: true });
    const key = await customerKey();

    expectMiddlewareRefused(await predict(url, key.secret), 402, 'NO_ACTIVE_SESSION');
  });

  it('records no usage for a refused request', async () => {
    const { client, recordCalls } = serviceClient();
    const url = await platformApi({ client, requiredScopes: ['inference:admin'] });
    const key = await customerKey();

    expectMiddlewareRefused(await predict(url, key.secret, { tokens: 5 }), 403, 'INSUFFICIENT_SCOPE');
    await new Promise((resolve) => setTimeout(resolve, 200));

    expect(recordCalls).not.toHaveBeenCalled();
    expect((await usageOf(key.id)).tokens).toBe(0);
  });
});

describe('usage recording', () => {
  it('records usage after the response with the status, latency, tokens and operation', async () => {
    const { client, recordCalls } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey();

    const answer = await predict(url, key.secret, { tokens: 7, delayMs: 40 });

    expect(answer.status).toBe(200);
    const usage = await eventually(() => usageOf(key.id), (summary) => summary.tokens > 0);
    const bucket = usage.byOperation.find((entry) => entry.key === 'POST /v1/predict');
    expect(bucket).toMatchObject({ tokens: 7, errors: 0 });
    // The verification and the recorded usage are one request, not two.
    expect(usage.requests).toBe(1);
    expect(bucket!.requests).toBe(1);
    expect(bucket!.avgLatencyMs).toBeGreaterThanOrEqual(40);
    expect(recordCalls).toHaveBeenCalledTimes(1);
    expect(recordCalls.mock.calls[0][0]).toEqual({
      apiKeyId: key.id,
      sessionId: null,
      operation: 'POST /v1/predict',
      statusCode: 200,
      latencyMs: expect.any(Number),
      tokens: 7,
      idempotencyKey: expect.stringMatching(UUID),
    });
    expect(recordCalls.mock.calls[0][0].latencyMs).toBeGreaterThanOrEqual(40);
  });

  it("records a handler's error status as an error, and estimates tokens from keywardCharacters", async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey();

    expect((await predict(url, key.secret, { characters: 10, status: 500 })).status).toBe(500);

    const usage = await eventually(() => usageOf(key.id), (summary) => summary.tokens > 0);
    expect(usage.byOperation.find((entry) => entry.key === 'POST /v1/predict')).toMatchObject({ tokens: 3, errors: 1 });
  });

  it('uses a new idempotency key per request, so two identical requests are both recorded', async () => {
    const { client, recordCalls } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey();

    await predict(url, key.secret, { tokens: 4 });
    await predict(url, key.secret, { tokens: 4 });

    const usage = await eventually(() => usageOf(key.id), (summary) => summary.tokens >= 8);
    expect(usage.tokens).toBe(8);
    const [first, second] = recordCalls.mock.calls.map(([input]) => input.idempotencyKey);
    expect(first).not.toBe(second);
  });

  it("charges the organization's active session and puts it on req.keyward when requireSession is set", async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client, requireSession: true });
    const key = await customerKey({ scopes: ['inference:run', 'sessions:write'] });
    await keywardData('mutation($input: AddSessionCreditsInput!) { addSessionCredits(input: $input) { available } }',
      { input: { organizationId: key.organizationId, sessions: 1, idempotencyKey: `credits-${key.id}` } });
    const session = (await keywardData('mutation { createSession(input: { tokenLimit: 1000 }) { id } }', {}, key.secret)).createSession;

    const answer = await predict(url, key.secret, { tokens: 11 });

    expect(answer.status).toBe(200);
    expect(answer.body.keyward.session).toMatchObject({ id: session.id, status: 'ACTIVE' });
    const charged = await eventually(async () => (await keywardData(SESSION, { id: session.id })).session, (state) => state.tokensUsed > 0);
    expect(charged.tokensUsed).toBe(11);
  });

  it('records nothing when recordUsage is false', async () => {
    const { client, recordCalls } = serviceClient();
    const url = await platformApi({ client, recordUsage: false });
    const key = await customerKey();

    expect((await predict(url, key.secret, { tokens: 9 })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 200));

    expect(recordCalls).not.toHaveBeenCalled();
    expect((await usageOf(key.id)).tokens).toBe(0);
  });

  it('reports a failed usage record to onError and keeps serving', async () => {
    // A service key that may verify but not record usage.
    const verifyOnly = await createKey(server, { organizationId: server.platformOrganizationId, scopes: ['keys:verify'], rateLimits: [] });
    const { client } = serviceClient(verifyOnly.secret);
    const errors: Array<{ error: unknown; phase: string }> = [];
    const url = await platformApi({ client, onError: (error, context: KeywardErrorContext) => { errors.push({ error, phase: context.phase }); } });
    const key = await customerKey();

    const first = await predict(url, key.secret, { tokens: 2 });
    await eventually(async () => errors.length, (count) => count > 0);
    const second = await predict(url, key.secret, { tokens: 2 });

    expect([first.status, second.status]).toEqual([200, 200]);
    expect(errors[0].phase).toBe('recordUsage');
    expect(errors[0].error).toBeInstanceOf(KeywardClientError);
    expect((errors[0].error as KeywardClientError).code).toBe('INSUFFICIENT_SCOPE');
  });
});

describe('local cache of valid results', () => {
  it('asks keyward for every request by default, so a revocation takes effect at once', async () => {
    const { client, verifyCalls } = serviceClient();
    const url = await platformApi({ client });
    const key = await customerKey();

    expect((await predict(url, key.secret)).body.keyward.cached).toBe(false);
    expect((await predict(url, key.secret)).body.keyward.cached).toBe(false);
    await keywardData('mutation($id: ID!) { revokeApiKey(id: $id, reason: "leaked") { status } }', { id: key.id });

    expectMiddlewareRefused(await predict(url, key.secret), 401, 'KEY_REVOKED');
    expect(verifyCalls).toHaveBeenCalledTimes(3);
  });

  it('serves a repeated key from the cache within ttlMs without asking keyward or counting it, then asks again', async () => {
    const { client, verifyCalls, recordCalls } = serviceClient();
    const url = await platformApi({ client, cache: { ttlMs: 5_000 } });
    const key = await customerKey();

    const first = await predict(url, key.secret);
    const second = await predict(url, key.secret, { tokens: 3 });

    expect([first.status, second.status]).toEqual([200, 200]);
    expect([first.body.keyward.cached, second.body.keyward.cached]).toEqual([false, true]);
    expect(second.body.keyward.keyId).toBe(key.id);
    expect(verifyCalls).toHaveBeenCalledTimes(1);
    // Cached hits take nothing from the rate limits and carry no X-RateLimit headers.
    expect(await remaining(key.id)).toEqual({ 'per-minute': 59, 'per-hour': 999 });
    expect(second.headers.get('x-ratelimit-remaining')).toBeNull();
    // Their usage is still recorded.
    await eventually(async () => recordCalls.mock.calls.length, (count) => count >= 2);
    expect(recordCalls.mock.calls.map(([input]) => input.tokens)).toEqual([undefined, 3]);

    server.clock.advance(5_001);
    try {
      const third = await predict(url, key.secret);
      expect(third.body.keyward.cached).toBe(false);
      expect(verifyCalls).toHaveBeenCalledTimes(2);
    } finally {
      server.clock.advance(-5_001);
    }
  });

  it('keeps admitting a revoked key from the cache until its entry expires (the documented trade-off)', async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client, cache: { ttlMs: 10_000 } });
    const key = await customerKey();
    expect((await predict(url, key.secret)).status).toBe(200);
    await keywardData('mutation($id: ID!) { revokeApiKey(id: $id, reason: "leaked") { status } }', { id: key.id });

    const withinTtl = await predict(url, key.secret);
    server.clock.advance(10_000);
    try {
      const afterTtl = await predict(url, key.secret);

      expect(withinTtl.status).toBe(200);
      expect(withinTtl.body.keyward.cached).toBe(true);
      expectMiddlewareRefused(afterTtl, 401, 'KEY_REVOKED');
    } finally {
      server.clock.advance(-10_000);
    }
  });

  it('never caches a refusal', async () => {
    const { client, verifyCalls } = serviceClient();
    const url = await platformApi({ client, requiredScopes: ['inference:admin'], cache: { ttlMs: 60_000 } });
    const key = await customerKey();

    expectMiddlewareRefused(await predict(url, key.secret), 403, 'INSUFFICIENT_SCOPE');
    expectMiddlewareRefused(await predict(url, key.secret), 403, 'INSUFFICIENT_SCOPE');
    expect(verifyCalls).toHaveBeenCalledTimes(2);
  });

  it("keeps entries per client address and cost, so a cached key still obeys its ipAllowlist", async () => {
    const { client, verifyCalls } = serviceClient();
    const url = await platformApi({ client, cache: { ttlMs: 60_000 }, cost: (req) => Number(req.get('x-units') ?? 1) }, true);
    const key = await customerKey({ ipAllowlist: ['203.0.113.7'] });
    const allowed = { 'x-forwarded-for': '203.0.113.7' };

    expect((await call(url, '/v1/predict', { key: key.secret, body: {}, headers: allowed })).status).toBe(200);
    expect((await call(url, '/v1/predict', { key: key.secret, body: {}, headers: allowed })).body.keyward.cached).toBe(true);
    const otherAddress = await call(url, '/v1/predict', { key: key.secret, body: {}, headers: { 'x-forwarded-for': '198.51.100.1' } });
    const otherCost = await call(url, '/v1/predict', { key: key.secret, body: {}, headers: { ...allowed, 'x-units': '3' } });

    expectMiddlewareRefused(otherAddress, 403, 'FORBIDDEN_IP');
    expect(otherCost.status).toBe(200);
    expect(otherCost.body.keyward.cached).toBe(false);
    expect(verifyCalls).toHaveBeenCalledTimes(3);
  });

  it("never serves a cached entry past the key's expiresAt", async () => {
    const { client } = serviceClient();
    const url = await platformApi({ client, cache: { ttlMs: 3600_000 } });
    const key = await customerKey({ expiresAt: new Date(server.clock.now().getTime() + 60_000).toISOString() });
    expect((await predict(url, key.secret)).status).toBe(200);

    server.clock.advance(61_000);
    try {
      expectMiddlewareRefused(await predict(url, key.secret), 401, 'KEY_EXPIRED');
    } finally {
      server.clock.advance(-61_000);
    }
  });
});

describe('when keyward cannot be reached', () => {
  it('fails closed by default: 503 UNAVAILABLE, the handler never runs, onError hears of it', async () => {
    const { client } = serviceClient(service.secret, await closedPortUrl());
    const errors: Array<{ error: unknown; phase: string }> = [];
    const url = await platformApi({ client, onError: (error, context) => { errors.push({ error, phase: context.phase }); } });
    const key = await customerKey();

    const answer = await predict(url, key.secret);

    expectMiddlewareRefused(answer, 503, 'UNAVAILABLE');
    expect(answer.body.keyward).toBeUndefined();
    expect(errors).toHaveLength(1);
    expect(errors[0].phase).toBe('verify');
    expect((errors[0].error as KeywardClientError).code).toBe('NETWORK_ERROR');
  });

  it('fails open when asked: the handler runs with req.keyward = { valid: false, code: UNAVAILABLE, failOpen: true } and no usage is recorded', async () => {
    const { client, recordCalls } = serviceClient(service.secret, await closedPortUrl());
    const url = await platformApi({ client, onUnavailable: 'fail-open' });
    const key = await customerKey();

    const answer = await predict(url, key.secret, { tokens: 5 });

    expect(answer.status).toBe(200);
    expect(answer.body.keyward).toEqual({ valid: false, code: 'UNAVAILABLE', failOpen: true, operation: 'POST /v1/predict' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(recordCalls).not.toHaveBeenCalled();
  });

  it('never fails open when keyward refuses the service key itself: 500 INTERNAL_SERVER_ERROR', async () => {
    const noVerify = await createKey(server, { organizationId: server.platformOrganizationId, scopes: ['usage:write'], rateLimits: [] });
    const { client } = serviceClient(noVerify.secret);
    const errors: unknown[] = [];
    const url = await platformApi({ client, onUnavailable: 'fail-open', onError: (error) => { errors.push(error); } });
    const key = await customerKey();

    const answer = await predict(url, key.secret);

    expectMiddlewareRefused(answer, 500, 'INTERNAL_SERVER_ERROR');
    expect(answer.body.keyward).toBeUndefined();
    expect((errors[0] as KeywardClientError).code).toBe('INSUFFICIENT_SCOPE');
  });
});
