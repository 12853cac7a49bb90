import fs from 'node:fs';
import path from 'node:path';
import { DocumentNode, Kind, OperationDefinitionNode, parse, print, separateOperations } from 'graphql';
import { startTestServer, TestServer, GraphQLResponse } from './helpers/server';
import { createKey, createOrganization, createTenant, KEY_FIELDS } from './helpers/fixtures';
import { ok } from './helpers/expect';
import { buildKeywardSchema } from '../src/schema';
import { GRAPHQL_LIMITS, operationCost } from '../src/graphql-limits';
import * as consoleQueries from '../console/src/queries';

/**
 * Limits on one GraphQL operation (depth 12, aliases 15, tokens 1000, directives 50, cost 50,000
 * fields with list sizes counted): over a limit is 400 QUERY_TOO_COMPLEX without the limit in the
 * message and without anything executed or consumed; batching off; introspection and "did you
 * mean" hints off with INTROSPECTION=false, and without a key under NODE_ENV=production.
 */

const KEYS_OF = 'query($organizationId: ID) { apiKeys(filter: { organizationId: $organizationId }) { totalCount } }';
const AUDIT_COUNT = 'query($organizationId: ID) { auditLog(organizationId: $organizationId, first: 1) { totalCount } }';
const QUOTAS = 'query($organizationId: ID) { quotas(organizationId: $organizationId) { meter period used } }';
const CREATE_KEY_FIELD = (alias: string) => `${alias}: createApiKey(input: { organizationId: $organizationId, name: "${alias}" }) { apiKey { id } }`;

/** `{ __type { fields { type { ofType … { name } } } } }`: a valid query `depth` levels deep. */
function typeQueryOfDepth(depth: number): string {
  let selection = '{ name }';
  for (let i = 0; i < depth - 4; i++) selection = `{ ofType ${selection} }`;
  return `{ __type(name: "ApiKey") { fields { type ${selection} } } }`;
}

/** Each operation the client package sends (packages/client/src/operations.graphql), with the fragments it uses. */
function clientOperations(): Record<string, DocumentNode> {
  return separateOperations(parse(fs.readFileSync(path.join(__dirname, '..', 'packages', 'client', 'src', 'operations.graphql'), 'utf8')));
}

/** A refusal for an operation over a limit: 400 QUERY_TOO_COMPLEX, no data, no limit named. */
function expectTooComplex(response: GraphQLResponse): void {
  expect(response.status).toBe(400);
  expect(response.code).toBe('QUERY_TOO_COMPLEX');
  expect(response.body.data).toBeUndefined();
  expect(response.body.errors).toHaveLength(1);
  expect(response.body.errors![0].message).toMatch(/too complex/);
  // No limit (12, 15, 50, 1000, 5000) and no count found in the query.
  expect(response.body.errors![0].message).not.toMatch(/\d/);
}

