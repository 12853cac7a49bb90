import http from 'node:http';
import net from 'node:net';
import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, createTenant, uniqueName } from './helpers/fixtures';
import {
  KeywardClient,
  KeywardClientError,
  type ApiKeyFieldsFragment,
  type OrganizationFieldsFragment,
  type QuotaFieldsFragment,
  type RateLimitStateFieldsFragment,
  type SessionFieldsFragment,
  type UsageBucketFieldsFragment,
} from '@keyward/client';
import { Topic } from '../src/live/topics';

/**
 * The typed client (@keyward/client, packages/client) against a real server: every method's happy path,
 * errors as KeywardClientError with the server's code and HTTP status, configuration from the
 * environment, retries (network errors and 503 only, through small local servers), and
 * subscriptions over graphql-ws (snapshot and updates, ending by `break`, a refused key, close()).
 */

/** Settles `promise` or fails after `ms` with `what` (so a missing event fails the test instead of hanging it). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The rejection of `promise` as a KeywardClientError (fails if it resolves or rejects with something else). */
async function keywardError(promise: Promise<unknown>): Promise<KeywardClientError> {
  const outcome = await promise.then((value) => ({ value }), (error: unknown) => ({ error }));
  if (!('error' in outcome)) throw new Error(`expected a KeywardClientError, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(KeywardClientError);
  return outcome.error as KeywardClientError;
}

function startOfNextMonth(now: Date): string {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)).toISOString();
}

interface LocalServer {
  url: string;
  /** Requests (or connections, for the TCP server) seen so far. */
  count: number;
  close(): Promise<void>;
}

async function listen(server: http.Server | net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/** A TCP server that accepts each connection and destroys it at once: every attempt is a network error. */
async function startDroppingServer(): Promise<LocalServer> {
  const sockets = new Set<net.Socket>();
  const state = { count: 0 };
  const server = net.createServer((socket) => {
    state.count += 1;
    sockets.add(socket);
    socket.destroy();
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    get count() { return state.count; },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

type ProxyAnswer = { status: number; body: unknown } | 'forward';

/**
 * An HTTP proxy in front of keyward: `decide(n)` (n = 1 for the first request) either answers
 * itself or forwards the request to keyward and relays its answer.
 */
async function startProxy(target: string, decide: (n: number) => ProxyAnswer): Promise<LocalServer> {
  const state = { count: 0 };
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      state.count += 1;
      const answer = decide(state.count);
      if (answer !== 'forward') {
        response.writeHead(answer.status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(answer.body));
        return;
      }
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (typeof request.headers.authorization === 'string') headers.authorization = request.headers.authorization;
      fetch(target, { method: 'POST', headers, body: Buffer.concat(chunks) })
        .then(async (upstream) => {
          const body = await upstream.text();
          response.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
          response.end(body);
        })
        .catch(() => {
          response.writeHead(502);
          response.end();
        });
    });
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    get count() { return state.count; },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const UNAVAILABLE = { status: 503, body: { errors: [{ message: 'database is down', extensions: { code: 'UNAVAILABLE' } }] } };

describe('KeywardClient', () => {
  let server: TestServer;
  let clients: KeywardClient[] = [];

  beforeAll(async () => { server = await startTestServer(); });
  afterEach(async () => {
    await Promise.all(clients.map((client) => client.close()));
    clients = [];
  });
  afterAll(async () => { await server.close(); });

  /** A client on the test server (closed after each test). */
  function client(apiKey: string = server.adminKey, options: ConstructorParameters<typeof KeywardClient>[0] = {}): KeywardClient {
    const created = new KeywardClient({ url: server.url, apiKey, ...options });
    clients.push(created);
    return created;
  }

  describe('typed calls', () => {
    it("returns the caller's key, organization and scopes from viewer", async () => {
      const { organizationId, key } = await createTenant(server);
      const viewer = await client(key.secret).viewer();
      const apiKey: ApiKeyFieldsFragment = viewer.apiKey;
      const organization: OrganizationFieldsFragment = viewer.organization;
      expect(apiKey.id).toBe(key.id);
      expect(apiKey.hint).toBe(key.apiKey.hint);
      expect(organization.id).toBe(organizationId);
      expect(viewer.scopes).toEqual(['*']);
    });

    it('creates, reads, lists, renames, suspends and re-activates an organization', async () => {
      const admin = client();
      const name = uniqueName();
      const created = await admin.createOrganization({ name, maxKeys: 5, quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 500 }] });
      expect(created).toMatchObject({ name, status: 'ACTIVE', maxKeys: 5, sessionBalance: 0 });
      expect(created.id).toMatch(/^org_/);
      expect(created.quotas).toEqual([{
        organizationId: created.id, apiKeyId: null, meter: 'REQUESTS', period: 'MONTH', limit: 500, used: 0, remaining: 500, percentUsed: 0,
        resetsAt: startOfNextMonth(server.clock.now()),
      }]);

      expect(await admin.organization(created.id)).toEqual(created);
      const page = await admin.organizations({ first: 500 });
      expect(page.nodes.find((organization) => organization.id === created.id)).toEqual(created);
      expect(page.totalCount).toBeGreaterThanOrEqual(page.nodes.length);

      const renamed = await admin.updateOrganization(created.id, { name: `${name} renamed` });
      expect(renamed).toEqual({ ...created, name: `${name} renamed` });
      expect((await admin.setOrganizationStatus(created.id, 'SUSPENDED')).status).toBe('SUSPENDED');
      expect((await admin.setOrganizationStatus(created.id, 'ACTIVE')).status).toBe('ACTIVE');
    });

    it('creates, reads, lists, updates, disables, enables, rotates, revokes and deletes keys', async () => {
      const { organizationId, key: tenant } = await createTenant(server);
      const keys = client(tenant.secret);

      const created = await keys.createApiKey({ name: 'ci', preset: 'WRITE', environment: 'TEST', ownerEmail: 'ci@example.com', meta: { team: 'ml' } });
      expect(created.secret).toMatch(/^kw_test_[0-9A-Za-z]{38}$/);
      const apiKey: ApiKeyFieldsFragment = created.apiKey;
      expect(apiKey).toMatchObject({
        organizationId, name: 'ci', environment: 'TEST', status: 'ACTIVE', ownerEmail: 'ci@example.com', meta: { team: 'ml' },
        hint: `${created.secret.slice(0, 8)}…${created.secret.slice(-4)}`,
        scopes: ['audit:read', 'keys:read', 'keys:write', 'org:read', 'org:write', 'sessions:read', 'sessions:write', 'usage:read', 'usage:write', 'webhooks:read', 'webhooks:write'],
        rateLimits: [{ name: 'per-minute', limit: 60, windowSeconds: 60 }, { name: 'per-hour', limit: 1000, windowSeconds: 3600 }],
        revokedAt: null, rotatedFromId: null, requestCount: 0,
      });

      expect(await keys.apiKey(apiKey.id)).toEqual(apiKey);
      const listed = await keys.apiKeys({ filter: { organizationId, environment: 'TEST' } });
      expect(listed.nodes.map((node) => node.id)).toEqual([apiKey.id]);
      expect(listed.totalCount).toBe(1);
      expect(listed.pageInfo.hasNextPage).toBe(false);

      const updated = await keys.updateApiKey(apiKey.id, { name: 'ci-2', maxCostPerRequest: 10 });
      expect(updated).toMatchObject({ id: apiKey.id, name: 'ci-2', maxCostPerRequest: 10 });
      expect((await keys.setApiKeyEnabled(apiKey.id, false)).status).toBe('DISABLED');
      expect((await keys.setApiKeyEnabled(apiKey.id, true)).status).toBe('ACTIVE');

      const rotated = await keys.rotateApiKey(apiKey.id, 60);
      expect(rotated.secret).toMatch(/^kw_test_/);
      expect(rotated.secret).not.toBe(created.secret);
      expect(rotated.apiKey).toMatchObject({ name: 'ci-2', rotatedFromId: apiKey.id, status: 'ACTIVE' });
      expect(rotated.apiKey.id).not.toBe(apiKey.id);
      expect(rotated.previousKeyExpiresAt).toBe(new Date(server.clock.now().getTime() + 60_000).toISOString());

      const revoked = await keys.revokeApiKey(rotated.apiKey.id, 'leaked');
      expect(revoked).toMatchObject({ id: rotated.apiKey.id, status: 'REVOKED', revokedReason: 'leaked', revokedBy: tenant.id, revokedAt: server.clock.now().toISOString() });

      expect(await keys.deleteApiKey(apiKey.id)).toBe(true);
      const gone = await keywardError(keys.apiKey(apiKey.id));
      expect({ code: gone.code, status: gone.status }).toEqual({ code: 'NOT_FOUND', status: 404 });
    });

    it('verifies a key, records its usage and reads the quotas both counted on', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'TOKENS', period: 'DAY', limit: 1000 }] });
      const key = await createKey(server, { organizationId: organization.id, preset: 'INFERENCE', quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 10 }] });
      const service = client();

      const verified = await service.verifyKey({ key: key.secret, requiredScopes: ['inference:run'], operation: 'POST /v1/chat' });
      expect(verified).toMatchObject({ valid: true, code: 'VALID', keyId: key.id, organizationId: organization.id, environment: 'LIVE', scopes: ['inference:*', 'usage:read'], session: null });
      expect(verified.rateLimits.map((state: RateLimitStateFieldsFragment) => [state.name, state.remaining])).toEqual([['per-minute', 59], ['per-hour', 999]]);
      expect(verified.quotas.find((quota) => quota.apiKeyId === key.id)).toMatchObject({ meter: 'REQUESTS', period: 'MONTH', used: 1, remaining: 9 });

      const refused = await service.verifyKey({ key: key.secret, requiredScopes: ['keys:write'] });
      expect(refused).toMatchObject({ valid: false, code: 'INSUFFICIENT_SCOPE' });

      const recorded = await service.recordUsage({ apiKeyId: key.id, operation: 'POST /v1/chat', tokens: 250, costUsd: 0.5, statusCode: 200, latencyMs: 12, idempotencyKey: uniqueName('usage') });
      expect(recorded.recorded).toBe(true);
      expect(recorded.session).toBeNull();
      const tokens: QuotaFieldsFragment | undefined = recorded.quotas.find((quota) => quota.meter === 'TOKENS');
      expect(tokens).toMatchObject({ organizationId: organization.id, apiKeyId: null, period: 'DAY', limit: 1000, used: 250, remaining: 750, percentUsed: 25 });

      expect(await service.quotas({ organizationId: organization.id })).toEqual([tokens]);
      expect(await service.quotas({ apiKeyId: key.id })).toEqual([expect.objectContaining({ apiKeyId: key.id, meter: 'REQUESTS', used: 1, remaining: 9 })]);
    });

    it('credits sessions, starts one, reads it as the current session, charges it and terminates it', async () => {
      const { organizationId, key } = await createTenant(server);
      const tenant = client(key.secret);
      const credited = await client().addSessionCredits({ organizationId, sessions: 2, idempotencyKey: uniqueName('credits') });
      expect(credited).toEqual({ organizationId, available: 2, purchased: 2, used: 0 });

      const session: SessionFieldsFragment = await tenant.createSession({ tokenLimit: 1000, ttlSeconds: 3600 });
      expect(session).toMatchObject({
        organizationId, apiKeyId: key.id, status: 'ACTIVE', tokenLimit: 1000, tokensUsed: 0, tokensRemaining: 1000, priceUsd: 1,
        startedAt: server.clock.now().toISOString(), expiresAt: new Date(server.clock.now().getTime() + 3_600_000).toISOString(), endedAt: null,
      });
      expect(await tenant.sessionBalance()).toEqual({ organizationId, available: 1, purchased: 2, used: 1 });
      expect(await tenant.currentSession()).toEqual(session);
      expect(await tenant.session(session.id)).toEqual(session);

      const charged = await tenant.recordUsage({ apiKeyId: key.id, sessionId: session.id, operation: 'chat', tokens: 300, idempotencyKey: uniqueName('charge') });
      expect(charged.session).toMatchObject({ id: session.id, tokensUsed: 300, tokensRemaining: 700, status: 'ACTIVE' });
      const active = await tenant.sessions({ status: 'ACTIVE' });
      expect(active.nodes.map((node) => [node.id, node.tokensUsed])).toEqual([[session.id, 300]]);

      const terminated = await tenant.terminateSession(session.id);
      expect(terminated).toMatchObject({ id: session.id, status: 'TERMINATED', endedAt: server.clock.now().toISOString() });
      expect(await tenant.currentSession()).toBeNull();
    });

    it('summarises usage in total and by operation, key and day', async () => {
      const { organizationId, key } = await createTenant(server);
      const tenant = client(key.secret);
      await tenant.recordUsage({ apiKeyId: key.id, operation: 'summarise', tokens: 40, costUsd: 0.25, statusCode: 200, latencyMs: 10, idempotencyKey: uniqueName('u') });
      await tenant.recordUsage({ apiKeyId: key.id, operation: 'summarise', tokens: 60, costUsd: 0.5, statusCode: 500, latencyMs: 30, idempotencyKey: uniqueName('u') });
      await server.app.usageBuffer.flush();

      const summary = await tenant.usage({ organizationId });
      const summarise: UsageBucketFieldsFragment | undefined = summary.byOperation.find((bucket) => bucket.key === 'summarise');
      expect(summarise).toEqual({ key: 'summarise', requests: 2, errors: 1, tokens: 100, costUsd: 0.75, avgLatencyMs: 20 });
      // The two recordUsage calls are also metered as GraphQL operations of the same key.
      expect(summary.byOperation.find((bucket) => bucket.key === 'RecordUsage')).toMatchObject({ requests: 2, errors: 0, tokens: 0 });
      expect(summary.byApiKey).toEqual([expect.objectContaining({ key: key.id, requests: 4, errors: 1, tokens: 100, costUsd: 0.75 })]);
      expect(summary).toMatchObject({ requests: 4, errors: 1, tokens: 100, costUsd: 0.75 });
      expect(summary.byDay.map((bucket) => [bucket.key, bucket.requests])).toEqual([[server.clock.now().toISOString().slice(0, 10), 4]]);
    });

    it("reads a key's rate-limit status and refusal log, and resets its window", async () => {
      const { organizationId } = await createTenant(server);
      const key = await createKey(server, { organizationId, rateLimits: [{ name: 'burst', limit: 2, windowSeconds: 60 }] });
      const admin = client();
      for (let i = 0; i < 2; i++) expect((await admin.verifyKey({ key: key.secret })).code).toBe('VALID');
      const refused = await admin.verifyKey({ key: key.secret, operation: 'POST /v1/predict' });
      expect(refused).toMatchObject({ valid: false, code: 'RATE_LIMITED' });

      // Both units were taken at the current clock time: the first frees up a minute later.
      const windowEnd = new Date(server.clock.now().getTime() + 60_000).toISOString();
      const status: RateLimitStateFieldsFragment[] = await admin.rateLimitStatus(key.id);
      expect(status).toEqual([{ apiKeyId: key.id, name: 'burst', limit: 2, remaining: 0, windowSeconds: 60, resetAt: windowEnd }]);

      await server.app.usageBuffer.flush();
      const log = await admin.rateLimitLog(key.id, 10);
      expect(log).toEqual([expect.objectContaining({ apiKeyId: key.id, name: 'burst', limit: 2, operation: 'POST /v1/predict' })]);

      expect(await admin.resetRateLimit(key.id, 'burst')).toEqual([{ ...status[0], remaining: 2 }]);
      expect((await admin.verifyKey({ key: key.secret })).code).toBe('VALID');
    });

    it("reads the organization's audit log, newest first, with the acting key", async () => {
      const { organizationId, key: tenant } = await createTenant(server);
      const keys = client(tenant.secret);
      const created = await keys.createApiKey({ name: 'audited' });
      await keys.revokeApiKey(created.apiKey.id, 'no longer needed');

      const log = await keys.auditLog({ organizationId, first: 2 });
      expect(log.nodes.map((entry) => [entry.action, entry.targetType, entry.targetId, entry.actorKeyId, entry.organizationId])).toEqual([
        ['api_key.revoke', 'api_key', created.apiKey.id, tenant.id, organizationId],
        ['api_key.create', 'api_key', created.apiKey.id, tenant.id, organizationId],
      ]);
      expect(log.nodes[0].id).toMatch(/^aud_/);
      expect(log.pageInfo.hasNextPage).toBe(true);
      expect(JSON.stringify(log.nodes)).not.toContain(created.secret);
    });

    it('asks for a wallet challenge without a key', async () => {
      const previous = process.env.KEYWARD_API_KEY;
      delete process.env.KEYWARD_API_KEY;
      try {
        const address = '0x52908400098527886E0F7030069857D2E4169EE7';
        const challenge = await new KeywardClient({ url: server.url }).walletChallenge(address.toLowerCase());
        expect(challenge.message).toContain(`\n${address}\n`);
        expect(challenge.expiresAt).toBe(new Date(server.clock.now().getTime() + 5 * 60_000).toISOString());
        expect(challenge.token.length).toBeGreaterThanOrEqual(32);
      } finally {
        if (previous !== undefined) process.env.KEYWARD_API_KEY = previous;
      }
    });
  });

  describe('errors', () => {
    it('throws KeywardClientError NOT_FOUND with HTTP 404 and the field path for a key id that does not exist', async () => {
      const error = await keywardError(client().apiKey('key_doesnotexist'));
      expect({ name: error.name, code: error.code, status: error.status, path: error.path }).toEqual({ name: 'KeywardClientError', code: 'NOT_FOUND', status: 404, path: ['apiKey'] });
      expect(error.message).toMatch(/not found/i);
    });

    it('throws KeywardClientError KEY_REVOKED with HTTP 401 when the calling key was revoked', async () => {
      const { key } = await createTenant(server);
      await client().revokeApiKey(key.id, 'leaked');
      const error = await keywardError(client(key.secret).viewer());
      expect({ code: error.code, status: error.status }).toEqual({ code: 'KEY_REVOKED', status: 401 });
    });

    it('throws KeywardClientError UNAUTHENTICATED with HTTP 401 when no key is configured', async () => {
      const previous = process.env.KEYWARD_API_KEY;
      delete process.env.KEYWARD_API_KEY;
      try {
        const error = await keywardError(new KeywardClient({ url: server.url }).viewer());
        expect({ code: error.code, status: error.status }).toEqual({ code: 'UNAUTHENTICATED', status: 401 });
      } finally {
        if (previous !== undefined) process.env.KEYWARD_API_KEY = previous;
      }
    });

    it('throws KeywardClientError BAD_USER_INPUT with HTTP 400 naming the field for bad input, and nothing is created', async () => {
      const { organizationId, key } = await createTenant(server);
      const tenant = client(key.secret);
      const error = await keywardError(tenant.createApiKey({ name: '   ' }));
      expect({ code: error.code, status: error.status }).toEqual({ code: 'BAD_USER_INPUT', status: 400 });
      expect(error.message).toContain('name');
      expect((await tenant.apiKeys({ filter: { organizationId } })).nodes.map((node) => node.id)).toEqual([key.id]);
    });
  });

  describe('configuration', () => {
    const saved: Record<string, string | undefined> = {};
    beforeEach(() => {
      saved.KEYWARD_URL = process.env.KEYWARD_URL;
      saved.KEYWARD_API_KEY = process.env.KEYWARD_API_KEY;
    });
    afterEach(() => {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    });

    it('reads KEYWARD_URL and KEYWARD_API_KEY from the environment when they are not given', async () => {
      const { key } = await createTenant(server);
      process.env.KEYWARD_URL = server.url;
      process.env.KEYWARD_API_KEY = key.secret;
      const fromEnvironment = new KeywardClient();
      expect(fromEnvironment.url).toBe(server.url);
      expect((await fromEnvironment.viewer()).apiKey.id).toBe(key.id);
    });

    it('prefers the url and apiKey options over the environment', async () => {
      const { key } = await createTenant(server);
      const { key: other } = await createTenant(server);
      process.env.KEYWARD_URL = 'http://127.0.0.1:1/graphql';
      process.env.KEYWARD_API_KEY = other.secret;
      const explicit = new KeywardClient({ url: server.url, apiKey: key.secret });
      expect(explicit.url).toBe(server.url);
      expect((await explicit.viewer()).apiKey.id).toBe(key.id);
    });

    it('defaults to http://localhost:4000/graphql without KEYWARD_URL', () => {
      delete process.env.KEYWARD_URL;
      expect(new KeywardClient().url).toBe('http://localhost:4000/graphql');
    });
  });

  describe('retries', () => {
    it('gives up with NETWORK_ERROR after 1 + retries attempts when every connection is dropped', async () => {
      const dropping = await startDroppingServer();
      try {
        const started = performance.now();
        const error = await keywardError(new KeywardClient({ url: dropping.url, apiKey: server.adminKey, retries: 2, retryDelayMs: 10 }).viewer());
        const elapsed = performance.now() - started;
        expect({ code: error.code, status: error.status }).toEqual({ code: 'NETWORK_ERROR', status: 0 });
        expect(error.message).toContain(dropping.url);
        expect(dropping.count).toBe(3);
        // Two back-offs: 5..15 ms then 10..30 ms.
        expect(elapsed).toBeGreaterThanOrEqual(15);
        expect(elapsed).toBeLessThan(5_000);
      } finally {
        await dropping.close();
      }
    });

    it('fails with NETWORK_ERROR when nothing listens on the port', async () => {
      const probe = net.createServer();
      const port = await listen(probe);
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      const url = `http://127.0.0.1:${port}/graphql`;
      const started = performance.now();
      const error = await keywardError(new KeywardClient({ url, apiKey: server.adminKey, retries: 2, retryDelayMs: 10 }).viewer());
      expect({ code: error.code, status: error.status }).toEqual({ code: 'NETWORK_ERROR', status: 0 });
      expect(error.message).toContain(url);
      expect(performance.now() - started).toBeGreaterThanOrEqual(15);
    });

    it('retries a 503 answer and succeeds when keyward answers the third attempt', async () => {
      const { key } = await createTenant(server);
      const proxy = await startProxy(server.url, (n) => (n <= 2 ? UNAVAILABLE : 'forward'));
      try {
        const viewer = await new KeywardClient({ url: proxy.url, apiKey: key.secret, retries: 2, retryDelayMs: 10 }).viewer();
        expect(viewer.apiKey.id).toBe(key.id);
        expect(proxy.count).toBe(3);
      } finally {
        await proxy.close();
      }
    });

    it('gives up with UNAVAILABLE and HTTP 503 once the retries are spent', async () => {
      const proxy = await startProxy(server.url, () => UNAVAILABLE);
      try {
        const error = await keywardError(new KeywardClient({ url: proxy.url, apiKey: server.adminKey, retries: 1, retryDelayMs: 10 }).viewer());
        expect({ code: error.code, status: error.status }).toEqual({ code: 'UNAVAILABLE', status: 503 });
        expect(proxy.count).toBe(2);
      } finally {
        await proxy.close();
      }
    });

    it('does not retry a 400 answer', async () => {
      const { key } = await createTenant(server);
      const proxy = await startProxy(server.url, () => 'forward');
      try {
        const error = await keywardError(new KeywardClient({ url: proxy.url, apiKey: key.secret, retries: 3, retryDelayMs: 10 }).createApiKey({ name: '' }));
        expect({ code: error.code, status: error.status }).toEqual({ code: 'BAD_USER_INPUT', status: 400 });
        expect(proxy.count).toBe(1);
      } finally {
        await proxy.close();
      }
    });

    it('does not retry a 429 answer', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [{ name: 'tight', limit: 1, windowSeconds: 60 }] });
      const proxy = await startProxy(server.url, () => 'forward');
      try {
        const limited = new KeywardClient({ url: proxy.url, apiKey: key.secret, retries: 3, retryDelayMs: 10 });
        expect((await limited.viewer()).apiKey.id).toBe(key.id);
        const error = await keywardError(limited.viewer());
        expect({ code: error.code, status: error.status }).toEqual({ code: 'RATE_LIMITED', status: 429 });
        expect(proxy.count).toBe(2);
      } finally {
        await proxy.close();
      }
    });
  });

  describe('subscriptions', () => {
    /**
     * Watches the server's pub/sub for quota events of `subject`: how many listeners were
     * opened and how many were ended (their iterator returned).
     */
    function watchQuotaListeners(subject: string): { opened: number; ended: number; restore(): void } {
      const pubSub = server.app.pubSub;
      const original = pubSub.subscribe.bind(pubSub);
      const counts = { opened: 0, ended: 0 };
      const spy = jest.spyOn(pubSub, 'subscribe').mockImplementation(((topic: Topic, id: string) => {
        const iterable = original(topic, id);
        if (topic !== Topic.QUOTA_CHANGED || id !== subject) return iterable;
        return {
          [Symbol.asyncIterator]() {
            const iterator = iterable[Symbol.asyncIterator]();
            counts.opened += 1;
            return {
              next: () => iterator.next(),
              return: async (value?: unknown) => {
                counts.ended += 1;
                return iterator.return ? iterator.return(value) : { done: true as const, value: undefined };
              },
            };
          },
        };
      }) as typeof pubSub.subscribe);
      return {
        get opened() { return counts.opened; },
        get ended() { return counts.ended; },
        restore: () => spy.mockRestore(),
      };
    }

    async function eventually(predicate: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
      const deadline = performance.now() + timeoutMs;
      while (!predicate()) {
        if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }

    it('subscribeQuotaChanged yields the current quotas, then an update after verifyKey', async () => {
      const { organizationId, key: tenant } = await createTenant(server, { quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 1000 }] });
      const verified = await createKey(server, { organizationId });
      const quotas = client(tenant.secret).subscribeQuotaChanged();

      const snapshot = await within(quotas.next(), 3_000, 'the snapshot');
      const expected: QuotaFieldsFragment = {
        organizationId, apiKeyId: null, meter: 'REQUESTS', period: 'MONTH', limit: 1000, used: 0, remaining: 1000, percentUsed: 0,
        resetsAt: startOfNextMonth(server.clock.now()),
      };
      expect(snapshot).toEqual({ done: false, value: expected });

      expect((await client().verifyKey({ key: verified.secret })).valid).toBe(true);
      const update = await within(quotas.next(), 3_000, 'the update');
      expect(update).toEqual({ done: false, value: { ...expected, used: 1, remaining: 999, percentUsed: 0.1 } });
      await quotas.return?.();
    });

    it('subscribeApiKeyChanged yields CREATED for a key created in the organization', async () => {
      const { organizationId, key: tenant } = await createTenant(server, { quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 1000 }] });
      const live = client(tenant.secret);
      const changes = live.subscribeApiKeyChanged();
      // A round trip on the same socket: the subscription sent before it is listening once the snapshot arrives.
      const quotas = live.subscribeQuotaChanged();
      await within(quotas.next(), 3_000, 'the quota snapshot');

      const created = await createKey(server, { organizationId, name: 'watched' });
      const event = await within(changes.next(), 3_000, 'the CREATED event');
      expect(event.done).toBe(false);
      expect(event.value).toMatchObject({ type: 'CREATED', at: server.clock.now().toISOString(), apiKey: { id: created.id, organizationId, name: 'watched', status: 'ACTIVE' } });
      await changes.return?.();
      await quotas.return?.();
    });

    it('ends the subscription on the server when the for-await loop is left with break', async () => {
      const { organizationId, key: tenant } = await createTenant(server, { quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 1000 }] });
      const verified = await createKey(server, { organizationId });
      const listeners = watchQuotaListeners(organizationId);
      try {
        const seen: QuotaFieldsFragment[] = [];
        const loop = (async () => {
          for await (const status of client(tenant.secret).subscribeQuotaChanged()) {
            seen.push(status);
            if (seen.length === 1) {
              expect((await client().verifyKey({ key: verified.secret })).valid).toBe(true);
            } else {
              break;
            }
          }
        })();
        await within(loop, 5_000, 'the loop to end');
        expect(seen.map((status) => status.used)).toEqual([0, 1]);
        await eventually(() => listeners.ended === 1, 'the server to end its listener');
        expect({ opened: listeners.opened, ended: listeners.ended }).toEqual({ opened: 1, ended: 1 });
      } finally {
        listeners.restore();
      }
    });

    it('makes the iterator throw KeywardClientError UNAUTHENTICATED (close 4401) for a key that does not authenticate', async () => {
      const refused = client('kw_live_0123456789abcdefghijABCDEFGHIJ012345');
      const error = await keywardError(within(refused.subscribeQuotaChanged().next(), 3_000, 'the refusal'));
      expect({ code: error.code, status: error.status }).toEqual({ code: 'UNAUTHENTICATED', status: 0 });
      expect(error.message).toContain('4401');
    });

    it('close() closes the socket: the server ends its subscriptions and the iterator finishes', async () => {
      const { organizationId, key: tenant } = await createTenant(server, { quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 1000 }] });
      const verified = await createKey(server, { organizationId });
      const listeners = watchQuotaListeners(organizationId);
      try {
        const live = new KeywardClient({ url: server.url, apiKey: tenant.secret });
        const quotas = live.subscribeQuotaChanged();
        await within(quotas.next(), 3_000, 'the snapshot');
        await client().verifyKey({ key: verified.secret });
        expect((await within(quotas.next(), 3_000, 'the update')).value).toMatchObject({ used: 1 });
        expect(listeners.opened).toBe(1);

        await live.close();
        const after = await within(quotas.next().then((result) => ({ result }), (error: unknown) => ({ error })), 3_000, 'the iterator to finish');
        expect(after).toEqual({ result: { done: true, value: undefined } });
        await eventually(() => listeners.ended === 1, 'the server to end its listener');
      } finally {
        listeners.restore();
      }
    });
  });
});
