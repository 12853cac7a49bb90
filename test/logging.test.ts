import { startTestServer, TestServer } from './helpers/server';
import { createKey, createTenant, KEY_FIELDS, uniqueName } from './helpers/fixtures';
import { liveClient } from './helpers/ws';

/**
 * Logs: pino JSON, one access line per request to /graphql (method, operation, status,
 * duration, request id, key id) under a request id that the response echoes in X-Request-Id,
 * and never an API key secret. The last test reads every line this file's servers wrote.
 */

/** Anything shaped like a keyward secret, even a fragment long enough to matter. */
const SECRET = /kw_(live|test)_[0-9A-Za-z]{10,}/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const VIEWER = 'query Whoami { viewer { apiKey { id } } }';
const VERIFY = 'mutation Check($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code keyId } }';
const ROTATE = 'mutation Rotate($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 60) { secret apiKey { id } } }';
const REVOKE = 'mutation($id: ID!) { revokeApiKey(id: $id, reason: "logging test") { status } }';
const API_KEY_CHANGED = 'subscription { apiKeyChanged { type } }';

interface LogLine {
  level: number;
  msg: string;
  requestId?: string;
  [field: string]: unknown;
}

/** Every line `server` logged so far, parsed (a line that is not JSON fails the test). */
function linesOf(server: TestServer): LogLine[] {
  return server.logs.join('').split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as LogLine);
}

/**
 * Waits (briefly) for `count` lines matching `predicate` among the lines from index `from` on:
 * an access line is written once the response is done.
 */
