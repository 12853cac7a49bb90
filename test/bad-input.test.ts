import http from 'node:http';
import { isIP } from 'node:net';
import zlib from 'node:zlib';
import { randomUUID } from 'node:crypto';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, CreatedKey } from './helpers/fixtures';
import { ErrorCode } from '../src/errors';
import { MAX_BODY_BYTES } from '../src/server';
import { PUBLIC_RATE_LIMIT } from '../src/auth/enforcement.plugin';

/**
 * Garbage thrown at every mutation of the schema, and at the HTTP layer in front of them.
 * Every case must be refused with a 4xx status and a JSON body whose errors[0].extensions.code
 * is one of the server's own codes (never INTERNAL_SERVER_ERROR, never 200 with data for a
 * refused write), and must write nothing: the server's state (counts of organizations, keys,
 * audit entries and sessions, plus every organization, key and session row, the target key's
 * quotas, rate-limit windows and usage) is read through the admin key before and after each case.
 */

type Vars = Record<string, unknown>;
type CallerName = 'admin' | 'a' | 's' | 'none';

/** Codes a refused request may carry: the server's own list, minus the two that mean "not your fault". */
const CLIENT_CODES = new Set<string>(Object.values(ErrorCode).filter((code) => code !== ErrorCode.INTERNAL_SERVER_ERROR && code !== ErrorCode.UNAVAILABLE));

const HUGE = 'h'.repeat(1_000_000);
const MUTATION_BODY = JSON.stringify({ query: 'mutation { createOrganization(input: { name: "HTTP garbage" }) { id } }' });

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Parsed JSON body, undefined when the body is not JSON. */
  json: any;
  code: string | undefined;
  message: string;
}

interface RawRequest {
  method?: string;
  /** Appended to /graphql (a query string). */
  search?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Send the body in 64 KiB chunks without Content-Length (Transfer-Encoding: chunked). */
  chunked?: boolean;
}

function rawRequest(url: string, request: RawRequest): Promise<Reply> {
  const headers: Record<string, string> = { ...request.headers };
  const body = request.body === undefined ? undefined : Buffer.isBuffer(request.body) ? request.body : Buffer.from(request.body, 'utf8');
  if (body && !request.chunked) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const req = http.request(url + (request.search ?? ''), { method: request.method ?? 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        const first = json?.errors?.[0];
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, code: first?.extensions?.code, message: typeof first?.message === 'string' ? first.message : '' });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body && request.chunked) {
      for (let offset = 0; offset < body.length; offset += 65_536) req.write(body.subarray(offset, offset + 65_536));
    } else if (body) {
      req.write(body);
    }
    req.end();
  });
}

const short = (text: string, max = 300) => (text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text);
const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The fixtures every case aims at; built once, never changed by a (correctly) refused case. */
interface World {
  platform: string;
  orgA: string;
  slugA: string;
  orgB: string;
  orgS: string;
  /** maxKeys 1, already holding one key. */
  orgFull: string;
  /** Tenant A's ADMIN key without rate limits: the usual caller. */
  a: CreatedKey;
  /** A key of A with a rate limit (one request counted), a TOKENS quota (10 used) and some usage. */
  target: CreatedKey;
  revoked: string;
  deleted: CreatedKey;
  /** A key of A already replaced by rotation. */
  rotated: string;
  b: CreatedKey;
  /** Tenant S's ADMIN key: S has 2 session credits and no session. */
  s: CreatedKey;
  sessionA: string;
  endedSessionA: string;
  sessionB: string;
}

interface Ctx {
  w: World;
  /** A fresh key of A for cases of mutations that would destroy a shared one. */
  victim: string;
  /** A real wallet challenge for WALLET, for cases that need one. */
  challenge: { address: string; token: string; message: string; otherSignature: string } | null;
  /** The server clock's time, ISO 8601. */
  now: string;
}

interface CaseSpec {
  name: string;
  vars: (c: Ctx) => Vars;
  /** A hand-written variables JSON (for values JSON.stringify cannot build, e.g. 100,000 levels deep). */
  rawVariables?: (c: Ctx) => string;
  /** Accepted [status, code] pairs; the first is the one in the test name. */
  accept: Array<[number, string]>;
  /** A word the error message must contain (the field it is about). */
  mention?: string;
  caller?: CallerName;
}

interface Group {
  mutation: string;
  document: string;
  caller: CallerName;
  victim?: boolean;
  challenge?: boolean;
  cases: CaseSpec[];
}

type Place = (c: Ctx, value: unknown) => Vars;

function bad(name: string, vars: (c: Ctx) => Vars, mention?: string, extra: Partial<CaseSpec> = {}): CaseSpec {
  return { name, vars, accept: [[400, 'BAD_USER_INPUT']], mention, ...extra };
}

function refusedAs(status: number, code: string, name: string, vars: (c: Ctx) => Vars, extra: Partial<CaseSpec> = {}): CaseSpec {
  return { name, vars, accept: [[status, code]], ...extra };
}

const NOT_A_STRING: Array<[string, unknown]> = [['a number', 42], ['an object', { text: 'x' }], ['an array', ['x']]];

/** GraphQL's Int is 32-bit: each of these fails coercion. */
const NOT_AN_INT: Array<[string, unknown]> = [
  ['a numeric string', '10'], ['a fraction', 1.5], ['an object', { n: 1 }], ['an array', [1]],
  ['2^31', 2 ** 31], ['2^53', 2 ** 53], ['1e308', 1e308],
  ['"NaN" (JSON has no NaN)', 'NaN'], ['"Infinity" (JSON has no Infinity)', 'Infinity'],
];

const NOT_A_FLOAT: Array<[string, unknown]> = [
  ['a numeric string', '1'], ['an object', { n: 1 }], ['an array', [1]],
  ['"NaN" (JSON has no NaN)', 'NaN'], ['"Infinity" (JSON has no Infinity)', 'Infinity'],
];

const NOT_AN_ID: Array<[string, unknown]> = [['an object', { id: 'x' }], ['an array', ['x']], ['a fraction', 1.5]];

/** Ids that parse but name nothing. */
function missingIds(prefix: string): Array<[string, unknown]> {
  return [
    ['an unknown well-formed id', `${prefix}_0000000000zzzzzzzzzzzzzzzz`],
    ['an empty id', ''],
    ['an id of 1,000,000 characters', HUGE],
    ['an SQL-injection id', `${prefix}_x' OR '1'='1`],
    ['an id with a NUL', `${prefix}_\u0000`],
    ['an id with a lone surrogate', `${prefix}_\ud800`],
    ['a number as id', 12345],
  ];
}

function textCases(field: string, max: number, place: Place, options: { required?: boolean; label?: string } = {}): CaseSpec[] {
  const label = options.label ?? field;
  const values: Array<[string, unknown]> = [
    ...NOT_A_STRING,
    ['an empty string', ''],
    ['only spaces (ASCII, NBSP, em space, BOM)', ' \u00a0\u2003\ufeff '],
    [`${max + 1} characters`, 'n'.repeat(max + 1)],
    ['1,000,000 characters', HUGE],
    ['a NUL character', 'a\u0000b'],
    ['an ANSI escape sequence', 'a\u001b[31mb'],
    ['a line break', 'a\nb'],
    ['a lone surrogate ("\\ud800")', 'a\ud800b'],
  ];
  if (options.required) values.push(['null', null], ['missing', undefined]);
  return values.map(([what, value]) => bad(`${label}: ${what}`, (c) => place(c, value), field));
}

function intCases(field: string, place: Place, range: number[], label = field): CaseSpec[] {
  return [
    ...NOT_AN_INT.map(([what, value]) => bad(`${label}: ${what}`, (c) => place(c, value), field)),
    ...range.map((value) => bad(`${label}: ${value}`, (c) => place(c, value), field)),
  ];
}

function floatCases(field: string, place: Place, range: number[], label = field): CaseSpec[] {
  return [
    ...NOT_A_FLOAT.map(([what, value]) => bad(`${label}: ${what}`, (c) => place(c, value), field)),
    ...range.map((value) => bad(`${label}: ${value}`, (c) => place(c, value), field)),
  ];
}

function enumCases(field: string, place: Place, values: unknown[], label = field): CaseSpec[] {
  return values.map((value) => bad(`${label}: ${JSON.stringify(value)}`, (c) => place(c, value), field));
}

/** Wrong types for an ID argument: refused by coercion. */
function idTypeCases(field: string, place: Place, required: boolean, label = field): CaseSpec[] {
  const values: Array<[string, unknown]> = [...NOT_AN_ID, ...(required ? [['null', null] as [string, unknown]] : [])];
  return values.map(([what, value]) => bad(`${label}: ${what}`, (c) => place(c, value), field));
}

function dateCases(field: string, place: Place): CaseSpec[] {
  const values: Array<[string, unknown]> = [
    ['"yesterday"', 'yesterday'], ['"2026-13-45"', '2026-13-45'], ['an empty string', ''], ['0', 0],
    ['a date without a time', '2030-01-01'], ['a time without an offset', '2030-01-01T00:00:00'], ['February 30th', '2030-02-30T00:00:00Z'],
    ['a date in the past', '2000-01-01T00:00:00Z'], ['an object', { at: '2030-01-01T00:00:00Z' }], ['1,000,000 characters', HUGE],
  ];
  return values.map(([what, value]) => bad(`${field}: ${what}`, (c) => place(c, value), field));
}

function scopeSyntaxCases(field: string, place: Place): CaseSpec[] {
  const many = Array.from({ length: 101 }, (_, i) => `res${i}:read`);
  const values: Array<[string, unknown]> = [
    ['an upper-case scope', ['Keys:Read']], ['a scope without an action', ['keys']], ['a scope with two colons', ['keys:read:extra']],
    ['an empty scope', ['']], ['a scope with a space inside', ['keys: read']], ['a 51-character resource', [`${'r'.repeat(51)}:read`]],
    ['a scope of 1,000,000 characters', [HUGE]], ['a scope with a NUL', ['keys:read\u0000']], ['a Cyrillic scope', ['ключи:read']],
    ['101 scopes', many], ['a null entry', [null]], ['a number entry', [1]], ['an object', { scope: 'keys:read' }],
  ];
  return values.map(([what, value]) => bad(`${field}: ${what}`, (c) => place(c, value), field));
}

