import { startTestServer, TestServer, GraphQLResponse } from './helpers/server';
import { createKey, createOrganization, createTenant, uniqueName } from './helpers/fixtures';
import { expectRefused } from './helpers/expect';

const ENTRY_FIELDS = 'id organizationId actorKeyId action targetType targetId ip metadata at';
const AUDIT_LOG = `query($organizationId: ID, $first: Int, $after: String) {
  auditLog(organizationId: $organizationId, first: $first, after: $after) {
    nodes { ${ENTRY_FIELDS} } pageInfo { endCursor hasNextPage } totalCount } }`;
const VIEWER_KEY_ID = '{ viewer { apiKey { id } } }';

const LOCALHOST = /^(::ffff:)?127\.0\.0\.1$/;
const ANY_SECRET = /kw_(live|test)_[0-9A-Za-z]{10,}/;

interface Entry {
  id: string;
  organizationId: string | null;
  actorKeyId: string | null;
  action: string;
  targetType: string;
  targetId: string | null;
  ip: string | null;
  metadata: Record<string, any> | null;
  at: string;
}

describe('audit log', () => {
  let server: TestServer;
  let adminKeyId: string;

  beforeAll(async () => {
    server = await startTestServer();
    const viewer = await server.gql(VIEWER_KEY_ID);
    adminKeyId = viewer.body.data.viewer.apiKey.id;
  });
  afterAll(async () => { await server.close(); });

  /** Every entry of one organization, read by the platform admin, newest first. */
  async function entriesOf(organizationId: string): Promise<Entry[]> {
    const response = await server.gql(AUDIT_LOG, { organizationId, first: 500 });
    expect(response.status).toBe(200);
    return response.body.data.auditLog.nodes;
  }

  async function totalCount(organizationId?: string): Promise<number> {
    const response = await server.gql(AUDIT_LOG, { organizationId, first: 1 });
    expect(response.status).toBe(200);
    return response.body.data.auditLog.totalCount;
  }

  /**
   * Runs one mutation and returns the single audit entry it added to the organization:
   * exactly one new entry, whatever the ordering of entries made at the same instant.
   */
  async function auditedBy(organizationId: string, run: () => Promise<GraphQLResponse>): Promise<{ response: GraphQLResponse; entry: Entry }> {
    const before = new Set((await entriesOf(organizationId)).map((entry) => entry.id));
    const globalBefore = await totalCount();
    const response = await run();
    expect(response.body.errors).toBeUndefined();
    expect(response.status).toBe(200);
    const added = (await entriesOf(organizationId)).filter((entry) => !before.has(entry.id));
    expect(added).toHaveLength(1);
    expect(await totalCount()).toBe(globalBefore + 1);
    return { response, entry: added[0] };
  }

  function expectEntry(entry: Entry, expected: Partial<Entry>): void {
    expect(entry).toMatchObject(expected);
    expect(entry.id).toMatch(/^aud_[0-9a-z]{26}$/);
    expect(entry.ip).toMatch(LOCALHOST);
    expect(entry.at).toBe(server.clock.now().toISOString());
    expect(JSON.stringify(entry.metadata ?? {})).not.toMatch(ANY_SECRET);
  }

  describe('one entry per mutation', () => {
    it('records organization.create by the platform admin key', async () => {
      const name = uniqueName();
      const globalBefore = await totalCount();
      const response = await server.gql('mutation($name: String!) { createOrganization(input: { name: $name }) { id } }', { name });
      expect(response.status).toBe(200);
      const organizationId = response.body.data.createOrganization.id;
      const entries = await entriesOf(organizationId);
      expect(entries).toHaveLength(1);
      expect(await totalCount()).toBe(globalBefore + 1);
      expectEntry(entries[0], { action: 'organization.create', targetType: 'organization', targetId: organizationId, organizationId, actorKeyId: adminKeyId });
      expect(entries[0].metadata).toMatchObject({ name });
    });

    it('records organization.update by the tenant ADMIN key that renamed it', async () => {
      const { organizationId, key } = await createTenant(server);
      const name = uniqueName('Renamed');
      const { entry } = await auditedBy(organizationId, () => server.gql(
        'mutation($id: ID!, $name: String!) { updateOrganization(id: $id, input: { name: $name }) { id } }',
        { id: organizationId, name },
        { key: key.secret },
      ));
      expectEntry(entry, { action: 'organization.update', targetType: 'organization', targetId: organizationId, organizationId, actorKeyId: key.id });
      expect(entry.metadata).toMatchObject({ name });
    });

    it('records organization.suspend and organization.activate by the platform admin key', async () => {
      const organization = await createOrganization(server);
      const setStatus = (status: string) => () => server.gql(
        'mutation($id: ID!, $status: OrganizationStatus!) { setOrganizationStatus(id: $id, status: $status) { status } }',
        { id: organization.id, status },
      );
      const suspended = await auditedBy(organization.id, setStatus('SUSPENDED'));
      expectEntry(suspended.entry, { action: 'organization.suspend', targetType: 'organization', targetId: organization.id, organizationId: organization.id, actorKeyId: adminKeyId });
      const activated = await auditedBy(organization.id, setStatus('ACTIVE'));
      expectEntry(activated.entry, { action: 'organization.activate', targetType: 'organization', targetId: organization.id, organizationId: organization.id, actorKeyId: adminKeyId });
    });

    it('records api_key.create by the tenant key, with the hint but never the secret', async () => {
      const { organizationId, key } = await createTenant(server);
      const name = uniqueName('Key');
      const { response, entry } = await auditedBy(organizationId, () => server.gql(
        'mutation($name: String!) { createApiKey(input: { name: $name, preset: WRITE }) { secret apiKey { id hint } } }',
        { name },
        { key: key.secret },
      ));
      const created = response.body.data.createApiKey;
      expectEntry(entry, { action: 'api_key.create', targetType: 'api_key', targetId: created.apiKey.id, organizationId, actorKeyId: key.id });
      expect(entry.metadata).toMatchObject({ name });
      expect(JSON.stringify(entry)).not.toContain(created.secret);
    });

    it('records api_key.update by the tenant key', async () => {
      const { organizationId, key } = await createTenant(server);
      const target = await createKey(server, { organizationId }, key.secret);
      const { entry } = await auditedBy(organizationId, () => server.gql(
        'mutation($id: ID!) { updateApiKey(id: $id, input: { name: "renamed key", ipAllowlist: ["10.0.0.0/8"] }) { id } }',
        { id: target.id },
        { key: key.secret },
      ));
      expectEntry(entry, { action: 'api_key.update', targetType: 'api_key', targetId: target.id, organizationId, actorKeyId: key.id });
    });

    it('records api_key.disable and api_key.enable by the tenant key', async () => {
      const { organizationId, key } = await createTenant(server);
      const target = await createKey(server, { organizationId }, key.secret);
      const setEnabled = (enabled: boolean) => () => server.gql(
        'mutation($id: ID!, $enabled: Boolean!) { setApiKeyEnabled(id: $id, enabled: $enabled) { status } }',
        { id: target.id, enabled },
        { key: key.secret },
      );
      const disabled = await auditedBy(organizationId, setEnabled(false));
      expectEntry(disabled.entry, { action: 'api_key.disable', targetType: 'api_key', targetId: target.id, organizationId, actorKeyId: key.id });
      const enabled = await auditedBy(organizationId, setEnabled(true));
      expectEntry(enabled.entry, { action: 'api_key.enable', targetType: 'api_key', targetId: target.id, organizationId, actorKeyId: key.id });
    });

    it('records api_key.revoke by the tenant key with the reason in metadata', async () => {
      const { organizationId, key } = await createTenant(server);
      const target = await createKey(server, { organizationId }, key.secret);
      const { entry } = await auditedBy(organizationId, () => server.gql(
        'mutation($id: ID!) { revokeApiKey(id: $id, reason: "leaked in a gist") { status } }',
        { id: target.id },
        { key: key.secret },
      ));
      expectEntry(entry, { action: 'api_key.revoke', targetType: 'api_key', targetId: target.id, organizationId, actorKeyId: key.id });
      expect(entry.metadata).toMatchObject({ reason: 'leaked in a gist' });
    });

    it('records api_key.rotate by the tenant key with the new key id in metadata and no secret', async () => {
      const { organizationId, key } = await createTenant(server);
      const target = await createKey(server, { organizationId }, key.secret);
      const { response, entry } = await auditedBy(organizationId, () => server.gql(
        'mutation($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 300) { secret apiKey { id } } }',
        { id: target.id },
        { key: key.secret },
      ));
      const rotated = response.body.data.rotateApiKey;
      expectEntry(entry, { action: 'api_key.rotate', targetType: 'api_key', targetId: target.id, organizationId, actorKeyId: key.id });
      expect(entry.metadata).toMatchObject({ newKeyId: rotated.apiKey.id });
      expect(JSON.stringify(entry)).not.toContain(rotated.secret);
      expect(JSON.stringify(entry)).not.toContain(target.secret);
    });

    it('records api_key.delete by the tenant key', async () => {
      const { organizationId, key } = await createTenant(server);
      const target = await createKey(server, { organizationId }, key.secret);
      const { response, entry } = await auditedBy(organizationId, () => server.gql(
        'mutation($id: ID!) { deleteApiKey(id: $id) }',
        { id: target.id },
        { key: key.secret },
      ));
      expect(response.body.data.deleteApiKey).toBe(true);
      expectEntry(entry, { action: 'api_key.delete', targetType: 'api_key', targetId: target.id, organizationId, actorKeyId: key.id });
    });

    it("records a platform admin's change to a tenant key under the tenant's organization with the admin as actor", async () => {
      const { organizationId, key } = await createTenant(server);
      const { entry } = await auditedBy(organizationId, () => server.gql(
        'mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { status } }',
        { id: key.id },
      ));
      expectEntry(entry, { action: 'api_key.disable', targetType: 'api_key', targetId: key.id, organizationId, actorKeyId: adminKeyId });
    });

    it('stamps each entry with the server clock time', async () => {
      const { organizationId, key } = await createTenant(server);
      const saved = server.clock.now();
      server.clock.set('2027-07-04T09:08:07.654Z');
      try {
        const { entry } = await auditedBy(organizationId, () => server.gql(
          'mutation { createApiKey(input: { name: "clocked" }) { apiKey { id } } }', {}, { key: key.secret },
        ));
        expect(entry.at).toBe('2027-07-04T09:08:07.654Z');
      } finally {
        server.clock.set(saved);
      }
    });
  });

  describe('secrets', () => {
    it('never shows a secret anywhere in the audit log after every kind of key mutation', async () => {
      const { organizationId, key } = await createTenant(server);
      const secrets: string[] = [key.secret];
      const created = await createKey(server, { organizationId, environment: 'TEST', meta: { note: 'hello' } }, key.secret);
      secrets.push(created.secret);
      await server.gql('mutation($id: ID!) { updateApiKey(id: $id, input: { name: "changed" }) { id } }', { id: created.id }, { key: key.secret });
      await server.gql('mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { id } }', { id: created.id }, { key: key.secret });
      await server.gql('mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: true) { id } }', { id: created.id }, { key: key.secret });
      const rotated = await server.gql('mutation($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 60) { secret apiKey { id } } }', { id: created.id }, { key: key.secret });
      expect(rotated.status).toBe(200);
      secrets.push(rotated.body.data.rotateApiKey.secret);
      const freshId = rotated.body.data.rotateApiKey.apiKey.id;
      await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "done") { id } }', { id: freshId }, { key: key.secret });
      await server.gql('mutation($id: ID!) { deleteApiKey(id: $id) }', { id: freshId }, { key: key.secret });

      const own = await server.gql(AUDIT_LOG, { first: 500 }, { key: key.secret });
      const all = await server.gql(AUDIT_LOG, { first: 500 });
      expect(own.status).toBe(200);
      expect(all.status).toBe(200);
      expect(own.body.data.auditLog.totalCount).toBe(9);
      for (const page of [own, all]) {
        const json = JSON.stringify(page.body);
        expect(json).not.toMatch(ANY_SECRET);
        for (const secret of secrets) {
          expect(json).not.toContain(secret);
          expect(json).not.toContain(secret.slice(8)); // the random part without its prefix
        }
      }
    });
  });

  describe('refused mutations', () => {
    it('writes no entry for bad input', async () => {
      const { organizationId, key } = await createTenant(server);
      const target = await createKey(server, { organizationId }, key.secret);
      const before = await totalCount();
      const attempts: Array<[string, Record<string, unknown>]> = [
        ['mutation { createApiKey(input: { name: "" }) { secret } }', {}],
        ['mutation { createApiKey(input: { name: "x", ipAllowlist: ["not-an-ip"] }) { secret } }', {}],
        ['mutation($id: ID!) { updateApiKey(id: $id, input: { maxCostPerRequest: 0 }) { id } }', { id: target.id }],
        ['mutation($id: ID!) { revokeApiKey(id: $id, reason: "   ") { id } }', { id: target.id }],
        ['mutation($id: ID!) { updateOrganization(id: $id, input: { name: "" }) { id } }', { id: organizationId }],
      ];
      for (const [mutation, variables] of attempts) {
        const response = await server.gql(mutation, variables, { key: key.secret });
        expectRefused(response, 'BAD_USER_INPUT');
      }
      const adminAttempt = await server.gql('mutation { createOrganization(input: { name: "x", maxKeys: 0 }) { id } }');
      expectRefused(adminAttempt, 'BAD_USER_INPUT');
      expect(await totalCount()).toBe(before);
    });

    it('writes no entry for a scope escalation', async () => {
      const organization = await createOrganization(server);
      const writer = await createKey(server, { organizationId: organization.id, scopes: ['keys:read', 'keys:write'] });
      const before = await totalCount();
      const escalation = await server.gql('mutation { createApiKey(input: { name: "x", scopes: ["audit:read"] }) { secret } }', {}, { key: writer.secret });
      expectRefused(escalation, 'INSUFFICIENT_SCOPE');
      const selfEscalation = await server.gql(
        'mutation($id: ID!) { updateApiKey(id: $id, input: { scopes: ["keys:*", "org:write"] }) { id } }', { id: writer.id }, { key: writer.secret },
      );
      expectRefused(selfEscalation, 'INSUFFICIENT_SCOPE');
      const platform = await server.gql(
        'mutation($org: ID!) { createApiKey(input: { organizationId: $org, name: "x", scopes: ["platform:admin"] }) { secret } }', { org: organization.id },
      );
      expectRefused(platform, 'BAD_USER_INPUT');
      const limits = await server.gql(
        'mutation($id: ID!) { updateOrganization(id: $id, input: { maxKeys: 1000 }) { id } }', { id: organization.id }, { key: (await createKey(server, { organizationId: organization.id, preset: 'ADMIN' })).secret },
      );
      expectRefused(limits, 'INSUFFICIENT_SCOPE');
      expect(await totalCount()).toBe(before + 1); // only the ADMIN key made for the last attempt
    });

    it('writes no entry when the key limit is reached', async () => {
      const { organizationId, key } = await createTenant(server, { maxKeys: 1 });
      const before = await totalCount(organizationId);
      const globalBefore = await totalCount();
      const response = await server.gql('mutation { createApiKey(input: { name: "one too many" }) { secret } }', {}, { key: key.secret });
      expectRefused(response, 'KEY_LIMIT_EXCEEDED');
      expect(await totalCount(organizationId)).toBe(before);
      expect(await totalCount()).toBe(globalBefore);
    });

    it("writes no entry for an attempt on another organization's key or organization", async () => {
      const a = await createTenant(server);
      const b = await createTenant(server);
      const before = await totalCount();
      const attempts: Array<[string, Record<string, unknown>, number, string]> = [
        ['mutation($id: ID!) { revokeApiKey(id: $id, reason: "x") { id } }', { id: b.key.id }, 404, 'NOT_FOUND'],
        ['mutation($id: ID!) { deleteApiKey(id: $id) }', { id: b.key.id }, 404, 'NOT_FOUND'],
        ['mutation($id: ID!) { rotateApiKey(id: $id) { secret } }', { id: b.key.id }, 404, 'NOT_FOUND'],
        ['mutation($org: ID!) { createApiKey(input: { organizationId: $org, name: "x" }) { secret } }', { org: b.organizationId }, 404, 'NOT_FOUND'],
        ['mutation($id: ID!) { updateOrganization(id: $id, input: { name: "x" }) { id } }', { id: b.organizationId }, 404, 'NOT_FOUND'],
      ];
      for (const [mutation, variables, status, code] of attempts) {
        expectRefused(await server.gql(mutation, variables, { key: a.key.secret }), code, status);
      }
      expect(await totalCount()).toBe(before);
    });

    it('writes no entry for a change to a revoked key', async () => {
      const { organizationId, key } = await createTenant(server);
      const target = await createKey(server, { organizationId }, key.secret);
      await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "gone") { id } }', { id: target.id }, { key: key.secret });
      const before = await totalCount();
      const again = await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "again") { id } }', { id: target.id }, { key: key.secret });
      expectRefused(again, 'BAD_USER_INPUT');
      expect(await totalCount()).toBe(before);
    });
  });

  describe('reading', () => {
    /** Makes `count` entries in the organization, one clock millisecond apart so their order is known. */
    async function makeEntries(organizationId: string, secret: string, count: number): Promise<string[]> {
      const targets: string[] = [];
      for (let i = 0; i < count; i++) {
        server.clock.advance(1);
        targets.push((await createKey(server, { organizationId, name: `entry ${i}` }, secret)).id);
      }
      return targets;
    }

    it('pages newest first with first/after and a stable totalCount', async () => {
      const { organizationId, key } = await createTenant(server);
      const saved = server.clock.now();
      let targets: string[];
      try {
        targets = await makeEntries(organizationId, key.secret, 5);
      } finally {
        server.clock.set(saved);
      }
      const seen: Entry[] = [];
      let after: string | null = null;
      let pages = 0;
      for (;;) {
        const response: GraphQLResponse = await server.gql(AUDIT_LOG, { first: 3, after }, { key: key.secret });
        expect(response.status).toBe(200);
        const page = response.body.data.auditLog;
        expect(page.totalCount).toBe(7); // organization.create, the ADMIN key, the five keys
        seen.push(...page.nodes);
        pages += 1;
        if (!page.pageInfo.hasNextPage) break;
        expect(page.nodes).toHaveLength(3);
        after = page.pageInfo.endCursor;
      }
      expect(pages).toBe(3);
      expect(seen).toHaveLength(7);
      expect(new Set(seen.map((entry) => entry.id)).size).toBe(7);
      for (let i = 1; i < seen.length; i++) {
        expect(seen[i - 1].id > seen[i].id).toBe(true);
        expect(Date.parse(seen[i - 1].at)).toBeGreaterThanOrEqual(Date.parse(seen[i].at));
      }
      // The five key creations, newest first, lead the log.
      expect(seen.slice(0, 5).map((entry) => entry.targetId)).toEqual([...targets].reverse());
      expect(seen.slice(0, 5).every((entry) => entry.action === 'api_key.create')).toBe(true);
    });

    it('lists entries made at the same clock instant newest first', async () => {
      const { organizationId, key } = await createTenant(server);
      const targets: string[] = [];
      for (let i = 0; i < 6; i++) targets.push((await createKey(server, { organizationId, name: `same instant ${i}` }, key.secret)).id);
      const response = await server.gql(AUDIT_LOG, { first: 6 }, { key: key.secret });
      expect(response.status).toBe(200);
      expect(response.body.data.auditLog.nodes.map((entry: Entry) => entry.targetId)).toEqual([...targets].reverse());
    });

    it('shows the platform admin every organization when no organizationId is given', async () => {
      const a = await createOrganization(server);
      const b = await createOrganization(server);
      const response = await server.gql(AUDIT_LOG, { first: 500 });
      expect(response.status).toBe(200);
      const organizations = new Set(response.body.data.auditLog.nodes.map((entry: Entry) => entry.organizationId));
      expect(organizations.has(a.id)).toBe(true);
      expect(organizations.has(b.id)).toBe(true);
      expect(response.body.data.auditLog.totalCount).toBeGreaterThanOrEqual(response.body.data.auditLog.nodes.length);
    });

    it.each([
      ['first 0', { first: 0 }, 'first'],
      ['first 501', { first: 501 }, 'first'],
      ['a cursor it never returned', { after: 'bm90LWEtY3Vyc29y' }, 'after'],
    ])('refuses %s with 400 BAD_USER_INPUT', async (_what, variables, field) => {
      const { key } = await createTenant(server);
      const response = await server.gql(AUDIT_LOG, variables, { key: key.secret });
      expectRefused(response, 'BAD_USER_INPUT');
      expect(response.body.errors![0].message).toContain(field);
    });

    it('refuses a key without audit:read with 403 INSUFFICIENT_SCOPE', async () => {
      const organization = await createOrganization(server);
      const reader = await createKey(server, { organizationId: organization.id, scopes: ['keys:read'] });
      const response = await server.gql(AUDIT_LOG, {}, { key: reader.secret });
      expectRefused(response, 'INSUFFICIENT_SCOPE');
      expect(response.body.errors![0].message).toContain('audit:read');
      expect(response.body.data ?? null).toBeNull();
    });

    it('lets a READ key (which holds audit:read) read its own organization', async () => {
      const organization = await createOrganization(server);
      const reader = await createKey(server, { organizationId: organization.id });
      const response = await server.gql(AUDIT_LOG, {}, { key: reader.secret });
      expect(response.status).toBe(200);
      expect(response.body.data.auditLog.totalCount).toBe(2);
      expect(response.body.data.auditLog.nodes.every((entry: Entry) => entry.organizationId === organization.id)).toBe(true);
    });
  });
});
