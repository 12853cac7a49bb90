import { startTestServer, TestServer, GraphQLResponse } from './helpers/server';
import { createKey, createOrganization, createTenant, uniqueName } from './helpers/fixtures';
import { expectRefused } from './helpers/expect';

const ORG_FIELDS = `id name slug status maxKeys createdAt sessionBalance
  quotas { organizationId apiKeyId meter period limit used remaining percentUsed resetsAt }`;

const CREATE = `mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { ${ORG_FIELDS} } }`;
const UPDATE = `mutation($id: ID!, $input: UpdateOrganizationInput!) { updateOrganization(id: $id, input: $input) { ${ORG_FIELDS} } }`;
const SET_STATUS = `mutation($id: ID!, $status: OrganizationStatus!) { setOrganizationStatus(id: $id, status: $status) { id status } }`;
const ORGANIZATION = `query($id: ID) { organization(id: $id) { ${ORG_FIELDS} } }`;
const ORGANIZATIONS = `query($first: Int, $after: String) { organizations(first: $first, after: $after) {
  nodes { id name } pageInfo { endCursor hasNextPage } totalCount } }`;
const AUDIT_COUNT = 'query($organizationId: ID) { auditLog(organizationId: $organizationId, first: 1) { totalCount } }';

const SLUG = /^[a-z0-9]+(-[a-z0-9]+)*$/;