function ipListCases(place: Place): CaseSpec[] {
  const many = Array.from({ length: 101 }, (_, i) => `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`);
  const values: Array<[string, unknown]> = [
    ['999.1.1.1', ['999.1.1.1']], ['a /33 prefix', ['10.0.0.0/33']], ['a /129 IPv6 prefix', ['::1/129']], ['a host name', ['localhost']],
    ['an empty entry', ['']], ['two prefixes', ['10.0.0.0/8/8']], ['an address with a NUL', ['10.0.0.1\u0000']],
    ['an entry of 1,000,000 characters', [HUGE]], ['101 entries', many], ['a null entry', [null]], ['a number entry', [167772161]],
  ];
  return values.map(([what, value]) => bad(`ipAllowlist: ${what}`, (c) => place(c, value), 'ipAllowlist'));
}

function rateLimitCases(place: Place): CaseSpec[] {
  const ok = { name: 'per-minute', limit: 10, windowSeconds: 60 };
  const entry = (patch: Vars): unknown[] => [{ ...ok, ...patch }];
  const values: Array<[string, unknown, string]> = [
    ['an empty name', entry({ name: '' }), 'name'], ['a 65-character name', entry({ name: 'n'.repeat(65) }), 'name'],
    ['a name with a NUL', entry({ name: 'per\u0000minute' }), 'name'], ['a null name', entry({ name: null }), 'name'],
    ['limit 0', entry({ limit: 0 }), 'limit'], ['limit -1', entry({ limit: -1 }), 'limit'], ['limit 1,000,000,001', entry({ limit: 1_000_000_001 }), 'limit'],
    ['limit 2^31', entry({ limit: 2 ** 31 }), 'limit'], ['limit "10"', entry({ limit: '10' }), 'limit'],
    ['windowSeconds 0', entry({ windowSeconds: 0 }), 'windowSeconds'], ['windowSeconds of 366 days + 1 s', entry({ windowSeconds: 366 * 86_400 + 1 }), 'windowSeconds'],
    ['windowSeconds missing', [{ name: 'per-minute', limit: 10 }], 'windowSeconds'],
    ['the same name twice', [ok, { ...ok, limit: 20 }], 'rateLimits'],
    ['21 limits', Array.from({ length: 21 }, (_, i) => ({ ...ok, name: `limit-${i}` })), 'rateLimits'],
    ['a null entry', [null], 'rateLimits'], ['an unknown field in an entry', entry({ burst: 5 }), 'burst'],
  ];
  return values.map(([what, value, mention]) => bad(`rateLimits: ${what}`, (c) => place(c, value), mention));
}

function quotaCases(place: Place): CaseSpec[] {
  const ok = { meter: 'TOKENS', period: 'MONTH', limit: 1000 };
  const entry = (patch: Vars): unknown[] => [{ ...ok, ...patch }];
  const values: Array<[string, unknown, string]> = [
    ['an unknown meter', entry({ meter: 'BYTES' }), 'meter'], ['a lower-case meter', entry({ meter: 'tokens' }), 'meter'],
    ['an unknown period', entry({ period: 'WEEK' }), 'period'],
    ['limit 0', entry({ limit: 0 }), 'limit'], ['limit -1', entry({ limit: -1 }), 'limit'], ['limit 1e308', entry({ limit: 1e308 }), 'limit'],
    ['limit "5"', entry({ limit: '5' }), 'limit'], ['limit "NaN"', entry({ limit: 'NaN' }), 'limit'],
    ['limit missing', [{ meter: 'TOKENS', period: 'MONTH' }], 'limit'],
    ['the same meter and period twice', [ok, { ...ok, limit: 5 }], 'quotas'],
    ['21 quotas', Array.from({ length: 21 }, () => ok), 'quotas'], ['a null entry', [null], 'quotas'],
  ];
  return values.map(([what, value, mention]) => bad(`quotas: ${what}`, (c) => place(c, value), mention));
}

function metaCases(place: Place, deepPlace: (c: Ctx, metaJson: string) => string): CaseSpec[] {
  const values: Array<[string, unknown]> = [
    ['an empty array', []], ['an array', [1, 2]], ['a string', 'x'], ['a JSON-encoded object string', '{"a":1}'], ['a number', 42],
    ['an object over 8 KiB', { big: 'x'.repeat(9000) }], ['a string of 1,000,000 characters inside', { big: HUGE }],
    ['4,100 "é" (8,200 bytes in 4,100 characters)', { big: 'é'.repeat(4100) }],
  ];
  const deep = '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000);
  return [
    ...values.map(([what, value]) => bad(`meta: ${what}`, (c) => place(c, value), 'meta')),
    bad('meta: an object nested 100,000 levels deep (600 KB, under the body limit)', () => ({}), 'meta', { rawVariables: (c) => deepPlace(c, deep) }),
  ];
}

/** The wallet the wallet cases claim to be, and another one that signs in its place. */
const WALLET_ACCOUNT = privateKeyToAccount(generatePrivateKey());
const OTHER_ACCOUNT = privateKeyToAccount(generatePrivateKey());

const DOCUMENTS: Record<string, string> = {
  createOrganization: 'mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id name } }',
  updateOrganization: 'mutation($id: ID!, $input: UpdateOrganizationInput!) { updateOrganization(id: $id, input: $input) { id name maxKeys } }',
  setOrganizationStatus: 'mutation($id: ID!, $status: OrganizationStatus!) { setOrganizationStatus(id: $id, status: $status) { id status } }',
  createApiKey: 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id } } }',
  updateApiKey: 'mutation($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { id name } }',
  setApiKeyEnabled: 'mutation($id: ID!, $enabled: Boolean!) { setApiKeyEnabled(id: $id, enabled: $enabled) { id status } }',
  revokeApiKey: 'mutation($id: ID!, $reason: String!) { revokeApiKey(id: $id, reason: $reason) { id status } }',
  rotateApiKey: 'mutation($id: ID!, $gracePeriodSeconds: Int) { rotateApiKey(id: $id, gracePeriodSeconds: $gracePeriodSeconds) { secret apiKey { id } } }',
  deleteApiKey: 'mutation($id: ID!) { deleteApiKey(id: $id) }',
  verifyKey: 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code keyId } }',
  recordUsage: 'mutation($input: RecordUsageInput!) { recordUsage(input: $input) { recorded } }',
  resetRateLimit: 'mutation($apiKeyId: ID!, $name: String) { resetRateLimit(apiKeyId: $apiKeyId, name: $name) { name remaining } }',
  createSession: 'mutation($input: CreateSessionInput) { createSession(input: $input) { id } }',
  terminateSession: 'mutation($id: ID!) { terminateSession(id: $id) { id status } }',
  addSessionCredits: 'mutation($input: AddSessionCreditsInput!) { addSessionCredits(input: $input) { available } }',
  createApiKeyWithWallet: 'mutation($input: CreateApiKeyWithWalletInput!) { createApiKeyWithWallet(input: $input) { secret apiKey { id } } }',
};

const unique = (prefix: string) => `${prefix}-${randomUUID()}`;

// ---------------------------------------------------------------------------------------------
// The case tables, one group per mutation.
// ---------------------------------------------------------------------------------------------

const orgInput: Place = (_c, patch) => ({ input: { name: 'Garbage Org', ...(patch as Vars) } });
const orgField = (field: string): Place => (c, value) => orgInput(c, { [field]: value });

const createOrganizationGroup: Group = {
  mutation: 'createOrganization',
  document: DOCUMENTS.createOrganization,
  caller: 'admin',
  cases: [
    bad('input: null', () => ({ input: null }), 'input'),
    bad('input: missing', () => ({}), 'input'),
    bad('input: a string', () => ({ input: 'Garbage Org' }), 'input'),
    bad('input: an array', () => ({ input: [{ name: 'Garbage Org' }] }), 'input'),
    bad('input: an unknown field', () => ({ input: { name: 'Garbage Org', owner: 'me' } }), 'owner'),
    ...textCases('name', 200, orgField('name'), { required: true }),
    ...NOT_A_STRING.map(([what, value]) => bad(`slug: ${what}`, (c) => orgField('slug')(c, value), 'slug')),
    ...([
      ['an empty string', ''], ['upper case', 'Acme'], ['a space', 'acme inc'], ['a double dash', 'acme--inc'], ['a leading dash', '-acme'],
      ['a trailing dash', 'acme-'], ['an umlaut', 'äcme'], ['an emoji', 'acme-🚀'], ['65 characters', 's'.repeat(65)], ['1,000,000 characters', HUGE],
      ['a NUL', 'acme\u0000'], ['a lone surrogate', 'acme-\ud800'],
    ] as Array<[string, unknown]>).map(([what, value]) => bad(`slug: ${what}`, (c) => orgField('slug')(c, value), 'slug')),
    bad('slug: one already taken', (c) => orgField('slug')(c, c.w.slugA), 'slug'),
    ...intCases('maxKeys', orgField('maxKeys'), [-1, 0, 1_000_001, -(2 ** 31)]),
    ...quotaCases(orgField('quotas')),
    refusedAs(403, 'INSUFFICIENT_SCOPE', 'a caller without platform:admin', () => ({ input: { name: 'Garbage Org' } }), { caller: 'a' }),
  ],
};

const updateOrgField = (field: string): Place => (c, value) => ({ id: c.w.orgA, input: { [field]: value } });