async function logged(server: TestServer, predicate: (line: LogLine) => boolean, count = 1, from = 0): Promise<LogLine[]> {
  const deadline = performance.now() + 2_000;
  for (;;) {
    const found = linesOf(server).slice(from).filter(predicate);
    if (found.length >= count || performance.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const accessLinesOf = (server: TestServer, requestId: string) => logged(server, (line) => line.msg === 'graphql request' && line.requestId === requestId);

/** A raw POST to /graphql (for bodies the helper cannot send). */
async function post(server: TestServer, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
}

/** Connects over graphql-ws with `secret` in connectionParams; resolves once accepted or closed. */
async function connect(server: TestServer, secret: string): Promise<{ accepted: boolean; closeCode: number | null; dispose(): Promise<void> }> {
  let closeCode: number | null = null;
  const client = liveClient(server.wsUrl, secret);
  const accepted = await new Promise<boolean>((resolve) => {
    client.on('connected', () => resolve(true));
    client.on('closed', (event) => {
      closeCode = (event as { code?: number }).code ?? null;
      resolve(false);
    });
  });
  return { accepted, closeCode, dispose: async () => { await client.dispose(); } };
}

describe('logs', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  describe('request ids and access lines', () => {
    it('gives each GraphQL request an id, echoes it in X-Request-Id and logs one access line with method, operation, status, duration and key id', async () => {
      const { key } = await createTenant(server);
      const response = await server.gql(VIEWER, {}, { key: key.secret });
      expect(response.status).toBe(200);
      const requestId = response.headers.get('x-request-id');
      expect(requestId).toMatch(UUID);

      const lines = await accessLinesOf(server, requestId!);
      expect(lines).toHaveLength(1);
      const [line] = lines;
      expect(line).toMatchObject({ level: 30, method: 'POST', operation: 'Whoami', operationType: 'query', status: 200, keyId: key.id, requestId });
      expect(typeof line.durationMs).toBe('number');
      expect(line.durationMs as number).toBeGreaterThan(0);
      expect(line.durationMs as number).toBeLessThan(30_000);
      expect(JSON.stringify(line)).not.toMatch(SECRET);
    });

    it('gives two requests two different ids', async () => {
      const { key } = await createTenant(server);
      const first = await server.gql(VIEWER, {}, { key: key.secret });
      const second = await server.gql(VIEWER, {}, { key: key.secret });
      expect(first.headers.get('x-request-id')).toMatch(UUID);
      expect(second.headers.get('x-request-id')).toMatch(UUID);
      expect(first.headers.get('x-request-id')).not.toBe(second.headers.get('x-request-id'));
    });

    it('keeps a safe X-Request-Id sent by the client and logs under it', async () => {
      const { key } = await createTenant(server);
      const requestId = `trace-${Date.now()}.abc_DEF-9`;
      const response = await server.gql(VIEWER, {}, { key: key.secret, headers: { 'x-request-id': requestId } });
      expect(response.status).toBe(200);
      expect(response.headers.get('x-request-id')).toBe(requestId);
      const lines = await accessLinesOf(server, requestId);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ operation: 'Whoami', status: 200, keyId: key.id });
    });

    it.each([
      ['with a space and a quote', 'abc "def"'],
      ['longer than 64 characters', 'a'.repeat(65)],
      ['with a newline-like escape', 'abc%0Ainjected'],
      ['shaped like an API key', 'kw_live_0123456789abcdefghijABCDEFGHIJ012345'],
    ])('replaces an X-Request-Id %s with a generated one', async (_what, unsafe) => {
      const { key } = await createTenant(server);
      const response = await server.gql(VIEWER, {}, { key: key.secret, headers: { 'x-request-id': unsafe } });
      expect(response.status).toBe(200);
      const requestId = response.headers.get('x-request-id');
      expect(requestId).toMatch(UUID);
      expect(await accessLinesOf(server, requestId!)).toHaveLength(1);
      expect(server.logs.join('')).not.toContain(unsafe.length > 8 ? unsafe.slice(4) : unsafe);
    });

    it('logs an anonymous operation under its root fields and a refused call with its status and the refused key id', async () => {
      const { key } = await createTenant(server);
      const revoked = await createKey(server, { organizationId: key.organizationId });
      expect((await server.gql(REVOKE, { id: revoked.id })).status).toBe(200);

      const refused = await server.gql('{ viewer { scopes } organization { id } }', {}, { key: revoked.secret });
      expect(refused.status).toBe(401);
      expect(refused.code).toBe('KEY_REVOKED');
      const [line] = await accessLinesOf(server, refused.headers.get('x-request-id')!);
      expect(line).toMatchObject({ operation: 'viewer+organization', operationType: 'query', status: 401, keyId: revoked.id });
    });

    it('logs a call with a key that does not exist with status 401 and no key id', async () => {
      const response = await server.gql(VIEWER, {}, { key: 'kw_test_0123456789abcdefghijABCDEFGHIJ012345' });
      expect(response.status).toBe(401);
      expect(response.code).toBe('INVALID_API_KEY');
      const [line] = await accessLinesOf(server, response.headers.get('x-request-id')!);
      expect(line).toMatchObject({ method: 'POST', operation: 'Whoami', status: 401, keyId: null });
    });

    it('logs a request refused before GraphQL runs (body over 1 MiB) with its status and no operation', async () => {
      const response = await post(server, JSON.stringify({ query: `{ viewer { scopes } } # ${'x'.repeat(1024 * 1024)}` }), { authorization: `Bearer ${server.adminKey}` });
      expect(response.status).toBe(413);
      const requestId = response.headers.get('x-request-id');
      expect(requestId).toMatch(UUID);
      const [line] = await accessLinesOf(server, requestId!);
      expect(line).toMatchObject({ method: 'POST', operation: null, operationType: null, status: 413, keyId: null });
    });

    it('logs a WebSocket connection with its own request id and key id, and a refused one with its code', async () => {
      const { key } = await createTenant(server);
      const accepted = await connect(server, key.secret);
      try {
        expect(accepted.accepted).toBe(true);
        const [line] = await logged(server, (l) => l.msg === 'websocket connected' && l.keyId === key.id);
        expect(line).toMatchObject({ level: 30, keyId: key.id, organizationId: key.organizationId });
        expect(line.requestId).toMatch(UUID);
      } finally {
        await accepted.dispose();
      }

      const unknown = 'kw_live_0123456789abcdefghijABCDEFGHIJ012345';
      const before = linesOf(server).length;
      const refused = await connect(server, unknown);
      await refused.dispose();
      expect(refused.accepted).toBe(false);
      expect(refused.closeCode).toBe(4401);
      const lines = await logged(server, (l) => l.msg === 'websocket refused', 1, before);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: 30, code: 'NOT_FOUND', keyId: null });
      expect(lines[0].requestId).toMatch(UUID);
      expect(linesOf(server).slice(before).map((l) => JSON.stringify(l)).join('\n')).not.toMatch(SECRET);
    });
  });

  describe('secrets', () => {
    /**
     * A tour of everything that carries a secret — created and rotated keys (secrets in
     * responses), verifyKey with the secret in variables and inline in the query, a secret as
     * operation name and as X-Request-Id, unknown and revoked keys, WebSocket connectionParams —
     * on a server of its own that is then shut down; then every line this file's servers logged
     * is read, and none holds a secret.
     */
    it('writes no API key secret in any log line, whatever the requests carried', async () => {
      const tour = await startTestServer();
      const secrets: string[] = [tour.adminKey];
      const requestIds: string[] = [];
      const noteRequest = (response: { headers: Headers }) => {
        const id = response.headers.get('x-request-id');
        expect(id).toMatch(UUID);
        requestIds.push(id!);
      };
      try {
        const created = await tour.gql(
          `mutation Create($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { ${KEY_FIELDS} } } }`,
          { input: { name: uniqueName('Key'), organizationId: tour.platformOrganizationId, preset: 'ADMIN' } },
        );
        expect(created.status).toBe(200);
        noteRequest(created);
        const first = created.body.data.createApiKey;
        secrets.push(first.secret);

        const rotated = await tour.gql(ROTATE, { id: first.apiKey.id });
        expect(rotated.status).toBe(200);
        noteRequest(rotated);
        const current = rotated.body.data.rotateApiKey.secret as string;
        secrets.push(current);

        const verified = await tour.gql(VERIFY, { input: { key: current } });
        expect(verified.body.data.verifyKey).toMatchObject({ valid: true, code: 'VALID' });
        noteRequest(verified);
        const inline = await tour.gql(`mutation { verifyKey(input: { key: "${first.secret}" }) { valid code } }`);
        expect(inline.status).toBe(200);
        noteRequest(inline);
        const badChecksum = `${current.slice(0, -1)}${current.endsWith('A') ? 'B' : 'A'}`;
        const badVerify = await tour.gql(VERIFY, { input: { key: badChecksum } });
        expect(badVerify.body.data.verifyKey).toMatchObject({ valid: false, code: 'NOT_FOUND' });
        noteRequest(badVerify);

        // The secret as the caller: valid, then a bad one, then one with a wrong checksum as X-API-Key.
        noteRequest(await tour.gql(VIEWER, {}, { key: current }));
        const bad = await tour.gql(VIEWER, {}, { key: badChecksum });
        expect(bad.status).toBe(401);
        expect(bad.code).toBe('INVALID_API_KEY');
        noteRequest(bad);
        const viaHeader = await tour.gql(VIEWER, {}, { key: null, headers: { 'x-api-key': badChecksum } });
        expect(viaHeader.status).toBe(401);
        noteRequest(viaHeader);
        // A malformed Authorization header (the context cannot even be built).
        const malformed = await tour.gql(VIEWER, {}, { key: null, headers: { authorization: `Token ${current}` } });
        expect(malformed.status).toBe(401);
        expect(malformed.code).toBe('UNAUTHENTICATED');
        noteRequest(malformed);

        // A secret is a valid GraphQL name: as the operation name, and as X-Request-Id.
        const named = await tour.gql(`query ${current} { viewer { scopes } }`, {}, { key: current });
        expect(named.status).toBe(200);
        noteRequest(named);
        const asRequestId = await tour.gql(VIEWER, {}, { key: current, headers: { 'x-request-id': current } });
        expect(asRequestId.headers.get('x-request-id')).not.toBe(current);
        noteRequest(asRequestId);
        // A body that does not parse, with the secret in it.
        const unparsable = await post(tour, `{"query": "${current}`, { authorization: `Bearer ${current}` });
        expect(unparsable.status).toBe(400);
        noteRequest(unparsable);
        // A query that does not validate, naming the secret.
        const invalid = await tour.gql(`{ viewer { ${current} } }`, {}, { key: current });
        expect(invalid.status).toBe(400);
        noteRequest(invalid);

        // The rotated-away key, revoked: refused with its id logged, not its secret.
        const revoke = await tour.gql(REVOKE, { id: rotated.body.data.rotateApiKey.apiKey.id });
        expect(revoke.status).toBe(200);
        noteRequest(revoke);
        const revokedCall = await tour.gql(VIEWER, {}, { key: current });
        expect(revokedCall.status).toBe(401);
        noteRequest(revokedCall);

        // WebSocket: accepted (then a subscription), and refused.
        const { key: tenantKey } = await createTenant(tour);
        secrets.push(tenantKey.secret);
        const socket = await connect(tour, tenantKey.secret);
        expect(socket.accepted).toBe(true);
        await socket.dispose();
        const refusedSocket = await connect(tour, current);
        expect(refusedSocket.accepted).toBe(false);
        await refusedSocket.dispose();
        const ws = liveClient(tour.wsUrl, tenantKey.secret, { keyAs: 'apiKey', lazy: true });
        await new Promise<void>((resolve, reject) => {
          const stop = ws.subscribe({ query: API_KEY_CHANGED }, { next: () => {}, error: reject, complete: () => resolve() });
          setTimeout(() => { stop(); }, 100);
        });
        await ws.dispose();

        // Every request of the tour has its access line.
        for (const requestId of requestIds) expect(await accessLinesOf(tour, requestId)).toHaveLength(1);
        expect((await logged(tour, (line) => line.msg === 'websocket connected', 2)).length).toBeGreaterThanOrEqual(2);
        expect(await logged(tour, (line) => line.msg === 'websocket refused')).toHaveLength(1);
      } finally {
        await tour.close();
      }

      // The pattern would catch every secret of the tour.
      for (const secret of secrets) expect(secret).toMatch(SECRET);
      const tourText = tour.logs.join('');
      expect(linesOf(tour).length).toBeGreaterThanOrEqual(requestIds.length);
      expect(tourText).not.toMatch(SECRET);
      for (const secret of secrets) expect(tourText).not.toContain(secret.slice(8, 30));

      // …and every line the shared server wrote for the tests above.
      const sharedLines = linesOf(server);
      expect(sharedLines.filter((line) => line.msg === 'graphql request').length).toBeGreaterThan(5);
      expect(server.logs.join('')).not.toMatch(SECRET);
      expect(server.logs.join('')).not.toContain(server.adminKey.slice(8, 30));
    });
  });
});