describe('organizations', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  /** Everything a refused organization write could have left behind. */
  async function snapshot(): Promise<{ organizations: number; audit: number }> {
    const organizations = await server.gql(ORGANIZATIONS, { first: 1 });
    const audit = await server.gql(AUDIT_COUNT, {});
    return { organizations: organizations.body.data.organizations.totalCount, audit: audit.body.data.auditLog.totalCount };
  }

  async function readOrganization(id: string): Promise<Record<string, any>> {
    const response = await server.gql(ORGANIZATION, { id });
    expect(response.status).toBe(200);
    return response.body.data.organization;
  }

  async function auditCount(organizationId: string): Promise<number> {
    const response = await server.gql(AUDIT_COUNT, { organizationId });
    return response.body.data.auditLog.totalCount;
  }

  describe('createOrganization', () => {
    it('creates an active organization with a slug derived from the name ("Acme Inc" → "acme-inc")', async () => {
      const response = await server.gql(CREATE, { input: { name: 'Acme Inc' } });
      expect(response.status).toBe(200);
      const organization = response.body.data.createOrganization;
      expect(organization.id).toMatch(/^org_[0-9a-z]{26}$/);
      expect(organization).toMatchObject({ name: 'Acme Inc', slug: 'acme-inc', status: 'ACTIVE', maxKeys: 100, sessionBalance: 0, quotas: [] });
      expect(organization.createdAt).toBe(server.clock.now().toISOString());
    });

    it('trims the name before storing it', async () => {
      const name = uniqueName('Trimmed');
      const response = await server.gql(CREATE, { input: { name: `   ${name}  ` } });
      expect(response.status).toBe(200);
      expect(response.body.data.createOrganization.name).toBe(name);
    });

    it('accepts a name of exactly 200 characters', async () => {
      const name = `N${'x'.repeat(199)}`;
      const response = await server.gql(CREATE, { input: { name } });
      expect(response.status).toBe(200);
      expect(response.body.data.createOrganization.name).toBe(name);
      expect(response.body.data.createOrganization.slug).toMatch(SLUG);
    });

    it('uses an explicit slug as given', async () => {
      const slug = `explicit-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
      const response = await server.gql(CREATE, { input: { name: uniqueName(), slug } });
      expect(response.status).toBe(200);
      expect(response.body.data.createOrganization.slug).toBe(slug);
      expect((await readOrganization(response.body.data.createOrganization.id)).slug).toBe(slug);
    });

    it('refuses an explicit slug that is already taken with 400 BAD_USER_INPUT and writes nothing', async () => {
      const taken = await createOrganization(server);
      const before = await snapshot();
      const response = await server.gql(CREATE, { input: { name: uniqueName(), slug: taken.slug } });
      expectRefused(response, 'BAD_USER_INPUT');
      expect(response.body.errors![0].message).toContain('slug');
      expect(response.body.data ?? null).toBeNull();
      expect(await snapshot()).toEqual(before);
    });

    it('still creates the organization with a different slug when the derived slug is taken', async () => {
      const name = uniqueName('Twin');
      const first = await createOrganization(server, { name });
      const response = await server.gql(CREATE, { input: { name } });
      expect(response.status).toBe(200);
      const second = response.body.data.createOrganization;
      expect(second.name).toBe(name);
      expect(second.id).not.toBe(first.id);
      expect(second.slug).not.toBe(first.slug);
      expect(second.slug).toMatch(SLUG);
      expect(second.slug.startsWith(first.slug)).toBe(true);
    });

    it.each([
      ['contains a space', 'Bad Slug'],
      ['has upper-case letters', 'Bad-Slug'],
      ['has a double dash', 'bad--slug'],
      ['ends with a dash', 'bad-slug-'],
    ])('refuses a slug that %s with 400 BAD_USER_INPUT naming slug and writes nothing', async (_what, slug) => {
      const before = await snapshot();
      const response = await server.gql(CREATE, { input: { name: uniqueName(), slug } });
      expectRefused(response, 'BAD_USER_INPUT');
      expect(response.body.errors![0].message).toContain('slug');
      expect(await snapshot()).toEqual(before);
    });

    it('defaults maxKeys to 100 and takes an explicit one', async () => {
      const defaulted = await server.gql(CREATE, { input: { name: uniqueName() } });
      expect(defaulted.body.data.createOrganization.maxKeys).toBe(100);
      const explicit = await server.gql(CREATE, { input: { name: uniqueName(), maxKeys: 7 } });
      expect(explicit.body.data.createOrganization.maxKeys).toBe(7);
      expect((await readOrganization(explicit.body.data.createOrganization.id)).maxKeys).toBe(7);
    });

    it('shows its quotas unused, with resetsAt at the next UTC day / month start and null for LIFETIME', async () => {
      const quotas = [
        { meter: 'REQUESTS', period: 'DAY', limit: 1000 },
        { meter: 'TOKENS', period: 'MONTH', limit: 50000 },
        { meter: 'COST_USD', period: 'LIFETIME', limit: 12.5 },
      ];
      const saved = server.clock.now();
      server.clock.set('2026-03-31T18:30:00.000Z');
      try {
        const response = await server.gql(CREATE, { input: { name: uniqueName(), quotas } });
        expect(response.status).toBe(200);
        const organization = response.body.data.createOrganization;
        const byMeter = (list: any[]) => [...list].sort((a, b) => a.meter.localeCompare(b.meter));
        const expected = [
          { organizationId: organization.id, apiKeyId: null, meter: 'REQUESTS', period: 'DAY', limit: 1000, used: 0, remaining: 1000, percentUsed: 0, resetsAt: '2026-04-01T00:00:00.000Z' },
          { organizationId: organization.id, apiKeyId: null, meter: 'TOKENS', period: 'MONTH', limit: 50000, used: 0, remaining: 50000, percentUsed: 0, resetsAt: '2026-04-01T00:00:00.000Z' },
          { organizationId: organization.id, apiKeyId: null, meter: 'COST_USD', period: 'LIFETIME', limit: 12.5, used: 0, remaining: 12.5, percentUsed: 0, resetsAt: null },
        ];
        expect(byMeter(organization.quotas)).toEqual(byMeter(expected));

        // Mid-month the DAY and MONTH boundaries differ.
        server.clock.set('2026-05-10T00:00:00.000Z');
        const later = await readOrganization(organization.id);
        const resets = Object.fromEntries(later.quotas.map((quota: any) => [quota.period, quota.resetsAt]));
        expect(resets).toEqual({ DAY: '2026-05-11T00:00:00.000Z', MONTH: '2026-06-01T00:00:00.000Z', LIFETIME: null });
      } finally {
        server.clock.set(saved);
      }
    });

    it('starts with a session balance of 0', async () => {
      const organization = await createOrganization(server);
      expect((await readOrganization(organization.id)).sessionBalance).toBe(0);
    });

    it('refuses a customer ADMIN key with 403 INSUFFICIENT_SCOPE and writes nothing', async () => {
      const { key } = await createTenant(server);
      const before = await snapshot();
      const response = await server.gql(CREATE, { input: { name: uniqueName() } }, { key: key.secret });
      expectRefused(response, 'INSUFFICIENT_SCOPE');
      expect(await snapshot()).toEqual(before);
    });

    it.each([
      ['an empty name', { name: '' }, 'name'],
      ['a blank name', { name: '    ' }, 'name'],
      ['a 201-character name', { name: 'x'.repeat(201) }, 'name'],
      ['maxKeys 0', { maxKeys: 0 }, 'maxKeys'],
      ['a negative maxKeys', { maxKeys: -5 }, 'maxKeys'],
      ['a quota limit of 0', { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 0 }] }, 'quotas'],
      ['a negative quota limit', { quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: -1 }] }, 'quotas'],
      ['a duplicate meter+period', { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 10 }, { meter: 'REQUESTS', period: 'DAY', limit: 20 }] }, 'quotas'],
    ])('refuses %s with 400 BAD_USER_INPUT naming the field and writes nothing', async (_what, input, field) => {
      const before = await snapshot();
      const response = await server.gql(CREATE, { input: { name: uniqueName(), ...input } });
      expectRefused(response, 'BAD_USER_INPUT');
      expect(response.body.errors![0].message).toContain(field);
      expect(await snapshot()).toEqual(before);
    });
  });

  describe('organization', () => {
    it("returns the caller's own organization when no id is given", async () => {
      const { key, organizationId } = await createTenant(server, { maxKeys: 9 });
      const response = await server.gql(ORGANIZATION, {}, { key: key.secret });
      expect(response.status).toBe(200);
      expect(response.body.data.organization).toMatchObject({ id: organizationId, status: 'ACTIVE', maxKeys: 9, sessionBalance: 0, quotas: [] });
    });

    it('lets an organization key read its own organization by id', async () => {
      const { key, organizationId } = await createTenant(server);
      const response = await server.gql(ORGANIZATION, { id: organizationId }, { key: key.secret });
      expect(response.status).toBe(200);
      expect(response.body.data.organization.id).toBe(organizationId);
    });

    it('lets the platform admin read any organization by id', async () => {
      const created = await createOrganization(server);
      const response = await server.gql(ORGANIZATION, { id: created.id });
      expect(response.status).toBe(200);
      expect(response.body.data.organization).toMatchObject({ id: created.id, name: created.name, slug: created.slug });
    });

    it("returns the platform organization as the admin key's own", async () => {
      const response = await server.gql(ORGANIZATION, {});
      expect(response.status).toBe(200);
      expect(response.body.data.organization.id).toBe(server.platformOrganizationId);
    });

    it('answers an unknown id with 404 NOT_FOUND for the platform admin', async () => {
      const response = await server.gql(ORGANIZATION, { id: 'org_00000000000000000000000000' });
      expectRefused(response, 'NOT_FOUND');
      expect(response.body.data?.organization ?? null).toBeNull();
    });
  });

  describe('organizations', () => {
    it('is refused to a customer ADMIN key with 403 INSUFFICIENT_SCOPE', async () => {
      const { key } = await createTenant(server);
      const response = await server.gql(ORGANIZATIONS, {}, { key: key.secret });
      expectRefused(response, 'INSUFFICIENT_SCOPE');
      expect(response.body.errors![0].message).toContain('platform:admin');
    });

    it('pages through every organization with first/after: distinct ids, strictly descending, as many as totalCount', async () => {
      await createOrganization(server);
      await createOrganization(server);
      await createOrganization(server);
      const ids: string[] = [];
      let after: string | null = null;
      let totalCount: number | null = null;
      for (let page = 0; page < 1000; page++) {
        const response: GraphQLResponse = await server.gql(ORGANIZATIONS, { first: 2, after });
        expect(response.status).toBe(200);
        const { nodes, pageInfo, totalCount: count } = response.body.data.organizations;
        totalCount ??= count;
        expect(count).toBe(totalCount);
        expect(nodes.length).toBeLessThanOrEqual(2);
        ids.push(...nodes.map((node: { id: string }) => node.id));
        if (!pageInfo.hasNextPage) break;
        expect(nodes.length).toBe(2);
        expect(pageInfo.endCursor).toEqual(expect.any(String));
        after = pageInfo.endCursor;
      }
      expect(totalCount).toBeGreaterThanOrEqual(4); // the platform organization and the three above
      expect(ids.length).toBe(totalCount);
      expect(new Set(ids).size).toBe(ids.length);
      for (let i = 1; i < ids.length; i++) expect(ids[i - 1] > ids[i]).toBe(true);
      expect(ids).toContain(server.platformOrganizationId);
    });

    it.each([
      ['first 0', { first: 0 }, 'first'],
      ['first 501', { first: 501 }, 'first'],
      ['a cursor it never returned', { after: 'not-a-cursor' }, 'after'],
    ])('refuses %s with 400 BAD_USER_INPUT', async (_what, variables, field) => {
      const response = await server.gql(ORGANIZATIONS, variables);
      expectRefused(response, 'BAD_USER_INPUT');
      expect(response.body.errors![0].message).toContain(field);
    });
  });

  describe('updateOrganization', () => {
    it('lets an organization key with org:write rename its own organization', async () => {
      const { key, organizationId } = await createTenant(server);
      const name = uniqueName('Renamed');
      const response = await server.gql(UPDATE, { id: organizationId, input: { name } }, { key: key.secret });
      expect(response.status).toBe(200);
      expect(response.body.data.updateOrganization).toMatchObject({ id: organizationId, name });
      expect((await readOrganization(organizationId)).name).toBe(name);
    });

    it('refuses a rename by a key without org:write with 403 INSUFFICIENT_SCOPE', async () => {
      const organization = await createOrganization(server);
      const reader = await createKey(server, { organizationId: organization.id, preset: 'READ' });
      const response = await server.gql(UPDATE, { id: organization.id, input: { name: uniqueName() } }, { key: reader.secret });
      expectRefused(response, 'INSUFFICIENT_SCOPE');
      expect((await readOrganization(organization.id)).name).toBe(organization.name);
    });

    it('lets the platform admin change maxKeys and quotas', async () => {
      const organization = await createOrganization(server);
      const response = await server.gql(UPDATE, {
        id: organization.id,
        input: { maxKeys: 3, quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 500 }] },
      });
      expect(response.status).toBe(200);
      const stored = await readOrganization(organization.id);
      expect(stored.maxKeys).toBe(3);
      expect(stored.name).toBe(organization.name);
      expect(stored.quotas).toEqual([expect.objectContaining({ organizationId: organization.id, meter: 'REQUESTS', period: 'MONTH', limit: 500, used: 0, remaining: 500, percentUsed: 0 })]);
    });

    it('replaces the quotas entirely', async () => {
      const organization = await createOrganization(server, {
        quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }, { meter: 'TOKENS', period: 'MONTH', limit: 1000 }],
      });
      const response = await server.gql(UPDATE, { id: organization.id, input: { quotas: [{ meter: 'COST_USD', period: 'LIFETIME', limit: 5 }] } });
      expect(response.status).toBe(200);
      const expected = [{ organizationId: organization.id, apiKeyId: null, meter: 'COST_USD', period: 'LIFETIME', limit: 5, used: 0, remaining: 5, percentUsed: 0, resetsAt: null }];
      expect(response.body.data.updateOrganization.quotas).toEqual(expected);
      expect((await readOrganization(organization.id)).quotas).toEqual(expected);

      const cleared = await server.gql(UPDATE, { id: organization.id, input: { quotas: [] } });
      expect(cleared.status).toBe(200);
      expect((await readOrganization(organization.id)).quotas).toEqual([]);
    });

    it.each([
      ['maxKeys', { maxKeys: 500 }],
      ['quotas', { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1_000_000 }] }],
      ['a rename together with maxKeys', { name: 'Sneaky rename', maxKeys: 500 }],
    ])("refuses %s changed by the organization's own ADMIN key with 403 INSUFFICIENT_SCOPE and changes nothing", async (_what, input) => {
      const { key, organizationId } = await createTenant(server, { maxKeys: 5, quotas: [{ meter: 'TOKENS', period: 'DAY', limit: 10 }] });
      const before = await readOrganization(organizationId);
      const auditBefore = await auditCount(organizationId);
      const response = await server.gql(UPDATE, { id: organizationId, input }, { key: key.secret });
      expectRefused(response, 'INSUFFICIENT_SCOPE');
      expect(await readOrganization(organizationId)).toEqual(before);
      expect(before.maxKeys).toBe(5);
      expect(await auditCount(organizationId)).toBe(auditBefore);
    });

    it('answers an unknown id with 404 NOT_FOUND for the platform admin', async () => {
      const response = await server.gql(UPDATE, { id: 'org_00000000000000000000000000', input: { name: 'Nobody' } });
      expectRefused(response, 'NOT_FOUND');
    });

    it.each([
      ['an empty name', { name: '' }, 'name'],
      ['a 201-character name', { name: 'y'.repeat(201) }, 'name'],
      ['maxKeys 0', { maxKeys: 0 }, 'maxKeys'],
      ['a quota limit of 0', { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 0 }] }, 'quotas'],
      ['a negative quota limit', { quotas: [{ meter: 'COST_USD', period: 'MONTH', limit: -3 }] }, 'quotas'],
      ['a duplicate meter+period', { quotas: [{ meter: 'TOKENS', period: 'DAY', limit: 1 }, { meter: 'TOKENS', period: 'DAY', limit: 2 }] }, 'quotas'],
    ])('refuses %s with 400 BAD_USER_INPUT naming the field and changes nothing', async (_what, input, field) => {
      const organization = await createOrganization(server, { maxKeys: 4, quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 50 }] });
      const before = await readOrganization(organization.id);
      const auditBefore = await auditCount(organization.id);
      const response = await server.gql(UPDATE, { id: organization.id, input });
      expectRefused(response, 'BAD_USER_INPUT');
      expect(response.body.errors![0].message).toContain(field);
      expect(await readOrganization(organization.id)).toEqual(before);
      expect(await auditCount(organization.id)).toBe(auditBefore);
    });
  });

  describe('setOrganizationStatus', () => {
    it('lets the platform admin suspend and reactivate an organization', async () => {
      const organization = await createOrganization(server);
      const suspended = await server.gql(SET_STATUS, { id: organization.id, status: 'SUSPENDED' });
      expect(suspended.status).toBe(200);
      expect(suspended.body.data.setOrganizationStatus).toEqual({ id: organization.id, status: 'SUSPENDED' });
      expect((await readOrganization(organization.id)).status).toBe('SUSPENDED');

      const activated = await server.gql(SET_STATUS, { id: organization.id, status: 'ACTIVE' });
      expect(activated.status).toBe(200);
      expect(activated.body.data.setOrganizationStatus).toEqual({ id: organization.id, status: 'ACTIVE' });
      expect((await readOrganization(organization.id)).status).toBe('ACTIVE');
    });

    it("refuses an organization's own ADMIN key with 403 INSUFFICIENT_SCOPE and changes nothing", async () => {
      const { key, organizationId } = await createTenant(server);
      const response = await server.gql(SET_STATUS, { id: organizationId, status: 'SUSPENDED' }, { key: key.secret });
      expectRefused(response, 'INSUFFICIENT_SCOPE');
      expect((await readOrganization(organizationId)).status).toBe('ACTIVE');
    });

    it('refuses to suspend the platform organization with 400 BAD_USER_INPUT', async () => {
      const auditBefore = await auditCount(server.platformOrganizationId);
      const response = await server.gql(SET_STATUS, { id: server.platformOrganizationId, status: 'SUSPENDED' });
      expectRefused(response, 'BAD_USER_INPUT');
      expect(response.body.errors![0].message).toContain('status');
      expect((await readOrganization(server.platformOrganizationId)).status).toBe('ACTIVE');
      expect(await auditCount(server.platformOrganizationId)).toBe(auditBefore);
      // The admin key still works.
      expect((await server.gql('{ viewer { organization { id } } }')).status).toBe(200);
    });

    it('answers an unknown id with 404 NOT_FOUND', async () => {
      const response = await server.gql(SET_STATUS, { id: 'org_00000000000000000000000000', status: 'SUSPENDED' });
      expectRefused(response, 'NOT_FOUND');
    });
  });
});