describe('GraphQL limits', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  async function keyCount(organizationId: string): Promise<number> {
    const response = await server.gql(KEYS_OF, { organizationId });
    expect(response.status).toBe(200);
    return response.body.data.apiKeys.totalCount;
  }

  async function auditCount(organizationId: string): Promise<number> {
    const response = await server.gql(AUDIT_COUNT, { organizationId });
    expect(response.status).toBe(200);
    return response.body.data.auditLog.totalCount;
  }

  async function requestsUsed(organizationId: string): Promise<number> {
    const response = await server.gql(QUOTAS, { organizationId });
    expect(response.status).toBe(200);
    return response.body.data.quotas.find((quota: any) => quota.meter === 'REQUESTS' && quota.period === 'DAY').used;
  }

  describe('depth', () => {
    it('accepts a query 12 levels deep', async () => {
      const response = await server.gql(typeQueryOfDepth(12));
      expect(response.status).toBe(200);
      expect(response.body.errors).toBeUndefined();
      expect(response.body.data.__type.fields.length).toBeGreaterThan(10);
    });

    it('refuses a query 13 levels deep with 400 QUERY_TOO_COMPLEX', async () => {
      expectTooComplex(await server.gql(typeQueryOfDepth(13)));
    });

    it('does not count the introspection query GraphiQL sends against the limits', async () => {
      const { getIntrospectionQuery } = await import('graphql');
      const query = getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true, schemaDescription: true, inputValueDeprecation: true });
      const response = await server.gql(query);
      expect(response.status).toBe(200);
      expect(response.body.data.__schema.queryType.name).toBe('Query');
    });
  });

  describe('aliases', () => {
    it('accepts 15 aliased fields', async () => {
      const fields = Array.from({ length: 15 }, (_, i) => `s${i}: scopes`).join(' ');
      const response = await server.gql(`{ viewer { ${fields} } }`);
      expect(response.status).toBe(200);
      expect(Object.keys(response.body.data.viewer)).toHaveLength(15);
    });

    it('refuses 16 aliased createApiKey mutations with 400 QUERY_TOO_COMPLEX and creates no key and no audit entry', async () => {
      const organization = await createOrganization(server);
      const auditBefore = await auditCount(organization.id);
      const fields = Array.from({ length: 16 }, (_, i) => CREATE_KEY_FIELD(`k${i}`)).join('\n');
      expectTooComplex(await server.gql(`mutation($organizationId: ID) { ${fields} }`, { organizationId: organization.id }));
      expect(await keyCount(organization.id)).toBe(0);
      expect(await auditCount(organization.id)).toBe(auditBefore);
    });

    it('counts aliases inside fragments', async () => {
      const fields = Array.from({ length: 16 }, (_, i) => `s${i}: scopes`).join(' ');
      expectTooComplex(await server.gql(`{ viewer { ...F } } fragment F on Viewer { ${fields} }`));
    });

    it('refuses 51 aliased verifyKey calls with 400 QUERY_TOO_COMPLEX and counts none of them', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1000 }] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      const fields = Array.from({ length: 51 }, (_, i) => `v${i}: verifyKey(input: { key: $key }) { valid code }`).join('\n');
      expectTooComplex(await server.gql(`mutation($key: String!) { ${fields} }`, { key: key.secret }));
      expect(await requestsUsed(organization.id)).toBe(0);
    });

    it('counts each of 15 aliased verifyKey calls in one request', async () => {
      const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1000 }] });
      const key = await createKey(server, { organizationId: organization.id, rateLimits: [] });
      const fields = Array.from({ length: 15 }, (_, i) => `v${i}: verifyKey(input: { key: $key }) { valid code }`).join('\n');
      const response = await server.gql(`mutation($key: String!) { ${fields} }`, { key: key.secret });
      expect(response.status).toBe(200);
      expect(response.body.errors).toBeUndefined();
      expect(Object.values(response.body.data)).toEqual(Array.from({ length: 15 }, () => ({ valid: true, code: 'VALID' })));
      expect(await requestsUsed(organization.id)).toBe(15);
    });
  });

  describe('tokens', () => {
    /**
     * `{ viewer { scopes __typename scopes … } }`: 5 tokens of frame plus one per field (two names
     * alternate: one name repeated ~1000 times is refused for a reason of its own, below).
     */
    const queryOfTokens = (tokens: number) => `{ viewer { ${Array.from({ length: tokens - 5 }, (_, i) => (i % 2 ? '__typename' : 'scopes')).join(' ')} } }`;

    it('accepts a query of exactly 1000 tokens', async () => {
      const response = await server.gql(queryOfTokens(1000));
      expect(response.status).toBe(200);
      expect(response.body.data.viewer).toEqual({ scopes: ['*'], __typename: 'Viewer' });
    });

    it('refuses a query of 1001 tokens with 400 QUERY_TOO_COMPLEX', async () => {
      expectTooComplex(await server.gql(queryOfTokens(1001)));
    });

    it('refuses a mutation over the token limit with 400 QUERY_TOO_COMPLEX and creates nothing', async () => {
      const organization = await createOrganization(server);
      const auditBefore = await auditCount(organization.id);
      const response = await server.gql(
        `mutation($organizationId: ID) { createApiKey(input: { organizationId: $organizationId, name: "k" }) { apiKey { ${'id '.repeat(1000)}} } }`,
        { organizationId: organization.id },
      );
      expectTooComplex(response);
      expect(await keyCount(organization.id)).toBe(0);
      expect(await auditCount(organization.id)).toBe(auditBefore);
    });

    it('refuses one field repeated 995 times (too costly to check that the fields merge) with 400 QUERY_TOO_COMPLEX', async () => {
      expectTooComplex(await server.gql(`{ viewer { ${'scopes '.repeat(995)}} }`));
    });

    it('does not count variables as tokens: a 1,000,000-character name reaches the resolver and gets 400 BAD_USER_INPUT', async () => {
      const response = await server.gql('mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }', { input: { name: 'n'.repeat(1_000_000) } });
      expect(response.status).toBe(400);
      expect(response.code).toBe('BAD_USER_INPUT');
      expect(response.body.errors![0].message).toMatch(/^name: /);
    });

    it('does not count a long string literal as more than one token', async () => {
      const response = await server.gql(`{ walletChallenge(address: "${'x'.repeat(100_000)}") { message } }`, {}, { key: null });
      expect(response.status).toBe(400);
      expect(response.code).toBe('BAD_USER_INPUT');
    });
  });

  describe('directives', () => {
    const queryOfDirectives = (count: number) => `{ viewer { ${'scopes @include(if: true) '.repeat(count)}} }`;

    it('accepts 50 directives', async () => {
      const response = await server.gql(queryOfDirectives(50));
      expect(response.status).toBe(200);
      expect(response.body.data.viewer.scopes).toEqual(['*']);
    });

    it('refuses 51 directives with 400 QUERY_TOO_COMPLEX', async () => {
      expectTooComplex(await server.gql(queryOfDirectives(51)));
    });
  });

  describe('cost', () => {
    /** Fragments spread ten times each multiply the fields without many tokens or any alias. */
    const EXPENSIVE_FRAGMENTS = `
      fragment A on QuotaStatus { used used used used used used used used used used }
      fragment B on QuotaStatus { ...A ...A ...A ...A ...A ...A ...A ...A ...A ...A }
      fragment C on QuotaStatus { ...B ...B ...B ...B ...B ...B ...B ...B ...B ...B }
      fragment D on QuotaStatus { ...C ...C ...C ...C ...C ...C ...C ...C ...C ...C }`;
    const AUDIT_PAGE = (first: string) => `auditLog(organizationId: $organizationId, first: ${first}) { nodes { id action actorKeyId targetType targetId organizationId ip metadata at } }`;
    /** The query of issue 12: 15 aliases of a 500-entry audit page (about 67,500 fields). */
    const FIFTEEN_AUDIT_PAGES = (first: string) => `query($organizationId: ID${first === '$first' ? ', $first: Int' : ''}) { ${Array.from({ length: 15 }, (_, i) => `a${i}: ${AUDIT_PAGE(first)}`).join(' ')} }`;

    /** A tenant key limited to 100 per minute with a REQUESTS quota, and what it has used of both. */
    async function meteredTenant() {
      const { organizationId, key } = await createTenant(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1000 }] });
      ok(await server.gql('mutation($id: ID!) { updateApiKey(id: $id, input: { rateLimits: [{ name: "per-minute", limit: 100, windowSeconds: 60 }] }) { id } }', { id: key.id }));
      const used = async () => ({
        quota: await requestsUsed(organizationId),
        window: ok(await server.gql('query($id: ID!) { rateLimitStatus(apiKeyId: $id) { remaining } }', { id: key.id })).rateLimitStatus[0].remaining,
      });
      return { organizationId, key, used };
    }

    it('refuses the 15-alias auditLog(first: 500) query with 400 QUERY_TOO_COMPLEX before it runs: no rate limit or quota taken', async () => {
      const { organizationId, key, used } = await meteredTenant();
      const before = await used();
      expectTooComplex(await server.gql(FIFTEEN_AUDIT_PAGES('500'), { organizationId }, { key: key.secret }));
      expect(await used()).toEqual(before);
    });

    it('sees a page size given as a variable: $first = 500 is refused, $first = 20 runs', async () => {
      const { organizationId, key, used } = await meteredTenant();
      const before = await used();
      expectTooComplex(await server.gql(FIFTEEN_AUDIT_PAGES('$first'), { organizationId, first: 500 }, { key: key.secret }));
      expect(await used()).toEqual(before);
      const small = await server.gql(FIFTEEN_AUDIT_PAGES('$first'), { organizationId, first: 20 }, { key: key.secret });
      expect(small.status).toBe(200);
      expect(small.body.errors).toBeUndefined();
      expect(Object.keys(small.body.data)).toHaveLength(15);
      expect(await used()).toEqual({ quota: before.quota + 1, window: before.window - 1 });
    });

    it("counts a page's default size when no first is given: 15 aliased apiKeys pages (50 keys each by default) are refused, with first: 10 they run", async () => {
      const pages = (first: string) => `{ ${Array.from({ length: 15 }, (_, i) => `k${i}: apiKeys${first} { nodes { ${KEY_FIELDS} } }`).join(' ')} }`;
      expectTooComplex(await server.gql(pages('')));
      const response = await server.gql(pages('(first: 10)'));
      expect(response.status).toBe(200);
      expect(response.body.errors).toBeUndefined();
    });

    it('counts a list without a page size as 5 items: 10,000 fields under quotas are refused, 1,000 run', async () => {
      expectTooComplex(await server.gql(`{ quotas { ...D } } ${EXPENSIVE_FRAGMENTS}`));
      const response = await server.gql(`{ quotas { ...C } } ${EXPENSIVE_FRAGMENTS.replace(/fragment D[^}]*}/, '')}`);
      expect(response.status).toBe(200);
      expect(response.body.errors).toBeUndefined();
    });

    it('refuses an expensive mutation with 400 QUERY_TOO_COMPLEX and creates nothing', async () => {
      const organization = await createOrganization(server);
      const auditBefore = await auditCount(organization.id);
      const response = await server.gql(
        `mutation($organizationId: ID) { createApiKey(input: { organizationId: $organizationId, name: "k" }) { apiKey { quotas { ...D } } } } ${EXPENSIVE_FRAGMENTS}`,
        { organizationId: organization.id },
      );
      expectTooComplex(response);
      expect(await keyCount(organization.id)).toBe(0);
      expect(await auditCount(organization.id)).toBe(auditBefore);
    });

    it('prices a page the same whether its size is a literal or a variable (first: 500 is not refused)', async () => {
      const { organizationId } = await createTenant(server);
      const literal = await server.gql(`query($organizationId: ID) { auditLog(organizationId: $organizationId, first: 500) {
        totalCount nodes { id action actorKeyId targetType targetId organizationId ip metadata at } } }`, { organizationId });
      expect(literal.status).toBe(200);
      expect(literal.body.data.auditLog.totalCount).toBe(2);
      const variable = await server.gql(`query($organizationId: ID, $first: Int) { auditLog(organizationId: $organizationId, first: $first) {
        totalCount nodes { id action actorKeyId targetType targetId organizationId ip metadata at } } }`, { organizationId, first: 500 });
      expect(variable.status).toBe(200);
      expect(variable.body.data).toEqual(literal.body.data);
      const page = await server.gql('query { organizations(first: 500) { totalCount nodes { id name } } }');
      expect(page.status).toBe(200);
      expect(page.body.data.organizations.nodes.map((node: any) => node.id)).toContain(organizationId);
    });

    it("runs the client package's ApiKeys document (every key field) with $first = 500, the largest page", async () => {
      const response = await server.gql(print(clientOperations().ApiKeys), { first: 500 });
      expect(response.status).toBe(200);
      expect(response.body.errors).toBeUndefined();
      expect(response.body.data.apiKeys.nodes.length).toBeGreaterThan(0);
    });

    it('keeps every document the console and the CLI send under the budget, at the largest page (500)', async () => {
      const schema = await buildKeywardSchema();
      const documents: Array<[string, DocumentNode]> = Object.entries(consoleQueries as Record<string, unknown>)
        .flatMap(([name, text]) => (typeof text === 'string' && /^(query|mutation|subscription)\b/.test(text) ? [[`console ${name}`, parse(text)] as [string, DocumentNode]] : []));
      documents.push(['console outcomesOverTime(12)', parse(consoleQueries.outcomesOverTime(12))]);
      for (const [name, document] of Object.entries(clientOperations())) documents.push([`client ${name}`, document]);
      expect(documents.length).toBeGreaterThan(40);
      const over = documents.flatMap(([label, document]) => {
        const operation = document.definitions.find((definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION)!;
        const cost = operationCost(schema, document, operation, { first: 500 });
        return cost > GRAPHQL_LIMITS.cost ? [`${label}: ${cost}`] : [];
      });
      expect(over).toEqual([]);
    });
  });

  describe('batching', () => {
    it('refuses a JSON array of operations with 400 BAD_USER_INPUT and runs none of them', async () => {
      const organization = await createOrganization(server);
      const operation = { query: `mutation($organizationId: ID) { ${CREATE_KEY_FIELD('batched')} }`, variables: { organizationId: organization.id } };
      const response = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${server.adminKey}` },
        body: JSON.stringify([operation, operation]),
      });
      const body = await response.json() as GraphQLResponse['body'];
      expect(response.status).toBe(400);
      expect(body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(await keyCount(organization.id)).toBe(0);
    });
  });

  it('refuses an operation over a limit before its key is verified: a bad key still gets 400 QUERY_TOO_COMPLEX', async () => {
    const { key } = await createTenant(server);
    const revoked = await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "test") { status } }', { id: key.id });
    expect(revoked.body.data.revokeApiKey.status).toBe('REVOKED');
    expectTooComplex(await server.gql(typeQueryOfDepth(13), {}, { key: key.secret }));
    const refused = await server.gql(typeQueryOfDepth(12), {}, { key: key.secret });
    expect(refused.status).toBe(401);
    expect(refused.code).toBe('KEY_REVOKED');
  });
});

describe('introspection switch', () => {
  describe('INTROSPECTION=false', () => {
    let server: TestServer;
    beforeAll(async () => { server = await startTestServer({ env: { INTROSPECTION: 'false' } }); });
    afterAll(async () => { await server.close(); });

    it.each([
      ['__schema', '{ __schema { queryType { name } } }'],
      ['__type', '{ __type(name: "ApiKey") { name } }'],
    ])('refuses a %s query with 400 GRAPHQL_VALIDATION_FAILED (INTROSPECTION_DISABLED)', async (_what, query) => {
      const response = await server.gql(query);
      expect(response.status).toBe(400);
      expect(response.code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(response.body.errors![0].extensions!.validationErrorCode).toBe('INTROSPECTION_DISABLED');
      expect(response.body.errors![0].message).toMatch(/introspection .*is disabled/i);
      expect(response.body.data).toBeUndefined();
    });

    it('still serves the GraphiQL page to a browser', async () => {
      const response = await fetch(server.url, { headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' } });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await response.text()).toContain('GraphiQL');
    });

    it('gives no "did you mean" hint for a misspelled field', async () => {
      const response = await server.gql('{ viewer { scope } }');
      expect(response.status).toBe(400);
      expect(response.code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(response.body.errors![0].message).toContain('"scope"');
      expect(response.body.errors![0].message).not.toMatch(/did you mean|scopes|\?/i);
    });

    it('gives no "did you mean" hint for a misspelled input field or enum value in variables', async () => {
      const organization = await createOrganization(server);
      const mutation = 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }';
      const field = await server.gql(mutation, { input: { organizationId: organization.id, name: 'k', nmae: 'x' } });
      expect(field.status).toBe(400);
      expect(field.code).toBe('BAD_USER_INPUT');
      expect(field.body.errors![0].message).toContain('"nmae"');
      expect(field.body.errors![0].message).not.toMatch(/did you mean|"name"/i);
      const value = await server.gql(mutation, { input: { organizationId: organization.id, name: 'k', preset: 'ADMN' } });
      expect(value.status).toBe(400);
      expect(value.code).toBe('BAD_USER_INPUT');
      // Neither a suggestion nor the variable's value (variables carry keys) is repeated.
      expect(value.body.errors![0].message).toContain('input.preset');
      expect(value.body.errors![0].message).not.toMatch(/did you mean|ADMIN|ADMN/i);
    });

    it('still refuses an operation over a limit with 400 QUERY_TOO_COMPLEX', async () => {
      const fields = Array.from({ length: 16 }, (_, i) => `s${i}: scopes`).join(' ');
      expectTooComplex(await server.gql(`{ viewer { ${fields} } }`));
    });
  });

  describe('NODE_ENV=production: schema details only for callers with a valid key', () => {
    let server: TestServer;
    beforeAll(async () => { server = await startTestServer({ env: { NODE_ENV: 'production' } }); });
    afterAll(async () => { await server.close(); });

    it.each([
      ['__schema', '{ __schema { queryType { name } } }'],
      ['__type', '{ __type(name: "ApiKey") { name } }'],
      ['__schema in a fragment', '{ ...S } fragment S on Query { __schema { queryType { name } } }'],
    ])('refuses a %s query without a key with 401 UNAUTHENTICATED saying the key is needed', async (_what, query) => {
      const response = await server.gql(query, {}, { key: null });
      expect({ status: response.status, code: response.code, data: response.body.data }).toEqual({ status: 401, code: 'UNAUTHENTICATED', data: undefined });
      expect(response.body.errors![0].message).toMatch(/Introspection .*needs an API key/);
    });

    it('answers a __schema query with a valid key, and refuses it with an unknown one as that key', async () => {
      const keyed = await server.gql('{ __schema { queryType { name } } }');
      expect(keyed.status).toBe(200);
      expect(keyed.body.data.__schema.queryType.name).toBe('Query');
      const unknown = await server.gql('{ __schema { queryType { name } } }', {}, { key: 'kw_live_0000000000000000000000000000000000000' });
      expect({ status: unknown.status, code: unknown.code }).toEqual({ status: 401, code: 'INVALID_API_KEY' });
    });

    it('still answers __typename without a key', async () => {
      const response = await server.gql('{ __typename }', {}, { key: null });
      expect(response.status).toBe(200);
      expect(response.body.data).toEqual({ __typename: 'Query' });
    });

    it('gives no "did you mean" hint without a valid key, and gives it with one', async () => {
      for (const key of [null, 'kw_live_0000000000000000000000000000000000000']) {
        const response = await server.gql('{ viewer { scope } }', {}, { key });
        expect(response.status).toBe(400);
        expect(response.code).toBe('GRAPHQL_VALIDATION_FAILED');
        expect(response.body.errors![0].message).toContain('"scope"');
        expect(response.body.errors![0].message).not.toMatch(/did you mean|scopes|\?/i);
      }
      const keyed = await server.gql('{ viewer { scope } }');
      expect(keyed.body.errors![0].message).toContain('Did you mean "scopes"?');
    });

    it('gives no "did you mean" hint without a key for a misspelled enum value in variables', async () => {
      const response = await server.gql('mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }', { input: { name: 'k', preset: 'ADMN' } }, { key: null });
      expect(response.status).toBe(400);
      expect(response.code).toBe('BAD_USER_INPUT');
      expect(response.body.errors![0].message).toContain('input.preset');
      expect(response.body.errors![0].message).not.toMatch(/did you mean|ADMIN/i);
    });
  });

  describe('INTROSPECTION on (the default)', () => {
    let server: TestServer;
    beforeAll(async () => { server = await startTestServer(); });
    afterAll(async () => { await server.close(); });

    it('answers a __schema query', async () => {
      const response = await server.gql('{ __schema { queryType { name } } }');
      expect(response.status).toBe(200);
      expect(response.body.data.__schema.queryType.name).toBe('Query');
    });

    it('suggests the field meant for a misspelled one', async () => {
      const response = await server.gql('{ viewer { scope } }');
      expect(response.status).toBe(400);
      expect(response.code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(response.body.errors![0].message).toContain('Did you mean "scopes"?');
    });
  });
});