const updateOrganizationGroup: Group = {
  mutation: 'updateOrganization',
  document: DOCUMENTS.updateOrganization,
  caller: 'a',
  cases: [
    bad('input: null', (c) => ({ id: c.w.orgA, input: null }), 'input'),
    bad('input: a string', (c) => ({ id: c.w.orgA, input: 'rename' }), 'input'),
    bad('input: an unknown field', (c) => ({ id: c.w.orgA, input: { status: 'SUSPENDED' } }), 'status'),
    ...textCases('name', 200, updateOrgField('name')),
    ...intCases('maxKeys', updateOrgField('maxKeys'), [-1, 0, 1_000_001]).map((spec) => ({ ...spec, caller: 'admin' as CallerName })),
    ...quotaCases(updateOrgField('quotas')).map((spec) => ({ ...spec, caller: 'admin' as CallerName })),
    refusedAs(403, 'INSUFFICIENT_SCOPE', 'maxKeys from a key without platform:admin', (c) => ({ id: c.w.orgA, input: { maxKeys: 5 } })),
    refusedAs(403, 'INSUFFICIENT_SCOPE', 'quotas from a key without platform:admin', (c) => ({ id: c.w.orgA, input: { quotas: [] } })),
    refusedAs(404, 'NOT_FOUND', "another tenant's organization", (c) => ({ id: c.w.orgB, input: { name: 'Taken over' } })),
    refusedAs(404, 'NOT_FOUND', 'the platform organization', (c) => ({ id: c.w.platform, input: { name: 'Taken over' } })),
    ...missingIds('org').map(([what, value]) => refusedAs(404, 'NOT_FOUND', `id: ${what} (tenant key)`, () => ({ id: value, input: { name: 'Renamed' } }))),
    ...missingIds('org').map(([what, value]) => refusedAs(404, 'NOT_FOUND', `id: ${what} (platform admin)`, () => ({ id: value, input: { name: 'Renamed' } }), { caller: 'admin' })),
    ...idTypeCases('id', (_c, value) => ({ id: value, input: { name: 'Renamed' } }), true),
  ],
};

const setStatusGroup: Group = {
  mutation: 'setOrganizationStatus',
  document: DOCUMENTS.setOrganizationStatus,
  caller: 'admin',
  cases: [
    ...enumCases('status', (c, value) => ({ id: c.w.orgB, status: value }), ['DELETED', 'active', '', 1, true, ['ACTIVE'], null]),
    ...missingIds('org').map(([what, value]) => refusedAs(404, 'NOT_FOUND', `id: ${what}`, () => ({ id: value, status: 'ACTIVE' }))),
    ...idTypeCases('id', (_c, value) => ({ id: value, status: 'ACTIVE' }), true),
    bad('suspending the platform organization', (c) => ({ id: c.w.platform, status: 'SUSPENDED' }), 'status'),
    refusedAs(403, 'INSUFFICIENT_SCOPE', 'a caller without platform:admin', (c) => ({ id: c.w.orgB, status: 'ACTIVE' }), { caller: 'a' }),
  ],
};

const keyInput: Place = (_c, patch) => ({ input: { name: 'Garbage key', rateLimits: [], ...(patch as Vars) } });
const keyField = (field: string): Place => (c, value) => keyInput(c, { [field]: value });

const createApiKeyGroup: Group = {
  mutation: 'createApiKey',
  document: DOCUMENTS.createApiKey,
  caller: 'a',
  cases: [
    bad('input: null', () => ({ input: null }), 'input'),
    bad('input: a string', () => ({ input: 'Garbage key' }), 'input'),
    bad('input: an array', () => ({ input: [{ name: 'Garbage key' }] }), 'input'),
    bad('input: an unknown field', () => ({ input: { name: 'Garbage key', secret: 'kw_live_mine' } }), 'secret'),
    refusedAs(404, 'NOT_FOUND', "organizationId: another tenant's organization", (c) => keyInput(c, { organizationId: c.w.orgB })),
    ...missingIds('org').map(([what, value]) => refusedAs(404, 'NOT_FOUND', `organizationId: ${what} (tenant key)`, (c) => keyInput(c, { organizationId: value }))),
    ...missingIds('org').map(([what, value]) => refusedAs(404, 'NOT_FOUND', `organizationId: ${what} (platform admin)`, (c) => keyInput(c, { organizationId: value }), { caller: 'admin' })),
    ...idTypeCases('organizationId', keyField('organizationId'), false),
    ...textCases('name', 200, keyField('name'), { required: true }),
    ...enumCases('environment', keyField('environment'), ['PROD', 'live', '', 1, true, ['LIVE']]),
    ...scopeSyntaxCases('scopes', keyField('scopes')),
    refusedAs(403, 'INSUFFICIENT_SCOPE', 'scopes: platform:admin from a tenant key', (c) => keyInput(c, { scopes: ['platform:admin'] })),
    refusedAs(403, 'INSUFFICIENT_SCOPE', 'scopes: platform:* from a tenant key (its * never reaches platform scopes)', (c) => keyInput(c, { scopes: ['platform:*'] })),
    bad('scopes: platform:admin for a tenant organization (platform admin)', (c) => keyInput(c, { organizationId: c.w.orgA, scopes: ['platform:admin'] }), 'scopes', { caller: 'admin' }),
    bad('scopes: platform:* for a tenant organization (platform admin)', (c) => keyInput(c, { organizationId: c.w.orgA, scopes: ['platform:*'] }), 'scopes', { caller: 'admin' }),
    ...enumCases('preset', keyField('preset'), ['ROOT', 'admin', '', 2]),
    ...intCases('expiresInDays', keyField('expiresInDays'), [0, -1, 36_501]),
    ...dateCases('expiresAt', keyField('expiresAt')),
    bad('expiresAt: exactly now', (c) => keyField('expiresAt')(c, c.now), 'expiresAt'),
    bad('expiresAt and expiresInDays together', (c) => keyInput(c, { expiresAt: '2030-01-01T00:00:00Z', expiresInDays: 30 }), 'expiresAt'),
    ...ipListCases(keyField('ipAllowlist')),
    ...rateLimitCases(keyField('rateLimits')),
    ...quotaCases(keyField('quotas')),
    ...intCases('maxCostPerRequest', keyField('maxCostPerRequest'), [0, -1, 1_000_001]),
    ...metaCases(keyField('meta'), (_c, meta) => `{"input": {"name": "Garbage key", "rateLimits": [], "meta": ${meta}}}`),
    ...textCases('ownerEmail', 320, keyField('ownerEmail')),
    ...([['no @', 'not-an-email'], ['no dot in the domain', 'a@b'], ['no local part', '@example.com'], ['no domain', 'a@'], ['a space', 'a b@example.com']] as Array<[string, unknown]>)
      .map(([what, value]) => bad(`ownerEmail: ${what}`, (c) => keyField('ownerEmail')(c, value), 'ownerEmail')),
    ...textCases('externalId', 200, keyField('externalId')),
    refusedAs(403, 'KEY_LIMIT_EXCEEDED', 'one key more than the organization may hold', (c) => keyInput(c, { organizationId: c.w.orgFull }), { caller: 'admin' }),
  ],
};

const updateKeyField = (field: string): Place => (c, value) => ({ id: c.w.target.id, input: { [field]: value } });

const updateApiKeyGroup: Group = {
  mutation: 'updateApiKey',
  document: DOCUMENTS.updateApiKey,
  caller: 'a',
  cases: [
    bad('input: null', (c) => ({ id: c.w.target.id, input: null }), 'input'),
    bad('input: a string', (c) => ({ id: c.w.target.id, input: 'rename' }), 'input'),
    bad('input: an unknown field', (c) => ({ id: c.w.target.id, input: { organizationId: c.w.orgB } }), 'organizationId'),
    ...missingIds('key').map(([what, value]) => refusedAs(404, 'NOT_FOUND', `id: ${what}`, () => ({ id: value, input: { name: 'Renamed' } }))),
    refusedAs(404, 'NOT_FOUND', "id: another tenant's key", (c) => ({ id: c.w.b.id, input: { name: 'Renamed' } })),
    refusedAs(404, 'NOT_FOUND', 'id: a deleted key', (c) => ({ id: c.w.deleted.id, input: { name: 'Renamed' } })),
    refusedAs(404, 'NOT_FOUND', 'id: an organization id', (c) => ({ id: c.w.orgA, input: { name: 'Renamed' } })),
    bad('id: a revoked key', (c) => ({ id: c.w.revoked, input: { name: 'Renamed' } }), 'id'),
    ...idTypeCases('id', (_c, value) => ({ id: value, input: { name: 'Renamed' } }), true),
    ...textCases('name', 200, updateKeyField('name')),
    ...scopeSyntaxCases('scopes', updateKeyField('scopes')),
    refusedAs(403, 'INSUFFICIENT_SCOPE', 'scopes: platform:admin from a tenant key', (c) => updateKeyField('scopes')(c, ['platform:admin'])),
    bad('scopes: platform:admin for a tenant key (platform admin)', (c) => updateKeyField('scopes')(c, ['platform:admin']), 'scopes', { caller: 'admin' }),
    ...dateCases('expiresAt', updateKeyField('expiresAt')),
    ...ipListCases(updateKeyField('ipAllowlist')),
    ...rateLimitCases(updateKeyField('rateLimits')),
    ...quotaCases(updateKeyField('quotas')),
    ...intCases('maxCostPerRequest', updateKeyField('maxCostPerRequest'), [0, -1, 1_000_001]),
    ...metaCases(updateKeyField('meta'), (c, meta) => `{"id": "${c.w.target.id}", "input": {"meta": ${meta}}}`),
    ...textCases('ownerEmail', 320, updateKeyField('ownerEmail')),
    bad('ownerEmail: no @', (c) => updateKeyField('ownerEmail')(c, 'not-an-email'), 'ownerEmail'),
    ...textCases('externalId', 200, updateKeyField('externalId')),
  ],
};

/** Id garbage for the mutations that take one key id: each refused with 404 (or 400 for a revoked key). */
function keyIdCases(place: Place, options: { revoked: 'BAD_USER_INPUT' | 'NOT_FOUND' | null }): CaseSpec[] {
  return [
    ...missingIds('key').map(([what, value]) => refusedAs(404, 'NOT_FOUND', `id: ${what}`, (c) => place(c, value))),
    refusedAs(404, 'NOT_FOUND', "id: another tenant's key", (c) => place(c, c.w.b.id)),
    refusedAs(404, 'NOT_FOUND', 'id: a deleted key', (c) => place(c, c.w.deleted.id)),
    refusedAs(404, 'NOT_FOUND', 'id: an organization id', (c) => place(c, c.w.orgA)),
    ...(options.revoked === 'BAD_USER_INPUT' ? [bad('id: a revoked key', (c) => place(c, c.w.revoked), 'id')] : []),
    ...idTypeCases('id', place, true),
  ];
}

