import type { Client } from 'graphql-ws';
import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, createTenant, CreatedKey, quotaStatus } from './helpers/fixtures';
import { ok } from './helpers/expect';
import { Feed, LiveClients, roundTrip } from './helpers/ws';
import {
  QuotaChangedDocument, QuotasDocument, RateLimitChangedDocument, RateLimitStateFieldsFragment, RateLimitStatusDocument, ResetRateLimitDocument, SessionFieldsFragment,
} from './helpers/operations';

/**
 * Live updates over graphql-ws (same /graphql path): quotaChanged, rateLimitChanged,
 * sessionChanged and apiKeyChanged — snapshots, changes after verifyKey / recordUsage /
 * mutations, coalescing with 80 % / 100 % crossings sent at once, and tenancy / scope refusals.
 * Connection-level behaviour (close codes, the subscription cap) is in live-connection.test.ts.
 */

const SESSION_FIELDS = 'id organizationId apiKeyId status tokenLimit tokensUsed tokensRemaining requestCount endedAt';
const SESSION_CHANGED = `subscription($organizationId: ID) { sessionChanged(organizationId: $organizationId) { ${SESSION_FIELDS} } }`;
const API_KEY_CHANGED = 'subscription($organizationId: ID) { apiKeyChanged(organizationId: $organizationId) { type at apiKey { id organizationId name status rotatedFromId } } }';

const VERIFY = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code } }';
const RECORD = 'mutation($input: RecordUsageInput!) { recordUsage(input: $input) { recorded } }';
const ADD_CREDITS = 'mutation($input: AddSessionCreditsInput!) { addSessionCredits(input: $input) { available } }';
const CREATE_SESSION = `mutation($input: CreateSessionInput) { createSession(input: $input) { ${SESSION_FIELDS} } }`;
const TERMINATE_SESSION = `mutation($id: ID!) { terminateSession(id: $id) { ${SESSION_FIELDS} } }`;

/** An event must go out "at once": this close to the HTTP response of the call that caused it. */
const AT_ONCE_MS = 100;
/** Long enough for any coalesced event (250 ms window) to have been delivered. */
const QUIET_MS = 500;
/** The README's "at most ~4 events per second" per subject: one per 250 ms. */
const EVENT_INTERVAL_MS = 250;

/** What SESSION_CHANGED and the session mutations here select. */
type Session = Omit<SessionFieldsFragment, 'priceUsd' | 'startedAt' | 'expiresAt'>;
type RateLimitState = RateLimitStateFieldsFragment;

interface ApiKeyEvent {
  type: string;
  at: string;
  apiKey: { id: string; organizationId: string; name: string; status: string; rotatedFromId: string | null };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('live updates', () => {
  let server: TestServer;
  const clients = new LiveClients();

  beforeAll(async () => { server = await startTestServer(); });
  afterEach(async () => { await clients.disposeAll(); });
  afterAll(async () => { await server.close(); });

  /** A graphql-ws client authenticated with `secret` (disposed after each test). */
  function connect(secret: string): Client {
    return clients.connect(server.wsUrl, secret);
  }

  /** verifyKey (by the platform admin, which has no limits of its own); returns when the response arrived. */
  async function verify(secret: string): Promise<number> {
    const result = ok(await server.gql(VERIFY, { input: { key: secret } })).verifyKey;
    expect(result).toEqual({ valid: true, code: 'VALID' });
    return performance.now();
  }

  let idempotency = 0;
  async function recordUsage(input: Record<string, unknown>): Promise<number> {
    idempotency += 1;
    const result = ok(await server.gql(RECORD, { input: { operation: 'chat', idempotencyKey: `live-${process.pid}-${idempotency}-${Date.now()}`, ...input } })).recordUsage;
    expect(result.recorded).toBe(true);
    return performance.now();
  }

  function nextUtcMidnight(): string {
    const now = server.clock.now();
    return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)).toISOString();
  }

