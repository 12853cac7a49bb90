import { startTestServer, TestServer } from './helpers/server';
import { createKey, createTenant, createOrganization } from './helpers/fixtures';

const VIEWER = '{ viewer { apiKey { id } organization { id } scopes } }';

describe('authentication', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  it('accepts a key as "Authorization: Bearer <key>"', async () => {
    const { key, organizationId } = await createTenant(server);
    const response = await server.gql(VIEWER, {}, { key: key.secret });
    expect(response.status).toBe(200);
    expect(response.body.data.viewer).toEqual({ apiKey: { id: key.id }, organization: { id: organizationId }, scopes: key.apiKey.scopes });
  });

  it('accepts a key as "X-API-Key: <key>"', async () => {
    const { key } = await createTenant(server);
    const response = await server.gql(VIEWER, {}, { key: null, headers: { 'x-api-key': key.secret } });
    expect(response.status).toBe(200);
    expect(response.body.data.viewer.apiKey.id).toBe(key.id);
  });

  it('refuses a field that needs a key with 401 UNAUTHENTICATED when none is sent', async () => {
    const response = await server.gql(VIEWER, {}, { key: null });
    expect(response.status).toBe(401);
    expect(response.code).toBe('UNAUTHENTICATED');
  });

  it('refuses an Authorization header that is not a Bearer token with 401 UNAUTHENTICATED', async () => {
    const response = await server.gql(VIEWER, {}, { key: null, headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    expect(response.status).toBe(401);
    expect(response.code).toBe('UNAUTHENTICATED');
  });

  it.each([
    ['a malformed key', 'not-a-key'],
    ['a key with a wrong prefix', 'kw_prod_0123456789abcdefghijABCDEFGHIJ012345'],
    ['a key whose checksum does not match', 'kw_live_0123456789abcdefghijABCDEFGHIJ012345'],
  ])('refuses %s with 401 INVALID_API_KEY', async (_what, secret) => {
    const response = await server.gql(VIEWER, {}, { key: secret });
    expect(response.status).toBe(401);
    expect(response.code).toBe('INVALID_API_KEY');
  });

  it('refuses a well-formed key that was never issued with 401 INVALID_API_KEY', async () => {
    const { key } = await createTenant(server);
    // Same shape and a valid checksum, but a different pepper-free secret: take another server's.
    const other = await startTestServer();
    try {
      const response = await other.gql(VIEWER, {}, { key: key.secret });
      expect(response.status).toBe(401);
      expect(response.code).toBe('INVALID_API_KEY');
    } finally {
      await other.close();
    }
  });

  it('refuses a revoked key with 401 KEY_REVOKED', async () => {
    const { key } = await createTenant(server);
    const revoked = await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "leaked") { status } }', { id: key.id });
    expect(revoked.body.data.revokeApiKey.status).toBe('REVOKED');
    const response = await server.gql(VIEWER, {}, { key: key.secret });
    expect(response.status).toBe(401);
    expect(response.code).toBe('KEY_REVOKED');
  });

  it('refuses a disabled key with 401 KEY_DISABLED and accepts it again once enabled', async () => {
    const { key } = await createTenant(server);
    await server.gql('mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { status } }', { id: key.id });
    const refused = await server.gql(VIEWER, {}, { key: key.secret });
    expect(refused.status).toBe(401);
    expect(refused.code).toBe('KEY_DISABLED');
    await server.gql('mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: true) { status } }', { id: key.id });
    expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
  });

  it('refuses a key after its expiry with 401 KEY_EXPIRED', async () => {
    const organization = await createOrganization(server);
    const key = await createKey(server, { organizationId: organization.id, expiresInDays: 1 });
    expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
    server.clock.advance(86_400_000 + 1);
    try {
      const response = await server.gql(VIEWER, {}, { key: key.secret });
      expect(response.status).toBe(401);
      expect(response.code).toBe('KEY_EXPIRED');
    } finally {
      server.clock.advance(-(86_400_000 + 1));
    }
  });

  it('refuses a deleted key with 401 INVALID_API_KEY', async () => {
    const { key } = await createTenant(server);
    await server.gql('mutation($id: ID!) { deleteApiKey(id: $id) }', { id: key.id });
    const response = await server.gql(VIEWER, {}, { key: key.secret });
    expect(response.status).toBe(401);
    expect(response.code).toBe('INVALID_API_KEY');
  });

  it('refuses every key of a suspended organization with 403 ORGANIZATION_SUSPENDED', async () => {
    const { key, organizationId } = await createTenant(server);
    await server.gql('mutation($id: ID!) { setOrganizationStatus(id: $id, status: SUSPENDED) { status } }', { id: organizationId });
    const response = await server.gql(VIEWER, {}, { key: key.secret });
    expect(response.status).toBe(403);
    expect(response.code).toBe('ORGANIZATION_SUSPENDED');
    await server.gql('mutation($id: ID!) { setOrganizationStatus(id: $id, status: ACTIVE) { status } }', { id: organizationId });
    expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
  });

  it('refuses a key whose IP allowlist does not contain the client address with 403 FORBIDDEN_IP', async () => {
    const organization = await createOrganization(server);
    const outside = await createKey(server, { organizationId: organization.id, ipAllowlist: ['10.0.0.0/8'] });
    const inside = await createKey(server, { organizationId: organization.id, ipAllowlist: ['10.0.0.0/8', '127.0.0.1'] });
    const refused = await server.gql(VIEWER, {}, { key: outside.secret });
    expect(refused.status).toBe(403);
    expect(refused.code).toBe('FORBIDDEN_IP');
    expect((await server.gql(VIEWER, {}, { key: inside.secret })).status).toBe(200);
  });

  it('ignores X-Forwarded-For unless TRUST_PROXY is set', async () => {
    const organization = await createOrganization(server);
    const key = await createKey(server, { organizationId: organization.id, ipAllowlist: ['203.0.113.0/24'] });
    const response = await server.gql(VIEWER, {}, { key: key.secret, headers: { 'x-forwarded-for': '203.0.113.7' } });
    expect(response.code).toBe('FORBIDDEN_IP');
  });

  it('refuses a field whose scope the key lacks with 403 INSUFFICIENT_SCOPE', async () => {
    const organization = await createOrganization(server);
    const readOnly = await createKey(server, { organizationId: organization.id, preset: 'READ' });
    const response = await server.gql('mutation { createApiKey(input: { name: "x" }) { secret } }', {}, { key: readOnly.secret });
    expect(response.status).toBe(403);
    expect(response.code).toBe('INSUFFICIENT_SCOPE');
    expect(response.body.errors![0].message).toContain('keys:write');
  });

  it('lets a field without a directive through with any valid key, whatever its scopes', async () => {
    const organization = await createOrganization(server);
    const key = await createKey(server, { organizationId: organization.id, scopes: ['inference:run'] });
    const response = await server.gql(VIEWER, {}, { key: key.secret });
    expect(response.status).toBe(200);
    expect(response.body.data.viewer.scopes).toEqual(['inference:run']);
  });

  it('accepts wildcard scopes for @requireScope (keys:* covers keys:read)', async () => {
    const organization = await createOrganization(server);
    const key = await createKey(server, { organizationId: organization.id, scopes: ['keys:*'] });
    const response = await server.gql('{ apiKeys { totalCount } }', {}, { key: key.secret });
    expect(response.status).toBe(200);
    expect(response.body.data.apiKeys.totalCount).toBe(1);
  });
});

describe('authentication behind a proxy (TRUST_PROXY=true)', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer({ env: { TRUST_PROXY: 'true' } }); });
  afterAll(async () => { await server.close(); });

  it('checks the IP allowlist against the X-Forwarded-For client address', async () => {
    const organization = await createOrganization(server);
    const key = await createKey(server, { organizationId: organization.id, ipAllowlist: ['203.0.113.0/24'] });
    const allowed = await server.gql(VIEWER, {}, { key: key.secret, headers: { 'x-forwarded-for': '203.0.113.7' } });
    expect(allowed.status).toBe(200);
    const refused = await server.gql(VIEWER, {}, { key: key.secret, headers: { 'x-forwarded-for': '198.51.100.1' } });
    expect(refused.status).toBe(403);
    expect(refused.code).toBe('FORBIDDEN_IP');
  });
});