const setApiKeyEnabledGroup: Group = {
  mutation: 'setApiKeyEnabled',
  document: DOCUMENTS.setApiKeyEnabled,
  caller: 'a',
  victim: true,
  cases: [
    ...enumCases('enabled', (c, value) => ({ id: c.victim, enabled: value }), ['false', 'true', 0, 1, null, { enabled: false }, [false], '']),
    ...keyIdCases((_c, value) => ({ id: value, enabled: false }), { revoked: 'BAD_USER_INPUT' }),
  ],
};

const revokeApiKeyGroup: Group = {
  mutation: 'revokeApiKey',
  document: DOCUMENTS.revokeApiKey,
  caller: 'a',
  victim: true,
  cases: [
    ...textCases('reason', 500, (c, value) => ({ id: c.victim, reason: value }), { required: true }),
    ...keyIdCases((_c, value) => ({ id: value, reason: 'garbage test' }), { revoked: 'BAD_USER_INPUT' }),
  ],
};

const rotateApiKeyGroup: Group = {
  mutation: 'rotateApiKey',
  document: DOCUMENTS.rotateApiKey,
  caller: 'a',
  victim: true,
  cases: [
    ...intCases('gracePeriodSeconds', (c, value) => ({ id: c.victim, gracePeriodSeconds: value }), [-1, 30 * 86_400 + 1, -(2 ** 31)]),
    ...keyIdCases((_c, value) => ({ id: value, gracePeriodSeconds: 60 }), { revoked: 'BAD_USER_INPUT' }),
    bad('id: a key already replaced by rotation', (c) => ({ id: c.w.rotated, gracePeriodSeconds: 60 }), 'id'),
  ],
};

const deleteApiKeyGroup: Group = {
  mutation: 'deleteApiKey',
  document: DOCUMENTS.deleteApiKey,
  caller: 'a',
  cases: keyIdCases((_c, value) => ({ id: value }), { revoked: null }),
};

const verifyInput: Place = (c, patch) => ({ input: { key: c.w.target.secret, ...(patch as Vars) } });
const verifyField = (field: string): Place => (c, value) => verifyInput(c, { [field]: value });

const verifyKeyGroup: Group = {
  mutation: 'verifyKey',
  document: DOCUMENTS.verifyKey,
  caller: 'a',
  cases: [
    bad('input: null', () => ({ input: null }), 'input'),
    bad('input: a string', (c) => ({ input: c.w.target.secret }), 'input'),
    bad('input: without key', () => ({ input: {} }), 'key'),
    bad('input: an unknown field', (c) => verifyInput(c, { apiKeyId: c.w.target.id }), 'apiKeyId'),
    ...[...NOT_A_STRING, ['null', null] as [string, unknown]].map(([what, value]) => bad(`key: ${what}`, (c) => verifyField('key')(c, value), 'key')),
    ...intCases('cost', verifyField('cost'), [0, -1, 1_000_001]),
    ...scopeSyntaxCases('requiredScopes', verifyField('requiredScopes')),
    ...([
      ['999.0.0.1', '999.0.0.1'], ['an empty string', ''], ['a host name', 'localhost'], ['a CIDR block', '10.0.0.0/8'], ['1,000,000 characters', HUGE],
      ['an address with a NUL', '1.2.3.4\u0000'], ['a mapped invalid address', '::ffff:999.1.1.1'], ['a number', 16909060], ['an object', { ip: '1.2.3.4' }], ['a list', ['1.2.3.4']],
    ] as Array<[string, unknown]>).map(([what, value]) => bad(`ip: ${what}`, (c) => verifyField('ip')(c, value), 'ip')),
    ...textCases('operation', 200, verifyField('operation')),
    ...enumCases('requireSession', verifyField('requireSession'), ['yes', 1, { on: true }]),
    ...enumCases('recordEvent', verifyField('recordEvent'), ['no', 0]),
  ],
};

const usageInput: Place = (c, patch) => ({ input: { apiKeyId: c.w.target.id, operation: 'POST /v1/garbage', idempotencyKey: unique('garbage'), tokens: 5, ...(patch as Vars) } });
const usageField = (field: string): Place => (c, value) => usageInput(c, { [field]: value });

const recordUsageGroup: Group = {
  mutation: 'recordUsage',
  document: DOCUMENTS.recordUsage,
  caller: 'a',
  cases: [
    bad('input: null', () => ({ input: null }), 'input'),
    bad('input: a string', () => ({ input: 'usage' }), 'input'),
    bad('input: an unknown field', (c) => usageInput(c, { organizationId: c.w.orgB }), 'organizationId'),
    ...missingIds('key').map(([what, value]) => refusedAs(404, 'NOT_FOUND', `apiKeyId: ${what}`, (c) => usageField('apiKeyId')(c, value))),
    refusedAs(404, 'NOT_FOUND', "apiKeyId: another tenant's key", (c) => usageField('apiKeyId')(c, c.w.b.id)),
    refusedAs(404, 'NOT_FOUND', 'apiKeyId: a deleted key', (c) => usageField('apiKeyId')(c, c.w.deleted.id)),
    ...idTypeCases('apiKeyId', usageField('apiKeyId'), true),
    ...missingIds('ses').filter(([what]) => what !== 'an empty id')
      .map(([what, value]) => refusedAs(404, 'NOT_FOUND', `sessionId: ${what}`, (c) => usageField('sessionId')(c, value))),
    refusedAs(404, 'NOT_FOUND', 'sessionId: an empty id', (c) => usageField('sessionId')(c, '')),
    refusedAs(404, 'NOT_FOUND', "sessionId: another tenant's session", (c) => usageField('sessionId')(c, c.w.sessionB)),
    refusedAs(402, 'NO_ACTIVE_SESSION', 'sessionId: a session that already ended', (c) => usageField('sessionId')(c, c.w.endedSessionA)),
    ...idTypeCases('sessionId', usageField('sessionId'), false),
    ...textCases('operation', 200, usageField('operation'), { required: true }),
    ...textCases('idempotencyKey', 200, usageField('idempotencyKey'), { required: true }),
    ...intCases('statusCode', usageField('statusCode'), [99, 600, 0, -1]),
    ...floatCases('latencyMs', usageField('latencyMs'), [-1, 86_400_001, 1e308]),
    ...intCases('tokens', usageField('tokens'), [-1, -(2 ** 31)]),
    ...intCases('characters', (c, value) => usageInput(c, { tokens: undefined, characters: value }), [-1]),
    ...floatCases('costUsd', usageField('costUsd'), [-1, -0.01, 1_000_001, 1e308]),
    bad('tokens: -1 charged to an active session', (c) => usageInput(c, { sessionId: c.w.sessionA, tokens: -1 }), 'tokens'),
  ],
};

const resetRateLimitGroup: Group = {
  mutation: 'resetRateLimit',
  document: DOCUMENTS.resetRateLimit,
  caller: 'a',
  cases: [
    ...([
      ...NOT_A_STRING, ['an empty string', ''], ['an unknown name', 'per-fortnight'], ['a different case', 'PER-DAY'], ['a leading space', ' per-day'],
      ['1,000,000 characters', HUGE], ['a NUL', 'per-day\u0000'], ['a lone surrogate', 'per-\ud800'],
    ] as Array<[string, unknown]>).map(([what, value]) => bad(`name: ${what}`, (c) => ({ apiKeyId: c.w.target.id, name: value }), 'name')),
    ...missingIds('key').map(([what, value]) => refusedAs(404, 'NOT_FOUND', `apiKeyId: ${what}`, () => ({ apiKeyId: value }))),
    refusedAs(404, 'NOT_FOUND', "apiKeyId: another tenant's key", (c) => ({ apiKeyId: c.w.b.id })),
    refusedAs(404, 'NOT_FOUND', 'apiKeyId: a deleted key', (c) => ({ apiKeyId: c.w.deleted.id })),
    ...idTypeCases('apiKeyId', (_c, value) => ({ apiKeyId: value }), true),
  ],
};

const sessionInput = (field: string): Place => (_c, value) => ({ input: { [field]: value } });

const createSessionGroup: Group = {
  mutation: 'createSession',
  document: DOCUMENTS.createSession,
  caller: 's',
  cases: [
    bad('input: a string', () => ({ input: 'session' }), 'input'),
    bad('input: a number', () => ({ input: 42 }), 'input'),
    bad('input: an array', () => ({ input: [{}] }), 'input'),
    bad('input: an unknown field', () => ({ input: { organizationId: 'org_x' } }), 'organizationId'),
    ...intCases('tokenLimit', sessionInput('tokenLimit'), [0, -1]),
    ...intCases('ttlSeconds', sessionInput('ttlSeconds'), [59, 0, -1, 30 * 86_400 + 1]),
  ],
};

const terminateSessionGroup: Group = {
  mutation: 'terminateSession',
  document: DOCUMENTS.terminateSession,
  caller: 'a',
  cases: [
    ...missingIds('ses').map(([what, value]) => refusedAs(404, 'NOT_FOUND', `id: ${what}`, () => ({ id: value }))),
    refusedAs(404, 'NOT_FOUND', "id: another tenant's session", (c) => ({ id: c.w.sessionB })),
    refusedAs(404, 'NOT_FOUND', 'id: a key id', (c) => ({ id: c.w.target.id })),
    bad('id: a session that already ended', (c) => ({ id: c.w.endedSessionA }), 'id'),
    ...idTypeCases('id', (_c, value) => ({ id: value }), true),
  ],
};

const creditsInput: Place = (c, patch) => ({ input: { organizationId: c.w.orgS, sessions: 1, idempotencyKey: unique('credits'), ...(patch as Vars) } });
const creditsField = (field: string): Place => (c, value) => creditsInput(c, { [field]: value });

