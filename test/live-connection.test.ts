import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, createTenant, CreatedKey } from './helpers/fixtures';
import { generateSecret } from '../src/auth/key-format';
import { between, near, ok } from './helpers/expect';
import { LiveClients, RawSocket } from './helpers/ws';

/**
 * The graphql-ws connection itself: authentication once at connection_init (4401 / 4403),
 * sockets closed with 4403 within a second when their key stops working while connected,
 * graphql-ws's own codes (4408 init timeout, 4429 second init), and the cap of 50
 * subscriptions per connection. Events are tested in live.test.ts.
 */

const RATE_LIMIT_CHANGED = 'subscription($apiKeyId: ID!) { rateLimitChanged(apiKeyId: $apiKeyId) { apiKeyId name remaining } }';
const RATE_LIMIT_STATUS = 'query($id: ID!) { rateLimitStatus(apiKeyId: $id) { name limit remaining } }';
const VIEWER = '{ viewer { apiKey { id } } }';

/** A key that stops working must have its sockets closed within this long. */
const CLOSE_WITHIN_MS = 1_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('live connections', () => {
  let server: TestServer;
  let sockets: RawSocket[] = [];
  const clients = new LiveClients();

  beforeAll(async () => { server = await startTestServer(); });
  afterEach(async () => {
    await clients.disposeAll();
    await Promise.all(sockets.splice(0).map((raw) => raw.terminate()));
  });
  afterAll(async () => { await server.close(); });

  function open(options?: { autoPong?: boolean }): RawSocket {
    const raw = new RawSocket(server.wsUrl, options);
    sockets.push(raw);
    return raw;
  }

  /** A socket that completed connection_init with `{ authorization: "Bearer <secret>" }`. */
  async function connected(secret: string, options?: { autoPong?: boolean }): Promise<RawSocket> {
    const raw = open(options);
    const outcome = await raw.init({ authorization: `Bearer ${secret}` });
    if (outcome !== 'ack') throw new Error(`expected connection_ack, got close ${JSON.stringify(outcome)}`);
    return raw;
  }

  /** The close of `raw`, which must come with `code` within CLOSE_WITHIN_MS of `since`. */
  async function expectClosedWithin(raw: RawSocket, code: number, since: number): Promise<void> {
    await raw.until(() => raw.closedWith !== null, CLOSE_WITHIN_MS + 1_000, `close ${code}`);
    const closed = raw.closedWith!;
    expect(closed.code).toBe(code);
    expect(closed.at - since).toBeLessThan(CLOSE_WITHIN_MS);
  }

  /** The socket is still open and still answers operations as `keyId`. */
  async function expectStillWorking(raw: RawSocket, keyId: string): Promise<void> {
    expect(raw.isOpen).toBe(true);
    expect(await raw.query(VIEWER)).toEqual({ data: { viewer: { apiKey: { id: keyId } } } });
  }

  describe('authentication at connection_init', () => {
    it('accepts the key as connectionParams { authorization: "Bearer <key>" }', async () => {
      const { key } = await createTenant(server);
      const raw = await connected(key.secret);
      expect(await raw.query(VIEWER)).toEqual({ data: { viewer: { apiKey: { id: key.id } } } });
    });

    it('accepts the key as connectionParams { apiKey: "<key>" }', async () => {
      const { key } = await createTenant(server);
      const raw = open();
      expect(await raw.init({ apiKey: key.secret })).toBe('ack');
      expect(await raw.query(VIEWER)).toEqual({ data: { viewer: { apiKey: { id: key.id } } } });
    });

    it("consumes nothing of the key's rate limits or quotas by connecting", async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, {
        organizationId: organization.id,
        rateLimits: [{ name: 'burst', limit: 5, windowSeconds: 60 }],
        quotas: [{ meter: 'REQUESTS', period: 'LIFETIME', limit: 5 }],
      });
      await connected(key.secret);
      await connected(key.secret);
      expect(ok(await server.gql(RATE_LIMIT_STATUS, { id: key.id })).rateLimitStatus).toEqual([{ name: 'burst', limit: 5, remaining: 5 }]);
      expect(ok(await server.gql('query($id: ID!) { quotas(apiKeyId: $id) { used } }', { id: key.id })).quotas).toEqual([{ used: 0 }]);
    });

    it('closes with 4401 when connection_init carries no key', async () => {
      const raw = open();
      expect(await raw.init()).toMatchObject({ code: 4401 });
      expect(raw.acked).toBe(false);
    });

    it.each([
      ['empty connectionParams', {}],
      ['an Authorization that is not a Bearer token', { authorization: 'Basic dXNlcjpwYXNz' }],
      ['a malformed key', { authorization: 'Bearer not-a-key' }],
      ['a malformed key given as apiKey', { apiKey: 'kw_live_0123456789abcdefghijABCDEFGHIJ012345' }],
      ['a well-formed key that was never issued', { authorization: `Bearer ${generateSecret('LIVE')}` }],
    ])('closes with 4401 for %s', async (_what, params) => {
      const raw = open();
      expect(await raw.init(params)).toMatchObject({ code: 4401 });
      expect(raw.acked).toBe(false);
    });

    it.each([
      ['revoked', 'mutation($id: ID!) { revokeApiKey(id: $id, reason: "leaked") { id } }'],
      ['disabled', 'mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { id } }'],
      ['deleted', 'mutation($id: ID!) { deleteApiKey(id: $id) }'],
    ])('closes with 4401 for a %s key', async (_what, mutation) => {
      const { key } = await createTenant(server);
      ok(await server.gql(mutation, { id: key.id }));
      const raw = open();
      expect(await raw.init({ authorization: `Bearer ${key.secret}` })).toMatchObject({ code: 4401 });
    });

    it('closes with 4401 for an expired key', async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, expiresAt: new Date(server.clock.now().getTime() + 120_000).toISOString() });
      const start = server.clock.now();
      try {
        server.clock.advance(180_000);
        const raw = open();
        expect(await raw.init({ authorization: `Bearer ${key.secret}` })).toMatchObject({ code: 4401 });
      } finally {
        server.clock.set(start);
      }
    });

    it('closes with 4403 when the organization is suspended', async () => {
      const { organizationId, key } = await createTenant(server);
      ok(await server.gql('mutation($id: ID!) { setOrganizationStatus(id: $id, status: SUSPENDED) { status } }', { id: organizationId }));
      const raw = open();
      expect(await raw.init({ authorization: `Bearer ${key.secret}` })).toMatchObject({ code: 4403 });
    });

    it("closes with 4403 when the client's address is not in the key's ipAllowlist", async () => {
      const organization = await createOrganization(server);
      const key = await createKey(server, { organizationId: organization.id, ipAllowlist: ['10.1.2.3'] });
      const raw = open();
      expect(await raw.init({ authorization: `Bearer ${key.secret}` })).toMatchObject({ code: 4403 });
      const allowed = await createKey(server, { organizationId: organization.id, ipAllowlist: ['127.0.0.1', '::ffff:127.0.0.1'] });
      await connected(allowed.secret);
    });
  });

  describe('a key that stops working while connected', () => {
    /** Two keys of one organization, each with an open socket. */
    async function twoConnectedKeys(): Promise<{ organizationId: string; key: CreatedKey; sibling: CreatedKey; socket: RawSocket; siblingSocket: RawSocket }> {
      const { organizationId, key } = await createTenant(server);
      const sibling = await createKey(server, { organizationId, preset: 'ADMIN' });
      return { organizationId, key, sibling, socket: await connected(key.secret), siblingSocket: await connected(sibling.secret) };
    }

    it("closes the key's sockets with 4403 within 1 s of revokeApiKey; other keys' sockets stay open", async () => {
      const { key, sibling, socket, siblingSocket } = await twoConnectedKeys();
      const second = await connected(key.secret);
      ok(await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "leaked") { id } }', { id: key.id }));
      const revokedAt = performance.now();
      await expectClosedWithin(socket, 4403, revokedAt);
      await expectClosedWithin(second, 4403, revokedAt);
      await expectStillWorking(siblingSocket, sibling.id);
    });

    it('closes with 4403 within 1 s when the key is disabled', async () => {
      const { key, sibling, socket, siblingSocket } = await twoConnectedKeys();
      ok(await server.gql('mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { id } }', { id: key.id }));
      await expectClosedWithin(socket, 4403, performance.now());
      await expectStillWorking(siblingSocket, sibling.id);
    });

    it('closes with 4403 within 1 s when the key is deleted', async () => {
      const { key, sibling, socket, siblingSocket } = await twoConnectedKeys();
      expect(ok(await server.gql('mutation($id: ID!) { deleteApiKey(id: $id) }', { id: key.id })).deleteApiKey).toBe(true);
      await expectClosedWithin(socket, 4403, performance.now());
      await expectStillWorking(siblingSocket, sibling.id);
    });

    it('keeps the socket open when the key is only updated', async () => {
      const { key, socket } = await twoConnectedKeys();
      ok(await server.gql('mutation($id: ID!) { updateApiKey(id: $id, input: { name: "renamed" }) { id } }', { id: key.id }));
      await sleep(CLOSE_WITHIN_MS);
      await expectStillWorking(socket, key.id);
    });

    it("closes every socket of the organization with 4403 within 1 s when it is suspended; other organizations' stay open", async () => {
      const { organizationId, socket, siblingSocket } = await twoConnectedKeys();
      const other = await createTenant(server);
      const otherSocket = await connected(other.key.secret);
      ok(await server.gql('mutation($id: ID!) { setOrganizationStatus(id: $id, status: SUSPENDED) { status } }', { id: organizationId }));
      const suspendedAt = performance.now();
      await expectClosedWithin(socket, 4403, suspendedAt);
      await expectClosedWithin(siblingSocket, 4403, suspendedAt);
      await expectStillWorking(otherSocket, other.key.id);
    });

    it('closes with 4403 within about 1 s once the server clock passes the key\'s expiresAt', async () => {
      const { organizationId, key: sibling } = await createTenant(server);
      const key = await createKey(server, { organizationId, expiresAt: new Date(server.clock.now().getTime() + 120_000).toISOString() });
      const socket = await connected(key.secret);
      const siblingSocket = await connected(sibling.secret);
      const start = server.clock.now();
      try {
        await sleep(600);
        expect(socket.isOpen).toBe(true);
        server.clock.advance(180_000);
        await expectClosedWithin(socket, 4403, performance.now());
        await expectStillWorking(siblingSocket, sibling.id);
      } finally {
        server.clock.set(start);
      }
    });

    it('closes with 4403 when the expiry is moved into the past by updateApiKey', async () => {
      const { organizationId, key: sibling } = await createTenant(server);
      const key = await createKey(server, { organizationId, expiresAt: new Date(server.clock.now().getTime() + 3_600_000).toISOString() });
      const socket = await connected(key.secret);
      const start = server.clock.now();
      try {
        ok(await server.gql('mutation($id: ID!, $at: DateTime) { updateApiKey(id: $id, input: { expiresAt: $at }) { id } }', {
          id: key.id,
          at: new Date(start.getTime() + 60_000).toISOString(),
        }));
        await sleep(600);
        expect(socket.isOpen).toBe(true);
        server.clock.advance(120_000);
        await expectClosedWithin(socket, 4403, performance.now());
        await connected(sibling.secret);
      } finally {
        server.clock.set(start);
      }
    });
  });

  /*
   * README: "keep-alive pings every 15 s". Real time (the server's keep-alive interval is not
   * configurable), so this one test waits two intervals: ~32 s. Fails while graphql-ws's own
   * 12 s keep-alive runs beside the hand-written 15 s loop (issue 16 item 4).
   */
  describe('keep-alive', () => {
    const KEEP_ALIVE_MS = 15_000;
    const TOLERANCE_MS = 2_000;

    it('pings every socket once every 15 s, and drops a socket that stops answering pongs by the next ping', async () => {
      const { key } = await createTenant(server);
      const answering = await connected(key.secret);
      const answeringSince = performance.now();
      const mute = await connected(key.secret, { autoPong: false });
      const muteSince = performance.now();

      await sleep(2 * KEEP_ALIVE_MS + TOLERANCE_MS);

      // One ping per interval, no more (a second keep-alive would show as extra pings).
      expect(answering.pings.map((at) => Math.round(at - answeringSince))).toEqual([near(KEEP_ALIVE_MS, TOLERANCE_MS), near(2 * KEEP_ALIVE_MS, TOLERANCE_MS)]);
      expect(answering.isOpen).toBe(true);
      await expectStillWorking(answering, key.id);
      // The mute socket got its ping, missed the pong, and was cut (1006: no close frame) by the next one.
      expect(mute.pings.length).toBeGreaterThanOrEqual(1);
      expect(mute.closedWith && { code: mute.closedWith.code, afterMs: Math.round(mute.closedWith.at - muteSince) })
        .toEqual({ code: 1006, afterMs: between(KEEP_ALIVE_MS - TOLERANCE_MS, 2 * KEEP_ALIVE_MS + TOLERANCE_MS) });
    }, 2 * 15_000 + 15_000);
  });

  describe('graphql-ws protocol limits', () => {
    it('closes a connection that sends no connection_init with 4408 after about 3 s', async () => {
      const raw = open();
      await raw.opened;
      const openedAt = performance.now();
      const closed = await raw.closed;
      expect(closed.code).toBe(4408);
      expect(closed.at - openedAt).toBeGreaterThanOrEqual(2_800);
      expect(closed.at - openedAt).toBeLessThan(4_500);
    });

    it('closes with 4429 on a second connection_init', async () => {
      const { key } = await createTenant(server);
      const raw = await connected(key.secret);
      raw.send({ type: 'connection_init', payload: { authorization: `Bearer ${key.secret}` } });
      expect((await raw.closed).code).toBe(4429);
    });

    it('refuses the 51st subscription of a connection with RATE_LIMITED, keeps the other 50 working, and frees a slot when one completes', async () => {
      const { organizationId, key: watcher } = await createTenant(server);
      const target = await createKey(server, { organizationId, rateLimits: [{ name: 'minute', limit: 1000, windowSeconds: 60 }] });
      const client = clients.connect(server.wsUrl, watcher.secret, { keyAs: 'apiKey', lazy: true });

      type Seen = { remaining: number[]; errors: Array<{ message: string; extensions?: { code?: string } }>; completed: boolean };
      const subscribe = (seen: Seen) => client.subscribe<{ rateLimitChanged: { remaining: number } }>({ query: RATE_LIMIT_CHANGED, variables: { apiKeyId: target.id } }, {
        next: (result) => {
          if (result.errors) seen.errors.push(...(result.errors as Seen['errors']));
          if (result.data) seen.remaining.push(result.data.rateLimitChanged.remaining);
        },
        error: (error) => { seen.errors.push(...(Array.isArray(error) ? error : [{ message: String(error) }])); },
        complete: () => { seen.completed = true; },
      });
      const waitFor = async (predicate: () => boolean, what: string) => {
        for (const deadline = Date.now() + 5_000; !predicate(); await sleep(20)) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        }
      };

      const subscriptions = Array.from({ length: 50 }, () => ({ seen: { remaining: [], errors: [], completed: false } as Seen, stop: (() => {}) as () => void }));
      for (const subscription of subscriptions) subscription.stop = subscribe(subscription.seen);
      await waitFor(() => subscriptions.every(({ seen }) => seen.remaining.length === 1), 'the 50 snapshots');
      expect(subscriptions.every(({ seen }) => seen.remaining[0] === 1000 && seen.errors.length === 0)).toBe(true);

      const refused: Seen = { remaining: [], errors: [], completed: false };
      subscribe(refused);
      await waitFor(() => refused.errors.length > 0, 'the refusal of the 51st');
      expect(refused.errors[0].extensions?.code).toBe('RATE_LIMITED');
      expect(refused.remaining).toEqual([]);

      // The 50 keep working.
      ok(await server.gql('mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid } }', { input: { key: target.secret } }));
      await waitFor(() => subscriptions.every(({ seen }) => seen.remaining.length === 2), 'the update on all 50');
      expect(subscriptions.every(({ seen }) => seen.remaining[1] === 999 && seen.errors.length === 0 && !seen.completed)).toBe(true);

      // Completing one frees its slot.
      subscriptions[0].stop();
      const replacement: Seen = { remaining: [], errors: [], completed: false };
      subscribe(replacement);
      await waitFor(() => replacement.remaining.length > 0 || replacement.errors.length > 0, 'the replacement subscription');
      expect(replacement).toEqual({ remaining: [999], errors: [], completed: false });
    });

    it('frees the slots of subscriptions that ended with an error', async () => {
      const { key: watcher } = await createTenant(server);
      const other = await createOrganization(server);
      const client = clients.connect(server.wsUrl, watcher.secret, { keyAs: 'apiKey', lazy: true });
      const run = (query: string, variables: Record<string, unknown>) => new Promise<string | undefined>((resolve) => {
        let code: string | undefined;
        client.subscribe<unknown>({ query, variables }, {
          next: (result) => { code ??= (result.errors?.[0]?.extensions as { code?: string } | undefined)?.code; },
          error: (error) => { code ??= Array.isArray(error) ? (error[0]?.extensions as { code?: string } | undefined)?.code : String(error); resolve(code); },
          complete: () => resolve(code),
        });
      });
      // 60 refused subscriptions one after another: each ends and gives its slot back (else the 51st would be RATE_LIMITED).
      const codes: Array<string | undefined> = [];
      for (let i = 0; i < 60; i += 1) codes.push(await run('subscription($id: ID) { apiKeyChanged(organizationId: $id) { type } }', { id: other.id }));
      expect(codes).toEqual(Array(60).fill('NOT_FOUND'));
      expect(await run(VIEWER, {})).toBeUndefined();
    });
  });
});

