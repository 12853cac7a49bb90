import { startTestServer, TestServer, GraphQLResponse } from './helpers/server';
import { createKey, createTenant, CreatedKey, KEY_FIELDS, uniqueName } from './helpers/fixtures';
import { expectRefused } from './helpers/expect';

const VIEWER = '{ viewer { apiKey { id } organization { id } } }';
const API_KEY = `query($id: ID!) { apiKey(id: $id) { ${KEY_FIELDS} } }`;
const API_KEYS = `query($filter: ApiKeyFilter, $first: Int) { apiKeys(filter: $filter, first: $first) {
  nodes { id organizationId name hint } totalCount } }`;
const ORGANIZATION = 'query($id: ID) { organization(id: $id) { id name slug maxKeys status } }';
const UPDATE_ORGANIZATION = 'mutation($id: ID!, $input: UpdateOrganizationInput!) { updateOrganization(id: $id, input: $input) { id name } }';
const AUDIT_LOG = `query($organizationId: ID, $first: Int) { auditLog(organizationId: $organizationId, first: $first) {
  nodes { id organizationId action targetType targetId actorKeyId metadata } totalCount } }`;
const CREATE_KEY = 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id organizationId name hint } } }';

/** Every mutation A might try on B's key, with what the platform admin gets doing the same. */
const KEY_MUTATIONS: Array<[string, string, Record<string, unknown>]> = [
  ['update', 'mutation($id: ID!) { updateApiKey(id: $id, input: { name: "hijacked" }) { id name hint } }', {}],
  ['enable', 'mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: true) { id status hint } }', {}],
  ['disable', 'mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { id status hint } }', {}],
  ['revoke', 'mutation($id: ID!) { revokeApiKey(id: $id, reason: "hostile") { id status hint } }', {}],
  ['rotate', 'mutation($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 60) { secret apiKey { id hint } } }', {}],
  ['delete', 'mutation($id: ID!) { deleteApiKey(id: $id) }', {}],
];

interface Tenant {
  organizationId: string;
  organizationName: string;
  key: CreatedKey;
}

