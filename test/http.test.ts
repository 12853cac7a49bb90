import net from 'node:net';
import { startTestServer, TestServer } from './helpers/server';
import { createTenant } from './helpers/fixtures';
import { generateSecret } from '../src/auth/key-format';

/**
 * The HTTP surface around GraphQL: GraphiQL and its local assets, GET queries and CSRF
 * prevention, body limits, request errors and their codes, batching, health checks.
 */
const SECRET_PATTERN = /kw_(live|test)_[0-9A-Za-z]{10,}/;

interface RawResponse {
  status: number;
  contentType: string;
  text: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  json: any;
  /** `json.errors[0].extensions.code`. */
  code: string | undefined;
}

describe('HTTP surface', () => {
  let server: TestServer;
  let origin: string;

  beforeAll(async () => {
    server = await startTestServer();
    origin = new URL(server.url).origin;
  });

  afterAll(async () => {
    if (!server) return;
    try {
      // Requests that carry secrets in every place a log line could pick them up.
      await request('POST', '/graphql', { key: 'kw_live_0123456789abcdefghijABCDEFGHIJ012345', body: JSON.stringify({ query: '{ viewer { scopes } }' }) });
      await request('POST', '/graphql', { key: server.adminKey, body: JSON.stringify({ query: `{ viewer(secret: "${server.adminKey}") { scopes } }` }) });
      await request('POST', '/graphql', { key: server.adminKey, body: `{"query": "${server.adminKey}` });
      const logs = server.logs.join('');
      expect(logs).not.toMatch(SECRET_PATTERN);
      expect(logs).not.toContain(server.adminKey.slice(8, 40));
    } finally {
      await server.close();
    }
  });

  async function request(method: string, path: string, options: { key?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<RawResponse> {
    const response = await fetch(origin + path, {
      method,
      headers: {
        ...(options.body !== undefined && { 'content-type': 'application/json' }),
        ...(options.key && { authorization: `Bearer ${options.key}` }),
        ...options.headers,
      },
      body: options.body,
    });
    const text = await response.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, contentType: response.headers.get('content-type') ?? '', text, json, code: json?.errors?.[0]?.extensions?.code };
  }

  const post = (body: unknown, key: string | undefined = server.adminKey) => request('POST', '/graphql', { key, body: typeof body === 'string' ? body : JSON.stringify(body) });

  describe('GraphiQL', () => {
    it('serves the GraphiQL page to a browser asking for HTML at GET /graphql', async () => {
      const response = await request('GET', '/graphql', { headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' } });
      expect(response.status).toBe(200);
      expect(response.contentType).toMatch(/^text\/html/);
      expect(response.text).toMatch(/^<!doctype html>/i);
      expect(response.text).toContain('GraphiQL');
    });

    it('references only local assets: no absolute URL, no CDN', async () => {
      const { text } = await request('GET', '/graphql', { headers: { accept: 'text/html' } });
      const references = [...text.matchAll(/\b(?:src|href)\s*=\s*["']([^"']*)["']/gi)].map((match) => match[1]);
      expect(references.length).toBeGreaterThanOrEqual(2);
      for (const reference of references) {
        expect(reference).not.toMatch(/^[a-z][a-z0-9+.-]*:/i);
        expect(reference).not.toMatch(/^\/\//);
      }
      expect(text).not.toMatch(/(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i);
      expect(text).not.toMatch(/unpkg|jsdelivr|cdnjs|\bcdn\b|esm\.sh|googleapis/i);
      expect(text).not.toMatch(SECRET_PATTERN);
    });

    it('serves every script and stylesheet the page references with 200 and real content', async () => {
      const { text } = await request('GET', '/graphql', { headers: { accept: 'text/html' } });
      const scripts = [...text.matchAll(/<script\b[^>]*\bsrc\s*=\s*["']([^"']+)["']/gi)].map((match) => match[1]);
      const styles = [...text.matchAll(/<link\b[^>]*\brel="stylesheet"[^>]*\bhref\s*=\s*["']([^"']+)["']/gi)].map((match) => match[1]);
      expect(scripts.length).toBeGreaterThanOrEqual(1);
      expect(styles.length).toBeGreaterThanOrEqual(1);
      for (const asset of [...scripts, ...styles]) {
        const response = await fetch(new URL(asset, server.url));
        const body = Buffer.from(await response.arrayBuffer());
        expect({ asset, status: response.status }).toEqual({ asset, status: 200 });
        // The packages' files are large; keyward's own page script and style (no inline code under the CSP) are small.
        const own = /\/graphiql-(setup\.js|page\.css)$/.test(asset);
        expect({ asset, size: body.length > (own ? 50 : 5_000) }).toEqual({ asset, size: true });
        const type = response.headers.get('content-type') ?? '';
        expect(type).toMatch(scripts.includes(asset) ? /javascript/ : /text\/css/);
      }
    });

    it('answers 404 for an asset that does not exist', async () => {
      const response = await request('GET', '/graphiql-assets/nope.js');
      expect(response.status).toBe(404);
    });
  });

  describe('GET queries and CSRF prevention', () => {
    const query = encodeURIComponent('{ viewer { scopes } }');

    it('answers a GET query with JSON when it carries apollo-require-preflight', async () => {
      const response = await request('GET', `/graphql?query=${query}`, { key: server.adminKey, headers: { 'apollo-require-preflight': 'true' } });
      expect(response.status).toBe(200);
      expect(response.contentType).toMatch(/^application\/(graphql-response\+)?json/);
      expect(response.json).toEqual({ data: { viewer: { scopes: ['*'] } } });
    });

    it('answers a GET query with a tenant key and returns its own scopes', async () => {
      const { key } = await createTenant(server);
      const response = await request('GET', `/graphql?query=${query}`, { key: key.secret, headers: { 'apollo-require-preflight': 'true' } });
      expect(response.status).toBe(200);
      expect(response.json.data.viewer.scopes).toEqual(['*']);
    });

    it('blocks a plain GET query without a preflight header with 400', async () => {
      const response = await request('GET', `/graphql?query=${query}`, { key: server.adminKey });
      expect(response.status).toBe(400);
      expect(response.text).toMatch(/CSRF|Cross-Site Request Forgery/i);
      expect(response.text).not.toContain('"scopes"');
    });

    it('blocks a GET query with a simple content type with 400', async () => {
      const response = await request('GET', `/graphql?query=${query}`, { key: server.adminKey, headers: { 'content-type': 'text/plain' } });
      expect(response.status).toBe(400);
      expect(response.text).toMatch(/CSRF|Cross-Site Request Forgery/i);
      expect(response.text).not.toContain('"scopes"');
    });

    it('blocks a POST with a simple content type (what an HTML form can send) with 400', async () => {
      const response = await request('POST', '/graphql', {
        key: server.adminKey,
        headers: { 'content-type': 'text/plain' },
        body: JSON.stringify({ query: 'mutation { createOrganization(input: { name: "csrf" }) { id } }' }),
      });
      expect(response.status).toBe(400);
      expect(response.text).not.toContain('createOrganization":{');
    });

    it('refuses a mutation sent with GET', async () => {
      const mutation = encodeURIComponent('mutation { createOrganization(input: { name: "via GET" }) { id } }');
      const response = await request('GET', `/graphql?query=${mutation}`, { key: server.adminKey, headers: { 'apollo-require-preflight': 'true' } });
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(response.json?.data?.createOrganization).toBeUndefined();
    });
  });

  describe('request errors', () => {
    it('refuses a body over 1 MiB with 413 PAYLOAD_TOO_LARGE as JSON', async () => {
      const body = JSON.stringify({ query: 'query($x: String) { viewer { scopes } }', variables: { x: 'a'.repeat(1024 * 1024 + 10) } });
      const response = await post(body);
      expect(response.status).toBe(413);
      expect(response.contentType).toMatch(/^application\/json/);
      expect(response.code).toBe('PAYLOAD_TOO_LARGE');
      expect(response.json.data).toBeUndefined();
    });

    it('reads a body just under 1 MiB (a 1,000,000-character name gets BAD_USER_INPUT, not 413)', async () => {
      const response = await post({
        query: 'mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }',
        variables: { input: { name: 'n'.repeat(1_000_000) } },
      });
      expect(response.status).toBe(400);
      expect(response.code).toBe('BAD_USER_INPUT');
      expect(response.json.errors[0].message).toContain('name');
    });

    it('refuses a body that is not valid JSON with 400 BAD_USER_INPUT', async () => {
      const response = await post('{"query": "{ viewer { scopes } }"');
      expect(response.status).toBe(400);
      expect(response.contentType).toMatch(/^application\/json/);
      expect(response.code).toBe('BAD_USER_INPUT');
    });

    it('refuses a GraphQL syntax error with 400 GRAPHQL_PARSE_FAILED', async () => {
      const response = await post({ query: '{ viewer { scopes }' });
      expect(response.status).toBe(400);
      expect(response.code).toBe('GRAPHQL_PARSE_FAILED');
    });

    it('refuses an unknown field with 400 GRAPHQL_VALIDATION_FAILED', async () => {
      const response = await post({ query: '{ viewer { scopes noSuchField } }' });
      expect(response.status).toBe(400);
      expect(response.code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(response.json.errors[0].message).toContain('noSuchField');
    });

    it('refuses a variable of the wrong type with 400 BAD_USER_INPUT', async () => {
      const response = await post({ query: 'query($first: Int) { apiKeys(first: $first) { totalCount } }', variables: { first: 'ten' } });
      expect(response.status).toBe(400);
      expect(response.code).toBe('BAD_USER_INPUT');
      expect(response.json.errors[0].message).toContain('$first');
    });

    it('refuses a missing required variable with 400 BAD_USER_INPUT', async () => {
      const response = await post({ query: 'query($id: ID!) { apiKey(id: $id) { id } }', variables: {} });
      expect(response.status).toBe(400);
      expect(response.code).toBe('BAD_USER_INPUT');
    });

    it('refuses a body without a query with 400', async () => {
      const response = await post({ variables: {} });
      expect(response.status).toBe(400);
      expect(response.code).toBe('BAD_USER_INPUT');
    });

    it('refuses a batched request (a JSON array body) with a 4xx and runs none of it', async () => {
      const response = await post([{ query: '{ viewer { scopes } }' }, { query: '{ viewer { scopes } }' }]);
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(response.text).not.toContain('"scopes"');
      expect(response.code).toBe('BAD_USER_INPUT');
    });

    it('refuses a bad key with 401 INVALID_API_KEY and does not echo the key', async () => {
      const badKey = 'kw_live_0123456789abcdefghijABCDEFGHIJ012345';
      const response = await post({ query: '{ viewer { scopes } }' }, badKey);
      expect(response.status).toBe(401);
      expect(response.code).toBe('INVALID_API_KEY');
      expect(response.text).not.toContain(badKey);
    });
  });

  describe('logs', () => {
    /**
     * No request found makes the server log an error, so this drives the server's own logger
     * with the exact shapes src/server.ts logs (`{ err }` for "unexpected error" and
     * "unhandled HTTP error"). The lines it writes are taken out of server.logs again so the
     * afterAll check stays about what requests make the server log.
     */
    async function logged(write: (secret: string) => void): Promise<{ secret: string; text: string }> {
      const secret = generateSecret('LIVE');
      const before = server.logs.length;
      write(secret);
      await new Promise((resolve) => setImmediate(resolve));
      const text = server.logs.splice(before).join('');
      expect(text.length).toBeGreaterThan(0);
      return { secret, text };
    }

    it('masks a secret in a logged message and in credential headers', async () => {
      const { secret, text } = await logged((s) => server.app.logger.error({ headers: { authorization: `Bearer ${s}`, 'x-api-key': s } }, `request with ${s} failed`));
      expect(text).not.toContain(secret.slice(8));
      expect(text).toContain('kw_live_[REDACTED]');
    });

    it('masks a secret inside a logged error, as the server logs unexpected errors ({ err })', async () => {
      const { secret, text } = await logged((s) => server.app.logger.error({ err: new Error(`lookup failed for ${s}`), path: ['apiKey'] }, 'unexpected error'));
      expect(text).toContain('unexpected error');
      expect(text).not.toContain(secret.slice(8));
    });

    it('masks a secret in a nested field of a log line', async () => {
      const { secret, text } = await logged((s) => server.app.logger.warn({ request: { variables: { token: s } } }, 'readiness check failed'));
      expect(text).not.toContain(secret.slice(8));
    });
  });

  describe('health checks', () => {
    it('answers /healthz with 200', async () => {
      const response = await request('GET', '/healthz');
      expect(response.status).toBe(200);
      expect(response.json).toEqual({ status: 'ok' });
    });

    it('answers /readyz with 200 while the database is up', async () => {
      const response = await request('GET', '/readyz');
      expect(response.status).toBe(200);
      expect(response.json).toMatchObject({ status: 'ready', database: 'up' });
    });

    it('needs no key for the health checks', async () => {
      expect((await request('GET', '/healthz', { key: 'not-a-key' })).status).toBe(200);
    });
  });
});

describe('slow clients (HTTP_REQUEST_TIMEOUT_SECONDS=2, HTTP_HEADERS_TIMEOUT_SECONDS=1)', () => {
  let server: TestServer;
  let port: number;

  beforeAll(async () => {
    server = await startTestServer({ env: { HTTP_REQUEST_TIMEOUT_SECONDS: '2', HTTP_HEADERS_TIMEOUT_SECONDS: '1' } });
    port = Number(new URL(server.url).port);
  });
  afterAll(async () => { await server.close(); });

  /** Opens a raw connection, writes `start`, then nothing more: resolves with what the server sent and how long until it closed. */
  function stall(start: string): Promise<{ received: string; closedAfterMs: number }> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      const opened = performance.now();
      let received = '';
      socket.on('data', (chunk) => { received += chunk.toString(); });
      socket.on('error', reject);
      socket.on('close', () => resolve({ received, closedAfterMs: performance.now() - opened }));
      socket.write(start);
      // A connection still open after this is a failure of the timeout (the test fails on it).
      setTimeout(() => socket.destroy(), 20_000).unref();
    });
  }

  it('answers 408 and closes a connection whose body stops arriving', async () => {
    const { received, closedAfterMs } = await stall(`POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"query":`);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    // Checked once a second: cut between the 2 s deadline and well before the test gives up.
    expect(closedAfterMs).toBeGreaterThanOrEqual(1_900);
    expect(closedAfterMs).toBeLessThan(15_000);
  });

  it('answers 408 and closes a connection whose headers stop arriving', async () => {
    const { received, closedAfterMs } = await stall('POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty');
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(closedAfterMs).toBeGreaterThanOrEqual(900);
    expect(closedAfterMs).toBeLessThan(15_000);
  });

  it('still serves a request that arrives in time', async () => {
    const response = await server.gql('{ viewer { scopes } }');
    expect(response.status).toBe(200);
  });
});