  function nextMonthStart(): string {
    const now = server.clock.now();
    return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)).toISOString();
  }

  /** resetAt of a window whose oldest unit was taken now, or that has none: a window from now. */
  function windowEnd(windowSeconds: number): string {
    return new Date(server.clock.now().getTime() + windowSeconds * 1000).toISOString();
  }

  describe('quotaChanged', () => {
    it("sends one event per current quota of the organization, then only the quota that changed (REQUESTS) after a verifyKey", async () => {
      const organization = await createOrganization(server, {
        quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }, { meter: 'TOKENS', period: 'MONTH', limit: 5000 }],
      });
      const watcher = await createKey(server, { organizationId: organization.id, scopes: ['usage:read'], rateLimits: [] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      const feed = Feed.watch(connect(watcher.secret), QuotaChangedDocument, { organizationId: organization.id }, 'quotaChanged');

      const snapshot = await feed.take(2);
      const owner = { organizationId: organization.id };
      expect([...snapshot].sort((a, b) => a.meter.localeCompare(b.meter))).toEqual([
        quotaStatus(owner, 'REQUESTS', 'DAY', 100, 0, nextUtcMidnight()),
        quotaStatus(owner, 'TOKENS', 'MONTH', 5000, 0, nextMonthStart()),
      ]);

      const answeredAt = await verify(key.secret);
      await feed.take(3);
      expect(feed.data[2]).toEqual(quotaStatus(owner, 'REQUESTS', 'DAY', 100, 1, nextUtcMidnight()));
      // The first change after a quiet period goes out at once.
      expect(feed.events[2].at - answeredAt).toBeLessThan(AT_ONCE_MS);
      // The TOKENS quota did not change: no event for it.
      await sleep(QUIET_MS);
      expect(feed.data.slice(2)).toEqual([quotaStatus(owner, 'REQUESTS', 'DAY', 100, 1, nextUtcMidnight())]);
    });

    it('sends the TOKENS quota of the organization after recordUsage, the 80 % crossing at once', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: 1000 }] });
      const watcher = await createKey(server, { organizationId: organization.id, scopes: ['usage:read'], rateLimits: [] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      const feed = Feed.watch(connect(watcher.secret), QuotaChangedDocument, {}, 'quotaChanged');
      const owner = { organizationId: organization.id };
      expect(await feed.take(1)).toEqual([quotaStatus(owner, 'TOKENS', 'MONTH', 1000, 0, nextMonthStart())]);

      await recordUsage({ apiKeyId: key.id, tokens: 250 });
      await feed.take(2);
      expect(feed.data[1]).toEqual(quotaStatus(owner, 'TOKENS', 'MONTH', 1000, 250, nextMonthStart()));

      // Inside the coalescing window of the previous event, but it crosses 80 %.
      const crossedAt = await recordUsage({ apiKeyId: key.id, tokens: 600 });
      await feed.take(3);
      expect(feed.data[2]).toEqual(quotaStatus(owner, 'TOKENS', 'MONTH', 1000, 850, nextMonthStart()));
      expect(feed.events[2].at - crossedAt).toBeLessThan(AT_ONCE_MS);
    });

    it("sends a key's own quotas when apiKeyId is given, and their changes after verifyKey", async () => {
      const { organizationId } = await createTenant(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1000 }] });
      const watcher = await createKey(server, { organizationId, scopes: ['usage:read'], rateLimits: [] });
      const key = await createKey(server, { organizationId, rateLimits: [], quotas: [{ meter: 'REQUESTS', period: 'LIFETIME', limit: 5 }] });
      const client = connect(watcher.secret);
      const keyFeed = Feed.watch(client, QuotaChangedDocument, { apiKeyId: key.id }, 'quotaChanged');
      const owner = { apiKeyId: key.id };
      expect(await keyFeed.take(1)).toEqual([quotaStatus(owner, 'REQUESTS', 'LIFETIME', 5, 0, null)]);

      const answeredAt = await verify(key.secret);
      await keyFeed.take(2);
      expect(keyFeed.data[1]).toEqual(quotaStatus(owner, 'REQUESTS', 'LIFETIME', 5, 1, null));
      expect(keyFeed.events[1].at - answeredAt).toBeLessThan(AT_ONCE_MS);
      await sleep(QUIET_MS);
      // Only the key's quota: the organization's own quota (which also counted) is another subject.
      expect(keyFeed.data.every((status) => status.apiKeyId === key.id && status.organizationId === null)).toBe(true);
      expect(keyFeed.events).toHaveLength(2);
    });

    it('coalesces rapid changes but sends the 80 % and 100 % crossings at once, ending on the final state', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 10 }] });
      const watcher = await createKey(server, { organizationId: organization.id, scopes: ['usage:read'], rateLimits: [] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      const feed = Feed.watch(connect(watcher.secret), QuotaChangedDocument, { organizationId: organization.id }, 'quotaChanged');
      expect((await feed.take(1))[0].used).toBe(0);

      // Ten verifications back to back: 1 → 10 used of 10.
      const answeredAt: number[] = [];
      for (let used = 1; used <= 10; used += 1) answeredAt[used] = await verify(key.secret);
      await feed.until(() => feed.data.some((status) => status.used === 10), 2_000, 'the 100 % event');
      await sleep(QUIET_MS);

      const changes = feed.events.slice(1);
      const used = changes.map((event) => event.data.used);
      // Fewer events than changes, in order, never going back.
      expect(changes.length).toBeLessThan(10);
      expect(used).toEqual([...used].sort((a, b) => a - b));
      expect(new Set(used).size).toBe(used.length);
      // The first change goes out at once.
      expect(used[0]).toBe(1);
      expect(changes[0].at - answeredAt[1]).toBeLessThan(AT_ONCE_MS);
      // 80 %: exactly the state after the 8th call, at once.
      const at80 = changes.find((event) => event.data.used === 8);
      expect(at80?.data).toEqual(quotaStatus({ organizationId: organization.id }, 'REQUESTS', 'DAY', 10, 8, nextUtcMidnight()));
      expect(at80!.at - answeredAt[8]).toBeLessThan(AT_ONCE_MS);
      // 100 %: at once, and it is the last event, equal to the final state.
      const last = changes[changes.length - 1];
      expect(last.data).toEqual(quotaStatus({ organizationId: organization.id }, 'REQUESTS', 'DAY', 10, 10, nextUtcMidnight()));
      expect(last.at - answeredAt[10]).toBeLessThan(AT_ONCE_MS);
      const final = ok(await server.gql(QuotasDocument, { organizationId: organization.id })).quotas;
      expect(final).toEqual([last.data]);
    });
  });

  describe('coalescing: about 4 events per second per subject', () => {
    it('sends a burst of verifications as at most one event per 250 ms plus the 80 % and 100 % crossings, the last one the final state', async () => {
      const limit = 200;
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit }] });
      const watcher = await createKey(server, { organizationId: organization.id, scopes: ['usage:read'], rateLimits: [] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      const feed = Feed.watch(connect(watcher.secret), QuotaChangedDocument, { organizationId: organization.id }, 'quotaChanged');
      expect((await feed.take(1))[0].used).toBe(0);

      // Every event of the burst is sent after it started, so the events' span bounds the sends'.
      const burstStarted = performance.now();
      for (let call = 1; call <= limit; call += 1) await verify(key.secret);
      await feed.until(() => feed.data.some((status) => status.used === limit), 2_000, 'the 100 % event');
      await sleep(QUIET_MS);

      const changes = feed.events.slice(1);
      const spanMs = changes[changes.length - 1].at - burstStarted;
      // Each event at least EVENT_INTERVAL_MS after the one before; only the two crossings go out sooner.
      expect(changes.length).toBeLessThanOrEqual(Math.floor(spanMs / EVENT_INTERVAL_MS) + 1 + 2);
      const used = changes.map((event) => event.data.used);
      expect(used).toEqual([...used].sort((a, b) => a - b));
      expect(used).toContain(limit * 0.8);
      const final = ok(await server.gql(QuotasDocument, { organizationId: organization.id })).quotas;
      expect(final).toEqual([quotaStatus({ organizationId: organization.id }, 'REQUESTS', 'DAY', limit, limit, nextUtcMidnight())]);
      expect(changes[changes.length - 1].data).toEqual(final[0]);
    });
  });

  describe('rateLimitChanged', () => {
    it('sends the current state of each window, then remaining 0 at once, then the reset at once', async () => {
      const { organizationId } = await createTenant(server);
      const watcher = await createKey(server, { organizationId, scopes: ['keys:read'], rateLimits: [] });
      const key = await createKey(server, {
        organizationId,
        rateLimits: [{ name: 'burst', limit: 3, windowSeconds: 60 }, { name: 'hourly', limit: 100, windowSeconds: 3600 }],
      });
      const feed = Feed.watch(connect(watcher.secret), RateLimitChangedDocument, { apiKeyId: key.id }, 'rateLimitChanged');

      const snapshot = await feed.take(2);
      const burst = (remaining: number): RateLimitState => ({ apiKeyId: key.id, name: 'burst', limit: 3, remaining, windowSeconds: 60, resetAt: windowEnd(60) });
      const hourly = (remaining: number): RateLimitState => ({ apiKeyId: key.id, name: 'hourly', limit: 100, remaining, windowSeconds: 3600, resetAt: windowEnd(3600) });
      expect([...snapshot].sort((a, b) => a.name.localeCompare(b.name))).toEqual([burst(3), hourly(100)]);

      const answeredAt: number[] = [];
      for (let call = 1; call <= 3; call += 1) answeredAt[call] = await verify(key.secret);
      await feed.until(() => feed.data.some((state) => state.name === 'burst' && state.remaining === 0), 2_000, 'burst remaining 0');
      const exhausted = feed.events.find((event) => event.data.name === 'burst' && event.data.remaining === 0)!;
      expect(exhausted.data).toEqual(burst(0));
      expect(exhausted.at - answeredAt[3]).toBeLessThan(AT_ONCE_MS);
      const refused = ok(await server.gql(VERIFY, { input: { key: key.secret } })).verifyKey;
      expect(refused).toEqual({ valid: false, code: 'RATE_LIMITED' });
      await sleep(QUIET_MS);
      const before = feed.events.length;

      const reset = ok(await server.gql(ResetRateLimitDocument, { apiKeyId: key.id })).resetRateLimit;
      const resetAt = performance.now();
      expect(reset.find((state: RateLimitState) => state.name === 'burst')).toEqual(burst(3));
      await feed.until(() => feed.events.slice(before).some((event) => event.data.name === 'burst' && event.data.remaining === 3), 2_000, 'burst back to 3');
      const restored = feed.events.slice(before).find((event) => event.data.name === 'burst')!;
      expect(restored.data).toEqual(burst(3));
      expect(restored.at - resetAt).toBeLessThan(AT_ONCE_MS);
      // The last state of each window is what rateLimitStatus shows.
      await sleep(QUIET_MS);
      const status = ok(await server.gql(RateLimitStatusDocument, { apiKeyId: key.id })).rateLimitStatus;
      for (const state of status as RateLimitState[]) {
        expect(feed.data.filter((event) => event.name === state.name).pop()).toEqual(state);
      }
    });

    it("sends changes caused by the key's own GraphQL calls", async () => {
      const { organizationId, key: watcher } = await createTenant(server);
      const key = await createKey(server, { organizationId, preset: 'ADMIN', rateLimits: [{ name: 'minute', limit: 10, windowSeconds: 60 }] });
      const feed = Feed.watch(connect(watcher.secret), RateLimitChangedDocument, { apiKeyId: key.id }, 'rateLimitChanged');
      expect(await feed.take(1)).toEqual([{ apiKeyId: key.id, name: 'minute', limit: 10, remaining: 10, windowSeconds: 60, resetAt: windowEnd(60) }]);

      ok(await server.gql('{ viewer { apiKey { id } } }', {}, { key: key.secret }));
      await feed.take(2);
      expect(feed.data[1]).toEqual({ apiKeyId: key.id, name: 'minute', limit: 10, remaining: 9, windowSeconds: 60, resetAt: windowEnd(60) });
    });
  });

  describe('sessionChanged', () => {
    async function organizationWithCredits(): Promise<{ organizationId: string; key: CreatedKey }> {
      const tenant = await createTenant(server);
      ok(await server.gql(ADD_CREDITS, { input: { organizationId: tenant.organizationId, sessions: 2, idempotencyKey: `credits-${tenant.organizationId}` } }));
      return tenant;
    }

    it('sends ACTIVE on createSession and EXHAUSTED at once when recordUsage uses the whole token budget', async () => {
      const { organizationId, key } = await organizationWithCredits();
      const client = connect(key.secret);
      const feed = new Feed<Session>(client, SESSION_CHANGED, {}, 'sessionChanged');
      await roundTrip(client);

      const created = ok(await server.gql(CREATE_SESSION, { input: { tokenLimit: 100 } }, { key: key.secret })).createSession as Session;
      expect(await feed.take(1)).toEqual([{ ...created, status: 'ACTIVE', tokensUsed: 0, tokensRemaining: 100, endedAt: null }]);
      expect(created).toMatchObject({ organizationId, apiKeyId: key.id, tokenLimit: 100 });

      const chargedAt = await recordUsage({ apiKeyId: key.id, sessionId: created.id, tokens: 100 });
      await feed.take(2);
      const exhausted = feed.events[1];
      expect(exhausted.data).toMatchObject({ id: created.id, organizationId, status: 'EXHAUSTED', tokenLimit: 100, tokensUsed: 100, tokensRemaining: 0, requestCount: 1 });
      expect(typeof exhausted.data.endedAt).toBe('string');
      expect(exhausted.at - chargedAt).toBeLessThan(AT_ONCE_MS);
      await sleep(QUIET_MS);
      expect(feed.data.map((session) => session.status)).toEqual(['ACTIVE', 'EXHAUSTED']);
    });

    it('sends TERMINATED at once after terminateSession', async () => {
      const { key } = await organizationWithCredits();
      const client = connect(key.secret);
      const feed = new Feed<Session>(client, SESSION_CHANGED, {}, 'sessionChanged');
      await roundTrip(client);

      const created = ok(await server.gql(CREATE_SESSION, { input: { tokenLimit: 1000 } }, { key: key.secret })).createSession as Session;
      await feed.take(1);
      ok(await server.gql(TERMINATE_SESSION, { id: created.id }, { key: key.secret }));
      const terminatedAt = performance.now();
      await feed.take(2);
      expect(feed.data.map((session) => [session.id, session.status])).toEqual([[created.id, 'ACTIVE'], [created.id, 'TERMINATED']]);
      expect(feed.events[1].at - terminatedAt).toBeLessThan(AT_ONCE_MS);
    });
  });

  describe('apiKeyChanged', () => {
    it('sends CREATED, UPDATED, DISABLED, ENABLED, ROTATED (new key, rotatedFromId = old), REVOKED and DELETED', async () => {
      const { organizationId, key: watcher } = await createTenant(server);
      const client = connect(watcher.secret);
      const feed = new Feed<ApiKeyEvent>(client, API_KEY_CHANGED, {}, 'apiKeyChanged');
      await roundTrip(client);

      const key = await createKey(server, { organizationId });
      await feed.take(1);
      ok(await server.gql('mutation($id: ID!) { updateApiKey(id: $id, input: { name: "renamed" }) { id } }', { id: key.id }));
      await feed.take(2);
      ok(await server.gql('mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { id } }', { id: key.id }));
      await feed.take(3);
      ok(await server.gql('mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: true) { id } }', { id: key.id }));
      await feed.take(4);
      const rotated = ok(await server.gql('mutation($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 0) { apiKey { id } } }', { id: key.id })).rotateApiKey.apiKey.id as string;
      await feed.take(5);
      ok(await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "leaked") { id } }', { id: rotated }));
      await feed.take(6);
      const other = await createKey(server, { organizationId });
      await feed.take(7);
      expect(ok(await server.gql('mutation($id: ID!) { deleteApiKey(id: $id) }', { id: other.id })).deleteApiKey).toBe(true);
      await feed.take(8);
      await sleep(QUIET_MS);

      expect(feed.data.map((event) => [event.type, event.apiKey.id])).toEqual([
        ['CREATED', key.id],
        ['UPDATED', key.id],
        ['DISABLED', key.id],
        ['ENABLED', key.id],
        ['ROTATED', rotated],
        ['REVOKED', rotated],
        ['CREATED', other.id],
        ['DELETED', other.id],
      ]);
      expect(feed.data.every((event) => event.apiKey.organizationId === organizationId)).toBe(true);
      expect(feed.data[0].apiKey.name).toBe(key.apiKey.name);
      expect(feed.data[1].apiKey.name).toBe('renamed');
      expect(feed.data[2].apiKey.status).toBe('DISABLED');
      expect(feed.data[3].apiKey.status).toBe('ACTIVE');
      expect(feed.data[4].apiKey.rotatedFromId).toBe(key.id);
      expect(feed.data[5].apiKey.status).toBe('REVOKED');
      expect(feed.data[0].at).toBe(server.clock.now().toISOString());
    });

    it("does not send another organization's key changes", async () => {
      const { key: watcher } = await createTenant(server);
      const other = await createOrganization(server);
      const client = connect(watcher.secret);
      const feed = new Feed<ApiKeyEvent>(client, API_KEY_CHANGED, {}, 'apiKeyChanged');
      await roundTrip(client);
      await createKey(server, { organizationId: other.id });
      await sleep(QUIET_MS);
      expect(feed.events).toEqual([]);
      expect(feed.errors).toEqual([]);
    });
  });

  describe('tenancy and scopes', () => {
    /** Asserts the subscription ended with one error of `code` and streamed no data, even after `trigger`. */
    async function expectRefusedWith(feed: Feed<unknown>, code: string, trigger: () => Promise<unknown>): Promise<void> {
      const error = await feed.error();
      expect(error.extensions?.code).toBe(code);
      await trigger();
      await sleep(QUIET_MS);
      expect(feed.events).toEqual([]);
    }

    it("refuses quotaChanged of another organization with NOT_FOUND and streams nothing", async () => {
      const { key: keyA } = await createTenant(server);
      const b = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }] });
      const keyB = await createKey(server, { organizationId: b.id, rateLimits: [] });
      const feed = Feed.watch(connect(keyA.secret), QuotaChangedDocument, { organizationId: b.id }, 'quotaChanged');
      await expectRefusedWith(feed, 'NOT_FOUND', () => verify(keyB.secret));
    });

    it("refuses quotaChanged of another organization's key with NOT_FOUND and streams nothing", async () => {
      const { key: keyA } = await createTenant(server);
      const b = await createOrganization(server);
      const keyB = await createKey(server, { organizationId: b.id, rateLimits: [], quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }] });
      const feed = Feed.watch(connect(keyA.secret), QuotaChangedDocument, { apiKeyId: keyB.id }, 'quotaChanged');
      await expectRefusedWith(feed, 'NOT_FOUND', () => verify(keyB.secret));
    });

    it("refuses rateLimitChanged of another organization's key with NOT_FOUND and streams nothing", async () => {
      const { key: keyA } = await createTenant(server);
      const b = await createOrganization(server);
      const keyB = await createKey(server, { organizationId: b.id });
      const feed = Feed.watch(connect(keyA.secret), RateLimitChangedDocument, { apiKeyId: keyB.id }, 'rateLimitChanged');
      await expectRefusedWith(feed, 'NOT_FOUND', () => verify(keyB.secret));
    });

    it("refuses sessionChanged and apiKeyChanged of another organization with NOT_FOUND and streams nothing", async () => {
      const { key: keyA } = await createTenant(server);
      const b = await createTenant(server);
      ok(await server.gql(ADD_CREDITS, { input: { organizationId: b.organizationId, sessions: 1, idempotencyKey: `credits-${b.organizationId}` } }));
      const client = connect(keyA.secret);
      const sessions = new Feed<Session>(client, SESSION_CHANGED, { organizationId: b.organizationId }, 'sessionChanged');
      const keys = new Feed<ApiKeyEvent>(client, API_KEY_CHANGED, { organizationId: b.organizationId }, 'apiKeyChanged');
      await expectRefusedWith(sessions, 'NOT_FOUND', () => server.gql(CREATE_SESSION, { input: { tokenLimit: 100 } }, { key: b.key.secret }));
      await expectRefusedWith(keys, 'NOT_FOUND', () => createKey(server, { organizationId: b.organizationId }));
    });

    it('refuses a subscription the key lacks the scope for with INSUFFICIENT_SCOPE and streams nothing; the connection keeps working', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }] });
      const keysOnly = await createKey(server, { organizationId: organization.id, scopes: ['keys:read'], rateLimits: [] });
      const target = await createKey(server, { organizationId: organization.id, rateLimits: [{ name: 'minute', limit: 10, windowSeconds: 60 }] });
      const client = connect(keysOnly.secret);
      const quotas = Feed.watch(client, QuotaChangedDocument, {}, 'quotaChanged');
      const sessions = new Feed<Session>(client, SESSION_CHANGED, {}, 'sessionChanged');
      await expectRefusedWith(quotas, 'INSUFFICIENT_SCOPE', () => verify(target.secret));
      await expectRefusedWith(sessions, 'INSUFFICIENT_SCOPE', async () => undefined);

      const usageOnly = await createKey(server, { organizationId: organization.id, scopes: ['usage:read'], rateLimits: [] });
      const keys = new Feed<ApiKeyEvent>(connect(usageOnly.secret), API_KEY_CHANGED, {}, 'apiKeyChanged');
      await expectRefusedWith(keys, 'INSUFFICIENT_SCOPE', () => createKey(server, { organizationId: organization.id }));

      // Same connection, a subscription within its scopes: works.
      const limits = Feed.watch(client, RateLimitChangedDocument, { apiKeyId: target.id }, 'rateLimitChanged');
      // (the verification above took one unit)
      expect((await limits.take(1))[0]).toMatchObject({ apiKeyId: target.id, name: 'minute', remaining: 9 });
    });

    it('lets the platform admin watch any organization', async () => {
      const b = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }] });
      const keyB = await createKey(server, { organizationId: b.id, rateLimits: [{ name: 'minute', limit: 10, windowSeconds: 60 }] });
      const client = connect(server.adminKey);
      const quotas = Feed.watch(client, QuotaChangedDocument, { organizationId: b.id }, 'quotaChanged');
      const limits = Feed.watch(client, RateLimitChangedDocument, { apiKeyId: keyB.id }, 'rateLimitChanged');
      const keys = new Feed<ApiKeyEvent>(client, API_KEY_CHANGED, { organizationId: b.id }, 'apiKeyChanged');
      expect(await quotas.take(1)).toEqual([quotaStatus({ organizationId: b.id }, 'REQUESTS', 'DAY', 100, 0, nextUtcMidnight())]);
      expect((await limits.take(1))[0]).toMatchObject({ apiKeyId: keyB.id, remaining: 10 });
      await roundTrip(client);

      await verify(keyB.secret);
      const created = await createKey(server, { organizationId: b.id });
      await quotas.take(2);
      await limits.take(2);
      await keys.take(1);
      expect(quotas.data[1].used).toBe(1);
      expect(limits.data[1].remaining).toBe(9);
      expect(keys.data[0]).toMatchObject({ type: 'CREATED', apiKey: { id: created.id, organizationId: b.id } });
      expect([...quotas.errors, ...limits.errors, ...keys.errors]).toEqual([]);
    });
  });
});
