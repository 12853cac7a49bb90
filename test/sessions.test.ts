import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, createTenant } from './helpers/fixtures';
import { ok, expectRefused, expectBadInput } from './helpers/expect';

/**
 * Metered sessions: credits (the payment hook), createSession, charging a session through
 * recordUsage, and each end state — EXHAUSTED, EXPIRED (on a server whose clock the tests move),
 * TERMINATED — with verifyKey(requireSession), tenancy, pagination and the audit log.
 */

const SESSION_FIELDS = 'id organizationId apiKeyId status tokenLimit tokensUsed tokensRemaining requestCount priceUsd startedAt expiresAt endedAt';
const ADD_CREDITS = 'mutation($input: AddSessionCreditsInput!) { addSessionCredits(input: $input) { organizationId available purchased used } }';
const BALANCE = 'query($organizationId: ID) { sessionBalance(organizationId: $organizationId) { organizationId available purchased used } }';
const ORGANIZATION_BALANCE = 'query($id: ID) { organization(id: $id) { id sessionBalance } }';
const CREATE = `mutation($input: CreateSessionInput) { createSession(input: $input) { ${SESSION_FIELDS} } }`;
const TERMINATE = `mutation($id: ID!) { terminateSession(id: $id) { ${SESSION_FIELDS} } }`;
const GET = `query($id: ID!) { session(id: $id) { ${SESSION_FIELDS} } }`;
const CURRENT = `{ currentSession { ${SESSION_FIELDS} } }`;
const LIST = `query($status: SessionStatus, $first: Int, $after: String) {
  sessions(status: $status, first: $first, after: $after) { totalCount pageInfo { endCursor hasNextPage } nodes { ${SESSION_FIELDS} } } }`;
const RECORD = `mutation($input: RecordUsageInput!) { recordUsage(input: $input) { recorded session { ${SESSION_FIELDS} } } }`;
const VERIFY = `mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code keyId session { ${SESSION_FIELDS} } } }`;
const AUDIT = `query($organizationId: ID) { auditLog(organizationId: $organizationId, first: 100) {
  nodes { organizationId actorKeyId action targetType targetId ip metadata at } } }`;

const DAY_MS = 86_400_000;