describe('WebSockets per key and per client address (MAX_WEBSOCKETS_PER_KEY=3, MAX_WEBSOCKETS_PER_ADDRESS=5)', () => {
  let server: TestServer;
  let wsUrl: string;
  let sockets: RawSocket[] = [];

  beforeAll(async () => {
    // TRUST_PROXY: each test's sockets come from addresses of their own (X-Forwarded-For).
    server = await startTestServer({ env: { MAX_WEBSOCKETS_PER_KEY: '3', MAX_WEBSOCKETS_PER_ADDRESS: '5', TRUST_PROXY: 'true' } });
    wsUrl = server.url.replace(/^http/, 'ws');
  });
  afterEach(async () => {
    for (const raw of sockets) raw.socket.terminate();
    await Promise.all(sockets.map((raw) => raw.closed));
    sockets = [];
  });
  afterAll(async () => { await server.close(); });

  function open(address: string): RawSocket {
    const raw = new RawSocket(wsUrl, { headers: { 'x-forwarded-for': address } });
    sockets.push(raw);
    return raw;
  }

  async function connected(secret: string, address: string): Promise<RawSocket> {
    const raw = open(address);
    const outcome = await raw.init({ authorization: `Bearer ${secret}` });
    if (outcome !== 'ack') throw new Error(`expected connection_ack, got close ${JSON.stringify(outcome)}`);
    return raw;
  }

  it("closes a key's 4th socket with 4029 naming the limit, keeps its 3 others working, serves other keys, and admits it again once one closes", async () => {
    const { key } = await createTenant(server);
    const { key: other } = await createTenant(server);
    const held = [await connected(key.secret, '198.51.100.1'), await connected(key.secret, '198.51.100.2'), await connected(key.secret, '198.51.100.3')];

    const fourth = open('198.51.100.4');
    const refused = await fourth.init({ authorization: `Bearer ${key.secret}` });
    expect(refused).toMatchObject({ code: 4029, reason: expect.stringMatching(/this API key already holds 3 WebSockets .*MAX_WEBSOCKETS_PER_KEY/) });
    for (const raw of held) expect(await raw.query(VIEWER)).toEqual({ data: { viewer: { apiKey: { id: key.id } } } });
    await connected(other.secret, '198.51.100.4');

    held[0].socket.close();
    await held[0].closed;
    const again = await connected(key.secret, '198.51.100.4');
    expect(await again.query(VIEWER)).toEqual({ data: { viewer: { apiKey: { id: key.id } } } });
  });

  it("closes an address's 6th socket with 4029 naming the limit right after the upgrade, before any key, and admits it again once one closes", async () => {
    const { key } = await createTenant(server);
    const { key: second } = await createTenant(server);
    // Five sockets: two authenticated, three that never send connection_init.
    const held = [await connected(key.secret, '203.0.113.9'), await connected(second.secret, '203.0.113.9'), open('203.0.113.9'), open('203.0.113.9'), open('203.0.113.9')];
    await Promise.all(held.map((raw) => raw.opened));

    const sixth = open('203.0.113.9');
    const closed = await sixth.closed;
    expect(closed).toMatchObject({ code: 4029, reason: expect.stringMatching(/this client address already holds 5 WebSockets .*MAX_WEBSOCKETS_PER_ADDRESS/) });
    expect(sixth.messages).toEqual([]);
    // Another address is not affected.
    await connected(key.secret, '203.0.113.10');

    // The sockets that never authenticated are closed by graphql-ws (4408) and give their places back.
    await Promise.all(held.slice(2).map((raw) => raw.closed));
    expect(held.slice(2).map((raw) => raw.closedWith!.code)).toEqual([4408, 4408, 4408]);
    await connected(key.secret, '203.0.113.9');
  });

  it('gives an address its place back when the server closes a socket it refused (4401)', async () => {
    const refused = Array.from({ length: 5 }, () => open('192.0.2.77'));
    const outcomes = await Promise.all(refused.map((raw) => raw.init({ authorization: `Bearer ${generateSecret('LIVE')}` })));
    expect(outcomes.map((outcome) => (outcome === 'ack' ? 'ack' : outcome.code))).toEqual(Array(5).fill(4401));
    const { key } = await createTenant(server);
    await connected(key.secret, '192.0.2.77');
  });
});