const addSessionCreditsGroup: Group = {
  mutation: 'addSessionCredits',
  document: DOCUMENTS.addSessionCredits,
  caller: 'admin',
  cases: [
    bad('input: null', () => ({ input: null }), 'input'),
    bad('input: an unknown field', (c) => creditsInput(c, { priceUsd: 0 }), 'priceUsd'),
    ...missingIds('org').map(([what, value]) => refusedAs(404, 'NOT_FOUND', `organizationId: ${what}`, (c) => creditsField('organizationId')(c, value))),
    ...idTypeCases('organizationId', creditsField('organizationId'), true),
    ...intCases('sessions', creditsField('sessions'), [0, -1, 1_000_001]),
    ...textCases('idempotencyKey', 200, creditsField('idempotencyKey'), { required: true }),
    refusedAs(409, 'IDEMPOTENCY_CONFLICT', 'idempotencyKey: already used with another count', (c) => creditsInput(c, { idempotencyKey: 'seed-S', sessions: 3 })),
    refusedAs(403, 'INSUFFICIENT_SCOPE', 'a caller without platform:admin', (c) => creditsInput(c, {}), { caller: 'a' }),
  ],
};

/** Valid wallet input except for the garbage (and a token that names no challenge, the last check). */
const walletInput: Place = (_c, patch) => ({
  input: { address: WALLET_ACCOUNT.address, signature: `0x${'ab'.repeat(65)}`, token: 'no-such-challenge-token', name: 'Wallet key', ...(patch as Vars) },
});
const walletField = (field: string): Place => (c, value) => walletInput(c, { [field]: value });

const walletGroup: Group = {
  mutation: 'createApiKeyWithWallet',
  document: DOCUMENTS.createApiKeyWithWallet,
  caller: 'none',
  challenge: true,
  cases: [
    bad('input: null', () => ({ input: null }), 'input'),
    bad('input: a string', () => ({ input: WALLET_ACCOUNT.address }), 'input'),
    bad('input: an unknown field', (c) => walletInput(c, { organizationId: c.w.orgA }), 'organizationId'),
    ...([
      ...NOT_A_STRING, ['an empty string', ''], ['too short', '0x123'], ['not hex', `0x${'g'.repeat(40)}`], ['no 0x', 'a'.repeat(42)],
      ['1,000,000 characters', HUGE], ['a NUL', `${WALLET_ACCOUNT.address}\u0000`], ['a lone surrogate', `0x${'a'.repeat(39)}\ud800`], ['null', null], ['missing', undefined],
    ] as Array<[string, unknown]>).map(([what, value]) => bad(`address: ${what}`, (c) => walletField('address')(c, value), 'address')),
    ...([
      ...NOT_A_STRING, ['an empty string', ''], ['"0x"', '0x'], ['not hex', 'zz'], ['64 bytes', `0x${'ab'.repeat(64)}`], ['hex with letters past f', `0x${'zz'.repeat(65)}`],
      ['1,000,000 characters', HUGE], ['null', null],
    ] as Array<[string, unknown]>).map(([what, value]) => bad(`signature: ${what}`, (c) => walletField('signature')(c, value), 'signature')),
    ...textCases('token', 200, walletField('token'), { required: true }),
    bad('token: one no challenge was issued for', (c) => walletInput(c, {}), 'token'),
    ...textCases('name', 200, walletField('name'), { required: true }),
    ...enumCases('environment', walletField('environment'), ['PROD', 1]),
    ...enumCases('preset', walletField('preset'), ['ROOT', 'platform', 1]),
    bad('signature: 65 zero bytes for a real challenge', (c) => walletInput(c, { token: c.challenge!.token, signature: `0x${'00'.repeat(65)}` }), 'signature'),
    bad('signature: made by another wallet for a real challenge', (c) => ({ input: { address: WALLET_ACCOUNT.address, token: c.challenge!.token, name: 'Wallet key', signature: c.challenge!.otherSignature } }), 'signature'),
    bad('address: not the one the challenge was issued for', (c) => ({ input: { address: OTHER_ACCOUNT.address, token: c.challenge!.token, name: 'Wallet key', signature: c.challenge!.otherSignature } }), 'address'),
  ],
};

const GROUPS: Group[] = [
  createOrganizationGroup, updateOrganizationGroup, setStatusGroup, createApiKeyGroup, updateApiKeyGroup, setApiKeyEnabledGroup,
  revokeApiKeyGroup, rotateApiKeyGroup, deleteApiKeyGroup, verifyKeyGroup, recordUsageGroup, resetRateLimitGroup,
  createSessionGroup, terminateSessionGroup, addSessionCreditsGroup, walletGroup,
];

// An empty id may also be refused as bad input ("organizationId: is required") rather than looked up.
for (const group of GROUPS) {
  for (const spec of group.cases) {
    if (/: an empty id\b/.test(spec.name) && !spec.accept.some(([status]) => status === 400)) spec.accept.push([400, 'BAD_USER_INPUT']);
  }
}