describe('tenancy', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  async function tenant(): Promise<Tenant> {
    const organizationName = uniqueName('Tenant');
    const { organizationId, key } = await createTenant(server, { name: organizationName });
    return { organizationId, organizationName, key };
  }

  /** Nothing about B's key (nor B's name) may reach A. */
  function expectNothingOf(b: Tenant, response: GraphQLResponse): void {
    const body = JSON.stringify(response.body);
    expect(body).not.toContain(b.key.id);
    expect(body).not.toContain(b.key.apiKey.hint);
    expect(body).not.toContain(b.key.apiKey.name);
    expect(body).not.toContain(b.organizationName);
    expect(body).not.toContain(b.key.secret);
  }

  async function adminRead(id: string): Promise<Record<string, any>> {
    const response = await server.gql(API_KEY, { id });
    expect(response.status).toBe(200);
    return response.body.data.apiKey;
  }

  async function expectStillWorks(b: Tenant): Promise<void> {
    const response = await server.gql(VIEWER, {}, { key: b.key.secret });
    expect(response.status).toBe(200);
    expect(response.body.data.viewer).toEqual({ apiKey: { id: b.key.id }, organization: { id: b.organizationId } });
  }

  async function countKeys(organizationId: string): Promise<number> {
    const response = await server.gql(API_KEYS, { filter: { organizationId }, first: 500 });
    expect(response.status).toBe(200);
    return response.body.data.apiKeys.totalCount;
  }

  async function countAudit(organizationId: string): Promise<number> {
    const response = await server.gql(AUDIT_LOG, { organizationId, first: 1 });
    expect(response.status).toBe(200);
    return response.body.data.auditLog.totalCount;
  }

  describe("an organization key facing another organization's key", () => {
    it("cannot read it: apiKey answers 404 NOT_FOUND with null data", async () => {
      const [a, b] = [await tenant(), await tenant()];
      const response = await server.gql(API_KEY, { id: b.key.id }, { key: a.key.secret });
      expectRefused(response, 'NOT_FOUND');
      expect(response.body.data?.apiKey ?? null).toBeNull();
      expectNothingOf(b, response);
    });

    it.each(KEY_MUTATIONS)('cannot %s it: 404 NOT_FOUND, and the key still works unchanged', async (_what, mutation) => {
      const [a, b] = [await tenant(), await tenant()];
      const before = await adminRead(b.key.id);
      const auditBefore = await countAudit(b.organizationId);
      const response = await server.gql(mutation, { id: b.key.id }, { key: a.key.secret });
      expectRefused(response, 'NOT_FOUND');
      expect(response.body.data ?? null).toBeNull();
      expectNothingOf(b, response);
      await expectStillWorks(b);
      expect(await adminRead(b.key.id)).toEqual(before);
      expect(await countKeys(b.organizationId)).toBe(1);
      expect(await countAudit(b.organizationId)).toBe(auditBefore);
    });

    it('cannot list it with apiKeys(filter: {organizationId}): 404 NOT_FOUND', async () => {
      const [a, b] = [await tenant(), await tenant()];
      const response = await server.gql(API_KEYS, { filter: { organizationId: b.organizationId } }, { key: a.key.secret });
      expectRefused(response, 'NOT_FOUND');
      expect(response.body.data ?? null).toBeNull();
      expectNothingOf(b, response);
    });

    it('does not see it in its own unfiltered listing, which holds only its own keys', async () => {
      const [a, b] = [await tenant(), await tenant()];
      const second = await createKey(server, { organizationId: a.organizationId }, a.key.secret);
      await createKey(server, { organizationId: b.organizationId }, b.key.secret);
      const response = await server.gql(API_KEYS, {}, { key: a.key.secret });
      expect(response.status).toBe(200);
      const page = response.body.data.apiKeys;
      expect(page.totalCount).toBe(2);
      expect(page.nodes.map((node: { id: string }) => node.id).sort()).toEqual([a.key.id, second.id].sort());
      for (const node of page.nodes) expect(node.organizationId).toBe(a.organizationId);
      expectNothingOf(b, response);
    });

    it('does not find it by searching for its name or hint', async () => {
      const [a, b] = [await tenant(), await tenant()];
      for (const search of [b.key.apiKey.name, b.key.apiKey.hint.slice(-4)]) {
        const response = await server.gql(API_KEYS, { filter: { search } }, { key: a.key.secret });
        expect(response.status).toBe(200);
        expect(response.body.data.apiKeys.nodes.every((node: { organizationId: string }) => node.organizationId === a.organizationId)).toBe(true);
        expectNothingOf(b, response);
      }
    });
  });

  describe("an organization key facing another organization", () => {
    it('cannot read it with organization(id): 404 NOT_FOUND', async () => {
      const [a, b] = [await tenant(), await tenant()];
      const response = await server.gql(ORGANIZATION, { id: b.organizationId }, { key: a.key.secret });
      expectRefused(response, 'NOT_FOUND');
      expect(response.body.data?.organization ?? null).toBeNull();
      expectNothingOf(b, response);
    });

    it('cannot rename it with updateOrganization: 404 NOT_FOUND, name unchanged, nothing audited', async () => {
      const [a, b] = [await tenant(), await tenant()];
      const auditBefore = await countAudit(b.organizationId);
      const response = await server.gql(UPDATE_ORGANIZATION, { id: b.organizationId, input: { name: 'Taken over' } }, { key: a.key.secret });
      expectRefused(response, 'NOT_FOUND');
      expectNothingOf(b, response);
      const stored = await server.gql(ORGANIZATION, { id: b.organizationId });
      expect(stored.body.data.organization.name).toBe(b.organizationName);
      expect(await countAudit(b.organizationId)).toBe(auditBefore);
    });

    it('cannot read its audit log: 404 NOT_FOUND', async () => {
      const [a, b] = [await tenant(), await tenant()];
      const response = await server.gql(AUDIT_LOG, { organizationId: b.organizationId }, { key: a.key.secret });
      expectRefused(response, 'NOT_FOUND');
      expect(response.body.data ?? null).toBeNull();
      expectNothingOf(b, response);
    });

    it('cannot create a key in it: 404 NOT_FOUND, nothing created there', async () => {
      const [a, b] = [await tenant(), await tenant()];
      const auditBefore = await countAudit(b.organizationId);
      const response = await server.gql(CREATE_KEY, { input: { organizationId: b.organizationId, name: 'planted' } }, { key: a.key.secret });
      expectRefused(response, 'NOT_FOUND');
      expect(response.body.data ?? null).toBeNull();
      expectNothingOf(b, response);
      expect(await countKeys(b.organizationId)).toBe(1);
      expect(await countKeys(a.organizationId)).toBe(1);
      expect(await countAudit(b.organizationId)).toBe(auditBefore);
    });

    it("sees only its own entries in its unfiltered audit log", async () => {
      const [a, b] = [await tenant(), await tenant()];
      // Activity in both organizations.
      await createKey(server, { organizationId: a.organizationId }, a.key.secret);
      await createKey(server, { organizationId: b.organizationId }, b.key.secret);
      await server.gql(UPDATE_ORGANIZATION, { id: b.organizationId, input: { name: uniqueName('B renamed') } }, { key: b.key.secret });
      const response = await server.gql(AUDIT_LOG, { first: 500 }, { key: a.key.secret });
      expect(response.status).toBe(200);
      const page = response.body.data.auditLog;
      // organization.create, api_key.create (by the admin), api_key.create (by A's key).
      expect(page.totalCount).toBe(3);
      expect(page.nodes).toHaveLength(3);
      for (const node of page.nodes) expect(node.organizationId).toBe(a.organizationId);
      expect(page.nodes.map((node: { action: string }) => node.action).sort()).toEqual(['api_key.create', 'api_key.create', 'organization.create']);
      const body = JSON.stringify(response.body);
      expect(body).not.toContain(b.organizationId);
      expectNothingOf(b, response);
    });
  });

  describe('the platform admin key', () => {
    it("reads and lists another organization's keys", async () => {
      const b = await tenant();
      const read = await server.gql(API_KEY, { id: b.key.id });
      expect(read.status).toBe(200);
      expect(read.body.data.apiKey).toMatchObject({ id: b.key.id, organizationId: b.organizationId, name: b.key.apiKey.name, hint: b.key.apiKey.hint });
      const list = await server.gql(API_KEYS, { filter: { organizationId: b.organizationId } });
      expect(list.status).toBe(200);
      expect(list.body.data.apiKeys.totalCount).toBe(1);
      expect(list.body.data.apiKeys.nodes).toEqual([{ id: b.key.id, organizationId: b.organizationId, name: b.key.apiKey.name, hint: b.key.apiKey.hint }]);
    });

    it('reads, renames and reads the audit log of another organization', async () => {
      const b = await tenant();
      const read = await server.gql(ORGANIZATION, { id: b.organizationId });
      expect(read.status).toBe(200);
      expect(read.body.data.organization).toMatchObject({ id: b.organizationId, name: b.organizationName });
      const name = uniqueName('Renamed by platform');
      const renamed = await server.gql(UPDATE_ORGANIZATION, { id: b.organizationId, input: { name } });
      expect(renamed.status).toBe(200);
      expect(renamed.body.data.updateOrganization).toEqual({ id: b.organizationId, name });
      const audit = await server.gql(AUDIT_LOG, { organizationId: b.organizationId, first: 500 });
      expect(audit.status).toBe(200);
      expect(audit.body.data.auditLog.totalCount).toBe(3);
      expect(audit.body.data.auditLog.nodes.map((node: { action: string }) => node.action).sort())
        .toEqual(['api_key.create', 'organization.create', 'organization.update']);
      for (const node of audit.body.data.auditLog.nodes) expect(node.organizationId).toBe(b.organizationId);
    });

    it('creates a key in another organization', async () => {
      const b = await tenant();
      const response = await server.gql(CREATE_KEY, { input: { organizationId: b.organizationId, name: 'made by platform' } });
      expect(response.status).toBe(200);
      expect(response.body.data.createApiKey.apiKey).toMatchObject({ organizationId: b.organizationId, name: 'made by platform' });
      expect(await countKeys(b.organizationId)).toBe(2);
    });

    it("updates, disables, enables, rotates, revokes and deletes another organization's keys", async () => {
      const b = await tenant();
      const updated = await server.gql(KEY_MUTATIONS[0][1], { id: b.key.id });
      expect(updated.status).toBe(200);
      expect(updated.body.data.updateApiKey).toMatchObject({ id: b.key.id, name: 'hijacked' });

      const disabled = await server.gql(KEY_MUTATIONS[2][1], { id: b.key.id });
      expect(disabled.status).toBe(200);
      expect(disabled.body.data.setApiKeyEnabled.status).toBe('DISABLED');
      const enabled = await server.gql(KEY_MUTATIONS[1][1], { id: b.key.id });
      expect(enabled.status).toBe(200);
      expect(enabled.body.data.setApiKeyEnabled.status).toBe('ACTIVE');

      const rotated = await server.gql(KEY_MUTATIONS[4][1], { id: b.key.id });
      expect(rotated.status).toBe(200);
      const fresh = rotated.body.data.rotateApiKey.apiKey.id;
      expect(fresh).not.toBe(b.key.id);
      expect((await adminRead(fresh)).organizationId).toBe(b.organizationId);

      const revoked = await server.gql(KEY_MUTATIONS[3][1], { id: fresh });
      expect(revoked.status).toBe(200);
      expect(revoked.body.data.revokeApiKey.status).toBe('REVOKED');

      const deleted = await server.gql(KEY_MUTATIONS[5][1], { id: fresh });
      expect(deleted.status).toBe(200);
      expect(deleted.body.data.deleteApiKey).toBe(true);
      const gone = await server.gql(API_KEY, { id: fresh });
      expectRefused(gone, 'NOT_FOUND');
    });
  });
});