interface Session {
  id: string;
  organizationId: string;
  apiKeyId: string;
  status: 'ACTIVE' | 'EXHAUSTED' | 'EXPIRED' | 'TERMINATED';
  tokenLimit: number;
  tokensUsed: number;
  tokensRemaining: number;
  requestCount: number;
  priceUsd: number;
  startedAt: string;
  expiresAt: string;
  endedAt: string | null;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

let counter = 0;
function unique(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

async function addCredits(server: TestServer, organizationId: string, sessions: number, idempotencyKey = unique('payment')) {
  return ok(await server.gql(ADD_CREDITS, { input: { organizationId, sessions, idempotencyKey } })).addSessionCredits;
}

async function balance(server: TestServer, organizationId: string) {
  return ok(await server.gql(BALANCE, { organizationId })).sessionBalance;
}

async function createSession(server: TestServer, secret: string, input: Record<string, unknown> | null = null): Promise<Session> {
  return ok(await server.gql(CREATE, { input }, { key: secret })).createSession;
}

async function getSession(server: TestServer, id: string): Promise<Session> {
  return ok(await server.gql(GET, { id })).session;
}

async function charge(server: TestServer, apiKeyId: string, sessionId: string, input: Record<string, unknown>) {
  return server.gql(RECORD, { input: { apiKeyId, sessionId, operation: 'chat', idempotencyKey: unique('charge'), ...input } });
}

async function verify(server: TestServer, secret: string, input: Record<string, unknown> = {}) {
  return ok(await server.gql(VERIFY, { input: { key: secret, ...input } })).verifyKey;
}

async function auditOf(server: TestServer, organizationId: string): Promise<any[]> {
  return ok(await server.gql(AUDIT, { organizationId })).auditLog.nodes;
}

/** A tenant (ADMIN-preset key, no rate limits) whose organization bought `credits` sessions. */
async function tenantWithCredits(server: TestServer, credits: number) {
  const organization = await createOrganization(server);
  const key = await createKey(server, { organizationId: organization.id, preset: 'ADMIN', rateLimits: [] });
  if (credits > 0) await addCredits(server, organization.id, credits);
  return { organizationId: organization.id, key };
}

describe('sessions', () => {
  let server: TestServer;
  let adminKeyId: string;
  beforeAll(async () => {
    server = await startTestServer();
    adminKeyId = ok(await server.gql('{ viewer { apiKey { id } } }')).viewer.apiKey.id;
  });
  afterAll(async () => { await server.close(); });

  describe('credits', () => {
    it('adds purchased sessions once per idempotencyKey and audits the purchase once', async () => {
      const organization = await createOrganization(server);
      const first = await addCredits(server, organization.id, 3, 'invoice-1');
      expect(first).toEqual({ organizationId: organization.id, available: 3, purchased: 3, used: 0 });
      expect(await addCredits(server, organization.id, 3, 'invoice-1')).toEqual(first);
      expect(await addCredits(server, organization.id, 2, 'invoice-2')).toEqual({ organizationId: organization.id, available: 5, purchased: 5, used: 0 });
      expect(await balance(server, organization.id)).toEqual({ organizationId: organization.id, available: 5, purchased: 5, used: 0 });
      expect(ok(await server.gql(ORGANIZATION_BALANCE, { id: organization.id })).organization.sessionBalance).toBe(5);

      const entries = (await auditOf(server, organization.id)).filter((entry) => entry.action === 'session_credits.add');
      expect(entries).toHaveLength(2);
      expect(entries[1]).toMatchObject({
        organizationId: organization.id, actorKeyId: adminKeyId, targetType: 'organization', targetId: organization.id,
        metadata: { sessions: 3, idempotencyKey: 'invoice-1' },
      });
      expect(['127.0.0.1', '::ffff:127.0.0.1']).toContain(entries[1].ip);
      expect(entries[0].metadata).toEqual({ sessions: 2, idempotencyKey: 'invoice-2' });
    });

    it('refuses an idempotencyKey reused with another count with 409 IDEMPOTENCY_CONFLICT and adds nothing', async () => {
      const organization = await createOrganization(server);
      await addCredits(server, organization.id, 3, 'invoice-1');
      const conflict = await server.gql(ADD_CREDITS, { input: { organizationId: organization.id, sessions: 4, idempotencyKey: 'invoice-1' } });
      expectRefused(conflict, 'IDEMPOTENCY_CONFLICT', 409);
      expect(await balance(server, organization.id)).toEqual({ organizationId: organization.id, available: 3, purchased: 3, used: 0 });
      expect((await auditOf(server, organization.id)).filter((entry) => entry.action === 'session_credits.add')).toHaveLength(1);
    });

    it('refuses credits from a key without platform:admin with 403 INSUFFICIENT_SCOPE', async () => {
      const { organizationId, key } = await createTenant(server);
      expectRefused(await server.gql(ADD_CREDITS, { input: { organizationId, sessions: 5, idempotencyKey: 'self-service' } }, { key: key.secret }), 'INSUFFICIENT_SCOPE');
      // A platform-organization key without platform:admin may not either (ADMIN there is *, which includes it).
      const operator = await createKey(server, { organizationId: server.platformOrganizationId, preset: 'WRITE' });
      expectRefused(await server.gql(ADD_CREDITS, { input: { organizationId, sessions: 5, idempotencyKey: 'operator' } }, { key: operator.secret }), 'INSUFFICIENT_SCOPE');
      expect(await balance(server, organizationId)).toEqual({ organizationId, available: 0, purchased: 0, used: 0 });
    });

    it.each([
      ['sessions', { sessions: 0 }],
      ['sessions', { sessions: -2 }],
      ['idempotencyKey', { idempotencyKey: '' }],
    ])('refuses a bad %s (%j) with 400 BAD_USER_INPUT and adds nothing', async (field, change) => {
      const organization = await createOrganization(server);
      const refused = await server.gql(ADD_CREDITS, { input: { organizationId: organization.id, sessions: 2, idempotencyKey: 'invoice', ...change } });
      expectBadInput(refused, field);
      expect(await balance(server, organization.id)).toEqual({ organizationId: organization.id, available: 0, purchased: 0, used: 0 });
      expect((await auditOf(server, organization.id)).filter((entry) => entry.action === 'session_credits.add')).toEqual([]);
    });
  });

  describe('createSession', () => {
    it('spends one session and opens an ACTIVE session with 100,000 tokens for 24 hours at priceUsd 1', async () => {
      const { organizationId, key } = await tenantWithCredits(server, 2);
      const now = server.clock.now().getTime();
      const session = await createSession(server, key.secret);
      expect(session).toEqual({
        id: expect.stringMatching(/^ses_/),
        organizationId,
        apiKeyId: key.id,
        status: 'ACTIVE',
        tokenLimit: 100_000,
        tokensUsed: 0,
        tokensRemaining: 100_000,
        requestCount: 0,
        priceUsd: 1,
        startedAt: iso(now),
        expiresAt: iso(now + DAY_MS),
        endedAt: null,
      });
      expect(await balance(server, organizationId)).toEqual({ organizationId, available: 1, purchased: 2, used: 1 });
      expect(ok(await server.gql(BALANCE, {}, { key: key.secret })).sessionBalance).toEqual({ organizationId, available: 1, purchased: 2, used: 1 });
      expect(ok(await server.gql(ORGANIZATION_BALANCE, {}, { key: key.secret })).organization.sessionBalance).toBe(1);
      expect(ok(await server.gql(CURRENT, {}, { key: key.secret })).currentSession).toEqual(session);
      expect(await getSession(server, session.id)).toEqual(session);

      const [entry] = (await auditOf(server, organizationId)).filter((e) => e.action === 'session.create');
      expect(entry).toMatchObject({
        organizationId, actorKeyId: key.id, targetType: 'session', targetId: session.id,
        metadata: { tokenLimit: 100_000, ttlSeconds: 86_400, priceUsd: 1 },
      });
    });

    it('takes tokenLimit and ttlSeconds from the input', async () => {
      const { key } = await tenantWithCredits(server, 1);
      const now = server.clock.now().getTime();
      const session = await createSession(server, key.secret, { tokenLimit: 500, ttlSeconds: 60 });
      expect(session).toMatchObject({ tokenLimit: 500, tokensRemaining: 500, startedAt: iso(now), expiresAt: iso(now + 60_000) });
    });

    it('refuses a second session while one is ACTIVE with 409 SESSION_ALREADY_ACTIVE and spends nothing', async () => {
      const { organizationId, key } = await tenantWithCredits(server, 2);
      const sibling = await createKey(server, { organizationId, preset: 'ADMIN' });
      const active = await createSession(server, key.secret);
      expectRefused(await server.gql(CREATE, {}, { key: key.secret }), 'SESSION_ALREADY_ACTIVE', 409);
      // One ACTIVE session per organization, whichever key asks.
      expectRefused(await server.gql(CREATE, {}, { key: sibling.secret }), 'SESSION_ALREADY_ACTIVE', 409);
      expect(await balance(server, organizationId)).toEqual({ organizationId, available: 1, purchased: 2, used: 1 });
      const listed = ok(await server.gql(LIST, {}, { key: key.secret })).sessions;
      expect(listed.totalCount).toBe(1);
      expect(listed.nodes.map((s: Session) => s.id)).toEqual([active.id]);
    });

    it('refuses a session without balance with 402 SESSION_BALANCE_EMPTY, also once the bought ones are spent', async () => {
      const { organizationId, key } = await tenantWithCredits(server, 0);
      expectRefused(await server.gql(CREATE, {}, { key: key.secret }), 'SESSION_BALANCE_EMPTY', 402);
      expect(ok(await server.gql(LIST, {}, { key: key.secret })).sessions.totalCount).toBe(0);

      await addCredits(server, organizationId, 1);
      const session = await createSession(server, key.secret);
      ok(await server.gql(TERMINATE, { id: session.id }, { key: key.secret }));
      expectRefused(await server.gql(CREATE, {}, { key: key.secret }), 'SESSION_BALANCE_EMPTY', 402);
      expect(await balance(server, organizationId)).toEqual({ organizationId, available: 0, purchased: 1, used: 1 });
      expect((await auditOf(server, organizationId)).filter((entry) => entry.action === 'session.create')).toHaveLength(1);
    });

    it.each([
      ['tokenLimit', { tokenLimit: 0 }],
      ['tokenLimit', { tokenLimit: -5 }],
      ['ttlSeconds', { ttlSeconds: 10 }],
      ['ttlSeconds', { ttlSeconds: 59 }],
      ['ttlSeconds', { ttlSeconds: 0 }],
    ])('refuses a bad %s (%j) with 400 BAD_USER_INPUT and spends nothing', async (field, input) => {
      const { organizationId, key } = await tenantWithCredits(server, 1);
      expectBadInput(await server.gql(CREATE, { input }, { key: key.secret }), field);
      expect(await balance(server, organizationId)).toEqual({ organizationId, available: 1, purchased: 1, used: 0 });
      expect(ok(await server.gql(CURRENT, {}, { key: key.secret })).currentSession).toBeNull();
      expect((await auditOf(server, organizationId)).filter((entry) => entry.action === 'session.create')).toEqual([]);
    });

    it('refuses createSession to a key without sessions:write with 403 INSUFFICIENT_SCOPE', async () => {
      const organization = await createOrganization(server);
      await addCredits(server, organization.id, 1);
      const reader = await createKey(server, { organizationId: organization.id, preset: 'READ' });
      expectRefused(await server.gql(CREATE, {}, { key: reader.secret }), 'INSUFFICIENT_SCOPE');
      expect(await balance(server, organization.id)).toEqual({ organizationId: organization.id, available: 1, purchased: 1, used: 0 });
    });
  });

  describe('charging and ending', () => {
    it('charges recorded tokens to the session and ends it EXHAUSTED when the budget is reached', async () => {
      const { organizationId, key } = await tenantWithCredits(server, 1);
      const session = await createSession(server, key.secret, { tokenLimit: 1000 });

      const first = ok(await charge(server, key.id, session.id, { tokens: 300 })).recordUsage;
      expect(first.recorded).toBe(true);
      expect(first.session).toMatchObject({ id: session.id, status: 'ACTIVE', tokensUsed: 300, tokensRemaining: 700, requestCount: 1, endedAt: null });
      // 2000 characters are 500 tokens.
      const second = ok(await charge(server, key.id, session.id, { characters: 2000 })).recordUsage;
      expect(second.session).toMatchObject({ status: 'ACTIVE', tokensUsed: 800, tokensRemaining: 200, requestCount: 2 });
      expect((await verify(server, key.secret, { requireSession: true })).session).toMatchObject({ id: session.id, tokensUsed: 800 });

      const last = ok(await charge(server, key.id, session.id, { tokens: 200 })).recordUsage;
      const now = server.clock.now().toISOString();
      expect(last.session).toMatchObject({ status: 'EXHAUSTED', tokensUsed: 1000, tokensRemaining: 0, requestCount: 3, endedAt: now });
      expect(await getSession(server, session.id)).toMatchObject({ status: 'EXHAUSTED', tokensUsed: 1000, tokensRemaining: 0, requestCount: 3, endedAt: now });

      expectRefused(await charge(server, key.id, session.id, { tokens: 1 }), 'NO_ACTIVE_SESSION', 402);
      expect(await getSession(server, session.id)).toMatchObject({ tokensUsed: 1000, requestCount: 3 });
      expect(await verify(server, key.secret, { requireSession: true })).toMatchObject({ valid: false, code: 'NO_ACTIVE_SESSION', session: null });
      expect(ok(await server.gql(CURRENT, {}, { key: key.secret })).currentSession).toBeNull();
      const exhausted = ok(await server.gql(LIST, { status: 'EXHAUSTED' }, { key: key.secret })).sessions;
      expect(exhausted.nodes.map((s: Session) => s.id)).toEqual([session.id]);
      expect(ok(await server.gql(LIST, { status: 'ACTIVE' }, { key: key.secret })).sessions.totalCount).toBe(0);
      expect(await balance(server, organizationId)).toEqual({ organizationId, available: 0, purchased: 1, used: 1 });
    });

    it('ends a session EXHAUSTED when one charge goes past the budget, keeping the whole charge', async () => {
      const { key } = await tenantWithCredits(server, 1);
      const session = await createSession(server, key.secret, { tokenLimit: 100 });
      const over = ok(await charge(server, key.id, session.id, { tokens: 150 })).recordUsage;
      expect(over.session).toMatchObject({ status: 'EXHAUSTED', tokensUsed: 150, tokensRemaining: 0, requestCount: 1 });
    });

    it('answers verifyKey(requireSession: true) VALID with the session while it is ACTIVE, NO_ACTIVE_SESSION without one', async () => {
      const { organizationId, key } = await tenantWithCredits(server, 1);
      const noSession = await verify(server, key.secret, { requireSession: true });
      expect(noSession).toEqual({ valid: false, code: 'NO_ACTIVE_SESSION', keyId: key.id, session: null });

      const session = await createSession(server, key.secret);
      const valid = await verify(server, key.secret, { requireSession: true });
      expect(valid).toMatchObject({ valid: true, code: 'VALID', keyId: key.id });
      expect(valid.session).toEqual(await getSession(server, session.id));
      // Another key of the organization is covered by the organization's session.
      const sibling = await createKey(server, { organizationId, rateLimits: [] });
      expect((await verify(server, sibling.secret, { requireSession: true })).session.id).toBe(session.id);
      // Without requireSession the result carries no session.
      expect(await verify(server, key.secret)).toMatchObject({ valid: true, session: null });
    });

    it('ends a session TERMINATED on request, refuses a second termination with 400 BAD_USER_INPUT, and lets a new one start', async () => {
      const { organizationId, key } = await tenantWithCredits(server, 2);
      const session = await createSession(server, key.secret);
      const terminated = ok(await server.gql(TERMINATE, { id: session.id }, { key: key.secret })).terminateSession;
      expect(terminated).toEqual({ ...session, status: 'TERMINATED', endedAt: server.clock.now().toISOString() });
      expect(await getSession(server, session.id)).toEqual(terminated);
      expectBadInput(await server.gql(TERMINATE, { id: session.id }, { key: key.secret }), 'id');

      expect(ok(await server.gql(CURRENT, {}, { key: key.secret })).currentSession).toBeNull();
      expectRefused(await charge(server, key.id, session.id, { tokens: 1 }), 'NO_ACTIVE_SESSION', 402);
      expect(await verify(server, key.secret, { requireSession: true })).toMatchObject({ valid: false, code: 'NO_ACTIVE_SESSION' });

      const next = await createSession(server, key.secret);
      expect(next.status).toBe('ACTIVE');
      expect(next.id).not.toBe(session.id);
      expect(await balance(server, organizationId)).toEqual({ organizationId, available: 0, purchased: 2, used: 2 });

      const entries = (await auditOf(server, organizationId)).filter((entry) => entry.action === 'session.terminate');
      expect(entries).toHaveLength(1);
      expect(entries[0]).toMatchObject({ organizationId, actorKeyId: key.id, targetType: 'session', targetId: session.id });
    });

    it('ends a session EXHAUSTED and lets the next one start', async () => {
      const { key } = await tenantWithCredits(server, 2);
      const session = await createSession(server, key.secret, { tokenLimit: 10 });
      ok(await charge(server, key.id, session.id, { tokens: 10 }));
      const next = await createSession(server, key.secret);
      expect(next).toMatchObject({ status: 'ACTIVE', tokenLimit: 100_000 });
      expect(ok(await server.gql(CURRENT, {}, { key: key.secret })).currentSession.id).toBe(next.id);
    });
  });

  describe('tenancy', () => {
    it("answers session and terminateSession of another organization with 404 NOT_FOUND and leaves it running", async () => {
      const owner = await tenantWithCredits(server, 1);
      const stranger = await tenantWithCredits(server, 0);
      const session = await createSession(server, owner.key.secret);

      const read = await server.gql(GET, { id: session.id }, { key: stranger.key.secret });
      expectRefused(read, 'NOT_FOUND');
      expect(read.body.data?.session ?? null).toBeNull();
      expectRefused(await server.gql(TERMINATE, { id: session.id }, { key: stranger.key.secret }), 'NOT_FOUND');
      expectRefused(await server.gql(GET, { id: 'ses_00000000000000000000000000' }, { key: owner.key.secret }), 'NOT_FOUND');

      expect(await getSession(server, session.id)).toMatchObject({ status: 'ACTIVE', endedAt: null });
      expect(ok(await server.gql(LIST, {}, { key: stranger.key.secret })).sessions).toMatchObject({ totalCount: 0, nodes: [] });
      expect(ok(await server.gql(CURRENT, {}, { key: stranger.key.secret })).currentSession).toBeNull();
      expectRefused(await server.gql(BALANCE, { organizationId: owner.organizationId }, { key: stranger.key.secret }), 'NOT_FOUND');
      expect((await auditOf(server, owner.organizationId)).filter((entry) => entry.action === 'session.terminate')).toEqual([]);
    });
  });

  describe('listing', () => {
    it('lists the organization\'s sessions newest first with cursor pagination and a status filter', async () => {
      const { key } = await tenantWithCredits(server, 3);
      const ids: string[] = [];
      for (let i = 0; i < 3; i += 1) {
        const session = await createSession(server, key.secret);
        ids.push(session.id);
        if (i < 2) ok(await server.gql(TERMINATE, { id: session.id }, { key: key.secret }));
      }
      const newestFirst = [...ids].reverse();

      const page1 = ok(await server.gql(LIST, { first: 2 }, { key: key.secret })).sessions;
      expect(page1.totalCount).toBe(3);
      expect(page1.nodes.map((s: Session) => s.id)).toEqual(newestFirst.slice(0, 2));
      expect(page1.pageInfo.hasNextPage).toBe(true);
      const page2 = ok(await server.gql(LIST, { first: 2, after: page1.pageInfo.endCursor }, { key: key.secret })).sessions;
      expect(page2.nodes.map((s: Session) => s.id)).toEqual(newestFirst.slice(2));
      expect(page2.pageInfo.hasNextPage).toBe(false);
      expect(page2.totalCount).toBe(3);

      const terminated = ok(await server.gql(LIST, { status: 'TERMINATED' }, { key: key.secret })).sessions;
      expect(terminated.totalCount).toBe(2);
      expect(terminated.nodes.map((s: Session) => [s.id, s.status])).toEqual([[ids[1], 'TERMINATED'], [ids[0], 'TERMINATED']]);
      const active = ok(await server.gql(LIST, { status: 'ACTIVE' }, { key: key.secret })).sessions;
      expect(active.nodes.map((s: Session) => s.id)).toEqual([ids[2]]);
    });

    it.each([
      ['first', { first: 0 }],
      ['first', { first: 501 }],
      ['after', { after: 'not-a-cursor' }],
    ])('refuses a bad %s (%j) with 400 BAD_USER_INPUT', async (field, args) => {
      const { key } = await tenantWithCredits(server, 0);
      expectBadInput(await server.gql(LIST, args, { key: key.secret }), field);
    });
  });
});

describe('session expiry (a server whose clock the tests move forward)', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  /** A fresh ACTIVE session with a 1 hour lifetime whose end the clock has just passed. */
  async function expiredSession() {
    const { organizationId, key } = await tenantWithCredits(server, 2);
    const session = await createSession(server, key.secret, { ttlSeconds: 3600, tokenLimit: 1000 });
    ok(await charge(server, key.id, session.id, { tokens: 10 }));
    server.clock.advance(3_599_000);
    expect((await getSession(server, session.id)).status).toBe('ACTIVE');
    server.clock.advance(2_000);
    return { organizationId, key, session };
  }

  it('shows EXPIRED (endedAt = expiresAt) through session(id) once the clock passes expiresAt', async () => {
    const { key, session } = await expiredSession();
    const seen = ok(await server.gql(GET, { id: session.id }, { key: key.secret })).session;
    expect(seen).toEqual({ ...session, status: 'EXPIRED', endedAt: session.expiresAt, tokensUsed: 10, tokensRemaining: 990, requestCount: 1 });
    expect(ok(await server.gql(CURRENT, {}, { key: key.secret })).currentSession).toBeNull();
  });

  it('answers currentSession null once the clock passes expiresAt', async () => {
    const { key, session } = await expiredSession();
    expect(ok(await server.gql(CURRENT, {}, { key: key.secret })).currentSession).toBeNull();
    expect(await getSession(server, session.id)).toMatchObject({ status: 'EXPIRED', endedAt: session.expiresAt });
  });

  it('lists the session under sessions(status: EXPIRED) once the clock passes expiresAt', async () => {
    const { key, session } = await expiredSession();
    const expired = ok(await server.gql(LIST, { status: 'EXPIRED' }, { key: key.secret })).sessions;
    expect(expired.nodes).toEqual([expect.objectContaining({ id: session.id, status: 'EXPIRED', endedAt: session.expiresAt })]);
    expect(ok(await server.gql(LIST, { status: 'ACTIVE' }, { key: key.secret })).sessions.totalCount).toBe(0);
  });

  it('refuses verifyKey(requireSession: true) with NO_ACTIVE_SESSION and a charge with 402 NO_ACTIVE_SESSION once the clock passes expiresAt', async () => {
    const { key, session } = await expiredSession();
    expect(await verify(server, key.secret, { requireSession: true })).toMatchObject({ valid: false, code: 'NO_ACTIVE_SESSION', session: null });
    expectRefused(await charge(server, key.id, session.id, { tokens: 1 }), 'NO_ACTIVE_SESSION', 402);
    expect(await getSession(server, session.id)).toMatchObject({ status: 'EXPIRED', tokensUsed: 10, requestCount: 1 });
  });

  it('lets a new session start once the previous one has passed its expiresAt', async () => {
    const { organizationId, key, session } = await expiredSession();
    const next = await createSession(server, key.secret);
    expect(next).toMatchObject({ status: 'ACTIVE', organizationId });
    expect(next.id).not.toBe(session.id);
    expect(await getSession(server, session.id)).toMatchObject({ status: 'EXPIRED', endedAt: session.expiresAt });
  });

  it('refuses to terminate an EXPIRED session with 400 BAD_USER_INPUT and lets a new one start', async () => {
    const { organizationId, key, session } = await expiredSession();
    expectBadInput(await server.gql(TERMINATE, { id: session.id }, { key: key.secret }), 'id');
    const next = await createSession(server, key.secret);
    expect(next.status).toBe('ACTIVE');
    expect(await balance(server, organizationId)).toEqual({ organizationId, available: 0, purchased: 2, used: 2 });
  });
});