/** Garbage written into the query text itself: refused by parsing or validation, before anything runs. */
const LITERAL_CASES: Array<{ name: string; query: string; code: string; also?: string; caller?: CallerName }> = [
  { name: 'a number for a String', query: 'mutation { createOrganization(input: { name: 5 }) { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'an Int over 2^31', query: 'mutation { createOrganization(input: { name: "x", maxKeys: 2147483648 }) { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a string for an Int', query: 'mutation { updateOrganization(id: "org_x", input: { maxKeys: "10" }) { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a lone surrogate escape', query: 'mutation { createOrganization(input: { name: "\\uD800" }) { id } }', code: 'GRAPHQL_PARSE_FAILED' },
  { name: 'an unknown input field', query: 'mutation { createOrganization(input: { name: "x", owner: "me" }) { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a missing required argument', query: 'mutation { createOrganization { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'an unknown enum value', query: 'mutation { setOrganizationStatus(id: "org_x", status: DELETED) { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'an enum value as a string', query: 'mutation { setOrganizationStatus(id: "org_x", status: "ACTIVE") { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'an object for an ID', query: 'mutation { updateApiKey(id: { a: 1 }, input: {}) { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a list for JSONObject', query: 'mutation { createApiKey(input: { name: "x", meta: [1, 2] }) { secret } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'an invalid DateTime', query: 'mutation { createApiKey(input: { name: "x", expiresAt: "yesterday" }) { secret } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a fraction for cost', query: 'mutation { verifyKey(input: { key: "x", cost: 1.5 }) { valid } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a string for gracePeriodSeconds', query: 'mutation { rotateApiKey(id: "key_x", gracePeriodSeconds: "60") { secret } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'null for a non-null ID', query: 'mutation { deleteApiKey(id: null) }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a fraction for tokens', query: 'mutation { recordUsage(input: { apiKeyId: "key_x", operation: "o", idempotencyKey: "k", tokens: 1.5 }) { recorded } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a Float for ttlSeconds', query: 'mutation { createSession(input: { ttlSeconds: 1e3 }) { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a string for sessions', query: 'mutation { addSessionCredits(input: { organizationId: "org_x", sessions: "1", idempotencyKey: "k" }) { available } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a list for an ID', query: 'mutation { terminateSession(id: ["ses_x"]) { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a number for a rate-limit name', query: 'mutation { resetRateLimit(apiKeyId: "key_x", name: 5) { name } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a string for a Boolean', query: 'mutation { setApiKeyEnabled(id: "key_x", enabled: "yes") { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a missing reason', query: 'mutation { revokeApiKey(id: "key_x") { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'an unknown preset for a wallet key', query: 'mutation { createApiKeyWithWallet(input: { address: "0x0", signature: "0x", token: "t", name: "n", preset: ROOT }) { secret } }', code: 'GRAPHQL_VALIDATION_FAILED', caller: 'none' },
  { name: 'an unclosed document', query: 'mutation { createOrganization(input: { name: "x" }) { id }', code: 'GRAPHQL_PARSE_FAILED' },
  { name: 'a variable of the wrong declared type', query: 'mutation($n: Int!) { createOrganization(input: { name: $n }) { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'an undeclared variable', query: 'mutation { createOrganization(input: { name: $n }) { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'an unknown mutation', query: 'mutation { dropDatabase }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a selection on a Boolean result', query: 'mutation { deleteApiKey(id: "key_x") { id } }', code: 'GRAPHQL_VALIDATION_FAILED' },
  { name: 'a document nested 100,000 levels deep', query: `mutation { createOrganization(input: ${'{ a: '.repeat(100_000)}1${'}'.repeat(100_000)}) { id } }`, code: 'GRAPHQL_PARSE_FAILED', also: 'QUERY_TOO_COMPLEX' },
];

describe('bad input', () => {
  let server: TestServer;
  let w: World;

  beforeAll(async () => {
    server = await startTestServer();
    const platform = server.platformOrganizationId;
    const ok = async (query: string, variables: Vars, key?: string) => {
      const response = await server.gql(query, variables, { key });
      if (response.status !== 200 || response.body.errors) throw new Error(`setup failed: ${JSON.stringify(response.body)}`);
      return response.body.data;
    };
    const orgA = await createOrganization(server, { maxKeys: 100_000, quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: 1_000_000 }] });
    const orgB = await createOrganization(server);
    const orgS = await createOrganization(server);
    const orgFull = await createOrganization(server, { maxKeys: 1 });
    await createKey(server, { organizationId: orgFull.id, rateLimits: [] });
    const a = await createKey(server, { organizationId: orgA.id, preset: 'ADMIN', rateLimits: [] });
    const b = await createKey(server, { organizationId: orgB.id, preset: 'ADMIN', rateLimits: [] });
    const s = await createKey(server, { organizationId: orgS.id, preset: 'ADMIN', rateLimits: [] });
    const target = await createKey(server, {
      organizationId: orgA.id,
      scopes: ['keys:read'],
      // A day-long window: the in-memory store forgets a window after its length in real time.
      rateLimits: [{ name: 'per-day', limit: 100, windowSeconds: 86_400 }],
      quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: 1000 }],
      meta: { team: 'garbage' },
      ownerEmail: 'owner@example.com',
      externalId: 'ext-target',
    });
    const revoked = await createKey(server, { organizationId: orgA.id, rateLimits: [] });
    await ok('mutation($id: ID!) { revokeApiKey(id: $id, reason: "setup") { id } }', { id: revoked.id });
    const deleted = await createKey(server, { organizationId: orgA.id, rateLimits: [] });
    await ok('mutation($id: ID!) { deleteApiKey(id: $id) }', { id: deleted.id });
    const rotated = await createKey(server, { organizationId: orgA.id, rateLimits: [] });
    await ok('mutation($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 3600) { secret } }', { id: rotated.id });

    const verified = await ok('mutation($key: String!) { verifyKey(input: { key: $key }) { valid } }', { key: target.secret }, a.secret);
    if (!verified.verifyKey.valid) throw new Error('setup: the target key does not verify');
    await ok('mutation($id: ID!) { recordUsage(input: { apiKeyId: $id, operation: "setup", idempotencyKey: "setup", tokens: 10 }) { recorded } }', { id: target.id }, a.secret);

    const credits = 'mutation($o: ID!, $n: Int!, $k: String!) { addSessionCredits(input: { organizationId: $o, sessions: $n, idempotencyKey: $k }) { available } }';
    await ok(credits, { o: orgA.id, n: 2, k: 'seed-A' });
    await ok(credits, { o: orgB.id, n: 1, k: 'seed-B' });
    await ok(credits, { o: orgS.id, n: 2, k: 'seed-S' });
    const session = 'mutation { createSession { id } }';
    const ended = (await ok(session, {}, a.secret)).createSession.id;
    await ok('mutation($id: ID!) { terminateSession(id: $id) { id } }', { id: ended }, a.secret);
    const sessionA = (await ok(session, {}, a.secret)).createSession.id;
    const sessionB = (await ok(session, {}, b.secret)).createSession.id;
    const slugA = (await ok('query($id: ID) { organization(id: $id) { slug } }', { id: orgA.id })).organization.slug;

    w = {
      platform, orgA: orgA.id, slugA, orgB: orgB.id, orgS: orgS.id, orgFull: orgFull.id,
      a, target, revoked: revoked.id, deleted, rotated: rotated.id, b, s,
      sessionA, endedSessionA: ended, sessionB,
    };
  });

  afterAll(async () => {
    await server?.close();
  });

  // ---- helpers bound to the server ---------------------------------------------------------

  const secretOf = (caller: CallerName): string | null =>
    caller === 'admin' ? server.adminKey : caller === 'a' ? w.a.secret : caller === 's' ? w.s.secret : null;

  function post(body: string, caller: CallerName, headers: Record<string, string> = {}): Promise<Reply> {
    const key = secretOf(caller);
    return rawRequest(server.url, {
      headers: { 'content-type': 'application/json', ...(key && { authorization: `Bearer ${key}` }), ...headers },
      body,
    });
  }

  /** Anonymous calls of public fields take 30/min per IP; each anonymous case starts with a fresh window. */
  async function freshPublicWindow(): Promise<void> {
    for (const ip of ['127.0.0.1', '::ffff:127.0.0.1', '::1']) {
      await server.app.rateLimiter.reset(`ip:${ip}`, [PUBLIC_RATE_LIMIT], server.clock.now());
    }
  }

  const STATE = `query State($target: ID!, $orgA: ID) {
    organizations(first: 500) { totalCount nodes { id name slug status maxKeys sessionBalance } }
    orgA: organization(id: $orgA) { quotas { meter period limit used } }
    apiKeys(first: 500) { totalCount nodes { id organizationId name environment hint status scopes ipAllowlist rateLimits { name limit windowSeconds }
      maxCostPerRequest meta ownerEmail externalId expiresAt revokedAt revokedReason revokedBy rotatedFromId createdAt } }
    sessions(first: 500) { totalCount nodes { id organizationId apiKeyId status tokenLimit tokensUsed requestCount expiresAt endedAt } }
    auditLog(first: 1) { totalCount nodes { id action } }
    target: apiKey(id: $target) { quotas { meter period limit used } }
    rateLimitStatus(apiKeyId: $target) { name limit remaining resetAt }
    usage(range: { apiKeyId: $target }) { requests errors tokens costUsd }
  }`;

  interface Snapshot { rows: Map<string, string> }

  /**
   * The state left by the previous refusal case, when it passed completely (nothing written in
   * between): saves one state query per case. Anything that writes on purpose clears it.
   */
  let unchangedSince: Snapshot | null = null;

  async function stateBefore(): Promise<Snapshot> {
    const state = unchangedSince ?? (await snapshot());
    unchangedSince = null;
    return state;
  }

  /** Compares, and only when nothing changed offers the state to the next case. */
  async function expectUnchanged(before: Snapshot): Promise<void> {
    const after = await snapshot();
    expect(changes(before, after)).toEqual([]);
    unchangedSince = after;
  }

  /** Everything a refused write could have touched, as comparable rows (lastUsedAt/requestCount left out: they count calls). */
  async function snapshot(): Promise<Snapshot> {
    const response = await server.gql(STATE, { target: w.target.id, orgA: w.orgA });
    if (response.status !== 200 || response.body.errors) throw new Error(`state query failed: ${JSON.stringify(response.body).slice(0, 500)}`);
    const data = response.body.data;
    const rows = new Map<string, string>();
    rows.set('count:organizations', String(data.organizations.totalCount));
    rows.set('count:apiKeys', String(data.apiKeys.totalCount));
    rows.set('count:sessions', String(data.sessions.totalCount));
    rows.set('count:auditLog', String(data.auditLog.totalCount));
    rows.set('audit:newest', JSON.stringify(data.auditLog.nodes[0] ?? null));
    for (const list of [data.organizations.nodes, data.apiKeys.nodes, data.sessions.nodes]) {
      for (const node of list) rows.set(node.id, JSON.stringify(node));
    }
    rows.set('orgA:quotas', JSON.stringify(data.orgA.quotas));
    rows.set('target:quotas', JSON.stringify(data.target.quotas));
    rows.set('target:rateLimits', JSON.stringify(data.rateLimitStatus));
    rows.set('target:usage', JSON.stringify(data.usage));
    return { rows };
  }

  function changes(before: Snapshot, after: Snapshot): string[] {
    const out: string[] = [];
    for (const [id, row] of after.rows) {
      const previous = before.rows.get(id);
      if (previous === undefined) out.push(`new ${id}: ${short(row, 400)}`);
      else if (previous !== row) out.push(`changed ${id}: ${short(previous, 400)} → ${short(row, 400)}`);
    }
    for (const id of before.rows.keys()) if (!after.rows.has(id)) out.push(`gone ${id}`);
    return out;
  }

  /** Status, code, message and (for a mutation) no data, checked in one comparison so a failure shows them all. */
  function expectRefused(reply: Reply, field: string | null, accept: Array<[number, string]>, mention?: string): void {
    const actual = {
      status: reply.status,
      code: reply.code,
      jsonBody: reply.json !== undefined,
      mentionsField: mention ? new RegExp(`\\b${escapeRegExp(mention)}\\b`).test(reply.message) : true,
      data: field ? (reply.json?.data?.[field] ?? null) : null,
      message: short(reply.message || reply.text),
    };
    const matching = accept.find(([status, code]) => status === actual.status && code === actual.code) ?? accept[0];
    expect(actual).toEqual({ status: matching[0], code: matching[1], jsonBody: true, mentionsField: true, data: null, message: expect.any(String) });
    expect(CLIENT_CODES.has(actual.code ?? '')).toBe(true);
  }

  async function prepare(group: Group): Promise<Ctx> {
    let victim = '';
    if (group.victim) {
      unchangedSince = null;
      victim = (await createKey(server, { organizationId: w.orgA, rateLimits: [] })).id;
    }
    let challenge: Ctx['challenge'] = null;
    if (group.challenge) {
      await freshPublicWindow();
      const response = await server.gql('query($address: String!) { walletChallenge(address: $address) { token message } }', { address: WALLET_ACCOUNT.address }, { key: null });
      const { token, message } = response.body.data.walletChallenge;
      challenge = { address: WALLET_ACCOUNT.address, token, message, otherSignature: await OTHER_ACCOUNT.signMessage({ message }) };
    }
    return { w, victim, challenge, now: server.clock.now().toISOString() };
  }

  describe.each(GROUPS)('$mutation', (group) => {
    it.each(group.cases.map((spec) => ({ ...spec, status: spec.accept[0][0], code: spec.accept[0][1] })))(
      'refuses $name with $status $code and writes nothing',
      async (spec) => {
        const ctx = await prepare(group);
        const caller = spec.caller ?? group.caller;
        const before = await stateBefore();
        if (caller === 'none') await freshPublicWindow();
        const variables = spec.rawVariables ? spec.rawVariables(ctx) : JSON.stringify(spec.vars(ctx));
        const reply = await post(`{"query": ${JSON.stringify(group.document)}, "variables": ${variables}}`, caller);
        expectRefused(reply, group.mutation, spec.accept, spec.mention);
        await expectUnchanged(before);
      },
    );
  });

  describe('garbage in the query text', () => {
    it.each(LITERAL_CASES)('refuses $name with 400 $code and writes nothing', async ({ query, code, also, caller }) => {
      const before = await stateBefore();
      if (caller === 'none') await freshPublicWindow();
      const reply = await post(JSON.stringify({ query }), caller ?? 'admin');
      expectRefused(reply, null, [[400, code], ...(also ? [[400, also] as [number, string]] : [])]);
      expect(reply.json?.data ?? null).toBeNull();
      await expectUnchanged(before);
    });
  });

  describe('verifyKey with a garbage key', () => {
    // A refused key is data, not an error: 200 with valid false and NOT_FOUND, and nothing consumed.
    const keys: Array<[string, (w: World) => string]> = [
      ['an empty string', () => ''],
      ['only spaces', () => '   '],
      ['1,000,000 characters', () => HUGE],
      ['a NUL', () => 'kw_live_\u0000'],
      ['a lone surrogate', () => '\ud800'],
      ['an emoji', () => '🔑'],
      ['the right shape with a wrong checksum', () => `kw_live_${'A'.repeat(38)}`],
      ['the target secret with a "Bearer " prefix', (world) => `Bearer ${world.target.secret}`],
      ['the target secret with a trailing character', (world) => `${world.target.secret}x`],
      ['the target secret in lower case', (world) => world.target.secret.toLowerCase()],
      ['the target secret with a line break', (world) => `${world.target.secret}\n`],
      ["another tenant's key", (world) => world.b.secret],
      ['a deleted key', (world) => world.deleted.secret],
    ];

    it.each(keys)('answers %s with 200, valid false, NOT_FOUND and consumes nothing', async (_what, key) => {
      const before = await stateBefore();
      const reply = await post(JSON.stringify({ query: DOCUMENTS.verifyKey, variables: { input: { key: key(w) } } }), 'a');
      expect({ status: reply.status, errors: reply.json?.errors ?? null, result: reply.json?.data?.verifyKey })
        .toEqual({ status: 200, errors: null, result: { valid: false, code: 'NOT_FOUND', keyId: null } });
      await expectUnchanged(before);
    });
  });

  describe('HTTP-level garbage', () => {
    const mutationQuery = 'mutation { createOrganization(input: { name: "HTTP garbage" }) { id } }';
    const refusedMutationBody = JSON.stringify({ query: 'mutation { createOrganization(input: { name: "" }) { id } }' });
    const overLimit = () => {
      const head = `{"query": ${JSON.stringify(mutationQuery)}, "variables": {"pad": "`;
      return head + 'p'.repeat(MAX_BODY_BYTES + 1 - head.length - 3) + '"}}';
    };
    const BAD_JSON: Array<[number, string]> = [[400, 'BAD_USER_INPUT']];
    const WRONG_TYPE: Array<[number, string]> = [[400, 'BAD_USER_INPUT'], [415, 'BAD_USER_INPUT']];
    const multipart = `--xyz\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${MUTATION_BODY}\r\n--xyz--\r\n`;

    const cases: Array<{ name: string; request: (server: TestServer) => RawRequest; accept: Array<[number, string]>; key?: 'admin' | null }> = [
      { name: 'a truncated JSON body', request: () => ({ body: MUTATION_BODY.slice(0, 30) }), accept: BAD_JSON },
      { name: 'garbage after the JSON body', request: () => ({ body: `${MUTATION_BODY} }garbage` }), accept: BAD_JSON },
      { name: 'a body of "{"', request: () => ({ body: '{' }), accept: BAD_JSON },
      { name: 'a body of "null"', request: () => ({ body: 'null' }), accept: BAD_JSON },
      { name: 'a body of "[]"', request: () => ({ body: '[]' }), accept: BAD_JSON },
      { name: 'a body of \'"x"\'', request: () => ({ body: '"x"' }), accept: BAD_JSON },
      { name: 'a body of "42"', request: () => ({ body: '42' }), accept: BAD_JSON },
      { name: 'a body of "{}"', request: () => ({ body: '{}' }), accept: BAD_JSON },
      { name: 'an empty body', request: () => ({ body: '' }), accept: BAD_JSON },
      { name: 'a body of only whitespace', request: () => ({ body: ' \n\t ' }), accept: BAD_JSON },
      { name: 'a batch (JSON array) holding the mutation', request: () => ({ body: `[${MUTATION_BODY}, ${MUTATION_BODY}]` }), accept: BAD_JSON },
      { name: 'Content-Type text/plain', request: () => ({ headers: { 'content-type': 'text/plain' }, body: MUTATION_BODY }), accept: WRONG_TYPE },
      { name: 'Content-Type application/x-www-form-urlencoded', request: () => ({ headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `query=${encodeURIComponent(mutationQuery)}` }), accept: WRONG_TYPE },
      { name: 'Content-Type multipart/form-data', request: () => ({ headers: { 'content-type': 'multipart/form-data; boundary=xyz' }, body: multipart }), accept: WRONG_TYPE },
      { name: 'no Content-Type', request: () => ({ headers: { 'content-type': '' }, body: MUTATION_BODY }), accept: WRONG_TYPE },
      { name: 'no Content-Type and no body', request: () => ({ headers: { 'content-type': '' } }), accept: WRONG_TYPE },
      { name: 'text/plain with an apollo-require-preflight header', request: () => ({ headers: { 'content-type': 'text/plain', 'apollo-require-preflight': 'true' }, body: MUTATION_BODY }), accept: WRONG_TYPE },
      { name: 'Content-Type application/graphql', request: () => ({ headers: { 'content-type': 'application/graphql' }, body: mutationQuery }), accept: WRONG_TYPE },
      { name: 'a latin1 charset', request: () => ({ headers: { 'content-type': 'application/json; charset=latin1' }, body: MUTATION_BODY }), accept: WRONG_TYPE },
      { name: 'Content-Encoding gzip on a body that is not gzip', request: () => ({ headers: { 'content-encoding': 'gzip' }, body: MUTATION_BODY }), accept: WRONG_TYPE },
      { name: 'an unknown Content-Encoding', request: () => ({ headers: { 'content-encoding': 'x-garbage' }, body: MUTATION_BODY }), accept: WRONG_TYPE },
      { name: 'GET with the mutation in the query string (and a preflight header)', request: () => ({ method: 'GET', search: `?query=${encodeURIComponent(mutationQuery)}`, headers: { 'content-type': '', 'apollo-require-preflight': 'true' } }), accept: [[405, 'BAD_USER_INPUT']] },
      { name: 'GET with the mutation in the query string, no preflight header', request: () => ({ method: 'GET', search: `?query=${encodeURIComponent(mutationQuery)}`, headers: { 'content-type': '' } }), accept: BAD_JSON },
      { name: 'PUT', request: () => ({ method: 'PUT', body: MUTATION_BODY }), accept: [[405, 'BAD_USER_INPUT']] },
      { name: 'PATCH', request: () => ({ method: 'PATCH', body: MUTATION_BODY }), accept: [[405, 'BAD_USER_INPUT']] },
      { name: 'DELETE', request: () => ({ method: 'DELETE', body: MUTATION_BODY }), accept: [[405, 'BAD_USER_INPUT']] },
      { name: 'a 15,000-character header (under Node\'s 16 KiB limit) with a mutation that has bad input', request: () => ({ headers: { 'x-junk': 'j'.repeat(15_000) }, body: refusedMutationBody }), accept: BAD_JSON },
      { name: '500 extra headers with a mutation that has bad input', request: () => ({ headers: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`x-junk-${i}`, 'j'])), body: refusedMutationBody }), accept: BAD_JSON },
      { name: 'an Authorization header with a 15,000-character key', key: null, request: () => ({ headers: { authorization: `Bearer ${'k'.repeat(15_000)}` }, body: MUTATION_BODY }), accept: [[401, 'INVALID_API_KEY']] },
      { name: 'an X-API-Key header of 15,000 characters', key: null, request: () => ({ headers: { 'x-api-key': 'k'.repeat(15_000) }, body: MUTATION_BODY }), accept: [[401, 'INVALID_API_KEY']] },
      { name: 'a Basic Authorization header', key: null, request: () => ({ headers: { authorization: 'Basic YWRtaW46YWRtaW4=' }, body: MUTATION_BODY }), accept: [[401, 'UNAUTHENTICATED']] },
      { name: 'a Bearer Authorization header without a key', key: null, request: () => ({ headers: { authorization: 'Bearer' }, body: MUTATION_BODY }), accept: [[401, 'UNAUTHENTICATED']] },
      { name: 'a body of MAX_BODY_BYTES + 1 bytes', request: () => ({ body: overLimit() }), accept: [[413, 'PAYLOAD_TOO_LARGE']] },
      { name: 'a chunked body over 1 MiB without Content-Length', request: () => ({ body: overLimit(), chunked: true }), accept: [[413, 'PAYLOAD_TOO_LARGE']] },
      { name: 'a gzip body that inflates to over 1 MiB', request: () => ({ headers: { 'content-encoding': 'gzip' }, body: zlib.gzipSync(Buffer.from(overLimit())) }), accept: [[413, 'PAYLOAD_TOO_LARGE']] },
      { name: 'variables as a JSON-encoded string', request: () => ({ body: JSON.stringify({ query: DOCUMENTS.createOrganization, variables: JSON.stringify({ input: { name: 'x' } }) }) }), accept: BAD_JSON },
      { name: 'variables as an array', request: () => ({ body: JSON.stringify({ query: DOCUMENTS.createOrganization, variables: [{ input: { name: 'x' } }] }) }), accept: BAD_JSON },
      { name: 'query as a number', request: () => ({ body: JSON.stringify({ query: 42 }) }), accept: BAD_JSON },
      { name: 'query as null', request: () => ({ body: JSON.stringify({ query: null }) }), accept: BAD_JSON },
      { name: 'an empty query', request: () => ({ body: JSON.stringify({ query: '' }) }), accept: BAD_JSON },
      { name: 'a query of only a comment', request: () => ({ body: JSON.stringify({ query: '# nothing here' }) }), accept: [[400, 'GRAPHQL_PARSE_FAILED']] },
      { name: 'operationName as a number', request: () => ({ body: JSON.stringify({ query: mutationQuery, operationName: 5 }) }), accept: BAD_JSON },
      { name: 'extensions as a string', request: () => ({ body: JSON.stringify({ query: mutationQuery, extensions: '{}' }) }), accept: BAD_JSON },
      { name: 'an operationName that names no operation in the document', request: () => ({ body: JSON.stringify({ query: `mutation Create ${mutationQuery.slice('mutation '.length)}`, operationName: 'Drop' }) }), accept: [[400, 'BAD_USER_INPUT'], [400, 'GRAPHQL_VALIDATION_FAILED']] },
      { name: 'two anonymous operations in one document', request: () => ({ body: JSON.stringify({ query: `${mutationQuery} ${mutationQuery}` }) }), accept: [[400, 'GRAPHQL_VALIDATION_FAILED'], [400, 'BAD_USER_INPUT']] },
      { name: 'two named operations and no operationName', request: () => ({ body: JSON.stringify({ query: `mutation A ${mutationQuery.slice(9)} mutation B ${mutationQuery.slice(9)}` }) }), accept: [[400, 'BAD_USER_INPUT'], [400, 'GRAPHQL_VALIDATION_FAILED']] },
      { name: 'an unknown persisted-query hash', request: () => ({ body: JSON.stringify({ extensions: { persistedQuery: { version: 1, sha256Hash: 'f'.repeat(64) } } }) }), accept: [[400, 'BAD_USER_INPUT']] }, // persisted queries are off
      { name: 'an unsupported persisted-query version', request: () => ({ body: JSON.stringify({ query: mutationQuery, extensions: { persistedQuery: { version: 2, sha256Hash: 'f'.repeat(64) } } }) }), accept: BAD_JSON },
      { name: 'a subscription sent as a plain POST', request: () => ({ body: JSON.stringify({ query: 'subscription { apiKeyChanged { type } }' }) }), accept: [[400, 'BAD_USER_INPUT'], [400, 'GRAPHQL_VALIDATION_FAILED'], [405, 'BAD_USER_INPUT']] },
      { name: 'an operation name of 100,000 characters on a mutation that has bad input', request: () => ({ body: JSON.stringify({ query: `mutation ${'N'.repeat(100_000)} { createOrganization(input: { name: "" }) { id } }` }) }), accept: BAD_JSON },
    ];

    it.each(cases)('refuses $name with a 4xx JSON error and writes nothing', async ({ request, accept, key }) => {
      const before = await stateBefore();
      const base = request(server);
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        ...(key !== null && { authorization: `Bearer ${server.adminKey}` }),
        ...base.headers,
      };
      for (const [name, value] of Object.entries(headers)) if (value === '') delete headers[name];
      const reply = await rawRequest(server.url, { ...base, headers });
      const [status, code] = accept.find(([s, c]) => s === reply.status && c === reply.code) ?? accept[0];
      const persisted = code === 'PERSISTED_QUERY_NOT_FOUND';
      expect({ status: reply.status, code: reply.code, jsonBody: reply.json !== undefined, data: reply.json?.data ?? null, message: short(reply.message || reply.text) })
        .toEqual({ status, code, jsonBody: true, data: null, message: expect.any(String) });
      expect(persisted || (reply.status >= 400 && reply.status < 500)).toBe(true);
      expect(CLIENT_CODES.has(reply.code ?? '') || persisted).toBe(true);
      await expectUnchanged(before);
    });
  });

  describe('no partial writes', () => {
    beforeEach(() => { unchangedSince = null; });
    it('leaves the idempotency key of a recordUsage refused for another tenant\'s session unclaimed', async () => {
      const idempotencyKey = unique('half-written');
      const refused = await post(JSON.stringify({ query: DOCUMENTS.recordUsage, variables: { input: { apiKeyId: w.target.id, sessionId: w.sessionB, operation: 'x', idempotencyKey, tokens: 5 } } }), 'a');
      expectRefused(refused, 'recordUsage', [[404, 'NOT_FOUND']]);
      const retried = await post(JSON.stringify({ query: DOCUMENTS.recordUsage, variables: { input: { apiKeyId: w.target.id, operation: 'x', idempotencyKey, tokens: 7 } } }), 'a');
      expect({ status: retried.status, data: retried.json?.data }).toEqual({ status: 200, data: { recordUsage: { recorded: true } } });
    });

    it('keeps a wallet challenge usable after an attempt refused for its signature, and creates nothing for the refused one', async () => {
      const account = privateKeyToAccount(generatePrivateKey());
      await freshPublicWindow();
      const challenge = await server.gql('query($address: String!) { walletChallenge(address: $address) { token message } }', { address: account.address }, { key: null });
      const { token, message } = challenge.body.data.walletChallenge;
      const before = await snapshot();
      const refused = await post(JSON.stringify({ query: DOCUMENTS.createApiKeyWithWallet, variables: { input: { address: account.address, token, name: 'Wallet key', signature: await OTHER_ACCOUNT.signMessage({ message }) } } }), 'none');
      expectRefused(refused, 'createApiKeyWithWallet', [[400, 'BAD_USER_INPUT']], 'signature');
      expect(changes(before, await snapshot())).toEqual([]);
      await freshPublicWindow();
      const created = await post(JSON.stringify({ query: DOCUMENTS.createApiKeyWithWallet, variables: { input: { address: account.address, token, name: 'Wallet key', signature: await account.signMessage({ message }) } } }), 'none');
      expect(created.status).toBe(200);
      expect(created.json.data.createApiKeyWithWallet.secret).toMatch(/^kw_live_[0-9A-Za-z]{38}$/);
    });

    it('writes nothing for a document whose second mutation has bad input, or else reports the first one\'s write', async () => {
      const name = unique('Half');
      const before = await snapshot();
      const reply = await post(JSON.stringify({ query: `mutation { ok: createOrganization(input: { name: "${name}" }) { id } bad: createOrganization(input: { name: "" }) { id } }` }), 'admin');
      const organizations = await server.gql('{ organizations(first: 500) { nodes { id name } } }');
      const written = organizations.body.data.organizations.nodes.filter((node: { name: string }) => node.name === name);
      if (reply.status >= 400) {
        // Refused: the client is told nothing happened, so nothing may have happened.
        expect({ status: reply.status, code: reply.code, written }).toEqual({ status: 400, code: 'BAD_USER_INPUT', written: [] });
        expect(changes(before, await snapshot())).toEqual([]);
      } else {
        expect(reply.json.data.ok).toEqual({ id: written[0].id });
      }
    });
  });

  describe('Unicode that is valid text', () => {
    beforeEach(() => { unchangedSince = null; });
    const texts: Array<[string, string]> = [
      ['emoji', 'Prod key 🔑🚀'],
      ['a ZWJ family emoji', 'Team 👨‍👩‍👧‍👦'],
      ['Arabic (right to left)', 'مفتاح الإنتاج'],
      ['Hebrew mixed with Latin', 'מפתח key 2'],
      ['zero-width joiners and spaces inside', 'a\u200bb\u200dc'],
      ['combining marks', 'Cafe\u0301 Zoe\u0308'],
      ['CJK', '生产密钥'],
      ['astral-plane letters', '𝕂𝕖𝕪 𝟙'],
      ['100 emoji (200 UTF-16 units, the limit)', '😀'.repeat(100)],
    ];

    it.each(texts)('stores %s exactly as sent in names, externalId, meta and revoke reasons', async (_what, text) => {
      const organization = await server.gql('mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }', { input: { name: text } });
      expect(organization.status).toBe(200);
      const organizationId = organization.body.data.createOrganization.id;
      const key = await createKey(server, { organizationId, name: text, externalId: text, meta: { label: text }, rateLimits: [] });
      const revoked = await server.gql('mutation($id: ID!, $reason: String!) { revokeApiKey(id: $id, reason: $reason) { id } }', { id: key.id, reason: text });
      expect(revoked.status).toBe(200);
      const read = await server.gql('query($o: ID, $k: ID!) { organization(id: $o) { name } apiKey(id: $k) { name externalId meta revokedReason } }', { o: organizationId, k: key.id });
      expect(read.body.data).toEqual({ organization: { name: text }, apiKey: { name: text, externalId: text, meta: { label: text }, revokedReason: text } });
    });
  });
});

describe('bad input that only shows in logs and buffered writes (a server behind a proxy)', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer({ env: { TRUST_PROXY: 'true' } }); });
  afterAll(async () => { await server?.close(); });

  const post = (body: string, key: string, headers: Record<string, string> = {}) =>
    rawRequest(server.url, { headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers }, body });

  it.each([
    ['a 1,000-character X-Forwarded-For', 'x'.repeat(1000)],
    ['an X-Forwarded-For that is not an address', 'not-an-ip'],
    ['an X-Forwarded-For with a tab inside', 'evil\tip'],
  ])('answers a mutation with %s without a 500 and never records it as the audit ip', async (_what, forwarded) => {
    const name = unique('Proxied');
    const reply = await post(JSON.stringify({ query: 'mutation($name: String!) { createOrganization(input: { name: $name }) { id } }', variables: { name } }), server.adminKey, { 'x-forwarded-for': forwarded });
    const answer = { serverError: reply.status >= 500, status: reply.status, code: reply.code, message: short(reply.message) };
    expect(answer).toEqual({ ...answer, serverError: false });
    const audit = await server.gql('{ auditLog(first: 5) { nodes { action targetId ip } } }');
    const entries = audit.body.data.auditLog.nodes.filter((node: { action: string; targetId: string }) => node.action === 'organization.create' && node.targetId === reply.json?.data?.createOrganization?.id);
    if (reply.status === 200) {
      expect(entries).toHaveLength(1);
      const ip = entries[0].ip as string | null;
      expect({ ip: ip === null ? null : short(ip, 60), isAddressOrNull: ip === null || isIP(ip) !== 0 }).toEqual({ ip: ip === null ? null : short(ip, 60), isAddressOrNull: true });
    } else {
      expect(reply.status).toBeGreaterThanOrEqual(400);
      expect(CLIENT_CODES.has(reply.code ?? '')).toBe(true);
      expect(entries).toEqual([]);
    }
  });

  it('logs a rate-limited call with a 5,000-character operation name and keeps recording usage afterwards', async () => {
    const organization = await createOrganization(server);
    const limited = await createKey(server, { organizationId: organization.id, preset: 'ADMIN', rateLimits: [{ name: 'tight', limit: 1, windowSeconds: 60 }] });
    const other = await createKey(server, { organizationId: organization.id, preset: 'ADMIN', rateLimits: [] });
    const operation = `Op${'x'.repeat(5000)}`;
    expect((await post(JSON.stringify({ query: '{ viewer { scopes } }' }), limited.secret)).status).toBe(200);
    const refused = await post(JSON.stringify({ query: `query ${operation} { viewer { scopes } }` }), limited.secret);
    expect({ status: refused.status, code: refused.code }).toEqual({ status: 429, code: 'RATE_LIMITED' });

    const log = await server.gql('query($id: ID!) { rateLimitLog(apiKeyId: $id) { name operation } }', { id: limited.id });
    const logged = (log.body.data?.rateLimitLog ?? []).map((event: { name: string; operation: string | null }) => ({
      name: event.name,
      operationIsAPrefix: typeof event.operation === 'string' && event.operation.length > 0 && operation.startsWith(event.operation),
    }));

    // The refusal's write must not hold up the usage events that come after it.
    for (let i = 0; i < 3; i++) expect((await post(JSON.stringify({ query: '{ viewer { scopes } }' }), other.secret)).status).toBe(200);
    const usage = await server.gql('query($id: ID) { usage(range: { apiKeyId: $id }) { requests } }', { id: other.id });
    expect({ logged, requestsAfterwards: usage.body.data?.usage?.requests }).toEqual({ logged: [{ name: 'tight', operationIsAPrefix: true }], requestsAfterwards: 3 });
  });
});
