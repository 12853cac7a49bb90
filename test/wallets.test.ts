import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts';
import { startTestServer, TestServer, GraphQLResponse } from './helpers/server';
import { KEY_FIELDS, uniqueName } from './helpers/fixtures';
import { ok, expectBadInput } from './helpers/expect';

/**
 * Wallet-signed keys: walletChallenge (public) gives a single-use, 5-minute message naming the
 * checksummed address; createApiKeyWithWallet checks its EIP-191 signature (made here with viem
 * accounts) and creates a key in the wallet's organization (made with the default quotas on
 * the first key). Every refusal is 400 BAD_USER_INPUT naming the field, with nothing written.
 * Public fields are limited to 30 anonymous calls per minute per client IP.
 */

const CHALLENGE = 'query($address: String!) { walletChallenge(address: $address) { token message expiresAt } }';
const CREATE = `mutation($input: CreateApiKeyWithWalletInput!) { createApiKeyWithWallet(input: $input) { secret apiKey { ${KEY_FIELDS} } } }`;
const VIEWER = '{ viewer { apiKey { id organizationId scopes environment } organization { id name quotas { meter period limit } } scopes } }';
const ORGANIZATION = 'query($id: ID) { organization(id: $id) { id name status maxKeys quotas { organizationId apiKeyId meter period limit used } } }';
const ORGANIZATIONS = 'query { organizations(first: 500) { totalCount nodes { id name } } }';
const KEYS = 'query($organizationId: ID) { apiKeys(filter: { organizationId: $organizationId }, first: 500) { totalCount nodes { id name } } }';
const AUDIT = `query($organizationId: ID) { auditLog(organizationId: $organizationId, first: 500) {
  totalCount nodes { id organizationId actorKeyId action targetType targetId ip metadata at } } }`;

const FIVE_MINUTES_MS = 5 * 60_000;
const LOCALHOST = ['127.0.0.1', '::ffff:127.0.0.1'];

interface Challenge { token: string; message: string; expiresAt: string }

function newAccount(): PrivateKeyAccount {
  return privateKeyToAccount(generatePrivateKey());
}

describe('wallet keys', () => {
  let server: TestServer;
  let host: string;

  const PUBLIC_URL = 'https://keys.example.test';
  beforeAll(async () => {
    // Sign-in messages name the configured public host, never the request's Host. Many wallet
    // organizations are made from 127.0.0.1 here; the per-address cap has its own test.
    server = await startTestServer({ env: { KEYWARD_PUBLIC_URL: PUBLIC_URL, WALLET_ORGANIZATIONS_PER_HOUR: '1000' } });
    host = new URL(PUBLIC_URL).host;
  });
  afterAll(async () => { await server.close(); });
  // Every test makes several anonymous public calls (30 per minute per IP): each starts in a
  // fresh one-minute window of the server's clock so no test spends another's allowance.
  beforeEach(() => { server.clock.advance(60_000); });

  async function challenge(address: string): Promise<Challenge> {
    return ok(await server.gql(CHALLENGE, { address }, { key: null })).walletChallenge;
  }

  function create(input: Record<string, unknown>): Promise<GraphQLResponse> {
    return server.gql(CREATE, { input: { name: uniqueName('Wallet key'), ...input } }, { key: null });
  }

  /** The whole flow: challenge, sign with the account, create. */
  async function walletKey(account: PrivateKeyAccount, input: Record<string, unknown> = {}) {
    const { token, message } = await challenge(account.address);
    const signature = await account.signMessage({ message });
    return ok(await create({ address: account.address, signature, token, ...input })).createApiKeyWithWallet as { secret: string; apiKey: Record<string, any> };
  }

  /** Organizations, keys and audit entries as the platform admin sees them, to check that a refusal wrote nothing. */
  async function footprint(address: string) {
    const organizations = ok(await server.gql(ORGANIZATIONS)).organizations;
    const keys = ok(await server.gql(KEYS, {})).apiKeys;
    const audit = ok(await server.gql(AUDIT, {})).auditLog;
    return {
      organizations: organizations.totalCount as number,
      named: (organizations.nodes as Array<{ name: string }>).filter((organization) => organization.name === address).length,
      keys: keys.totalCount as number,
      audit: audit.totalCount as number,
      newestAudit: (audit.nodes[0]?.id ?? null) as string | null,
    };
  }

  describe('walletChallenge', () => {
    it('answers without a key: a token and a message naming the checksummed address, the domain, a nonce and a 5-minute expiry', async () => {
      const account = newAccount();
      const now = server.clock.now();
      const response = await server.gql(CHALLENGE, { address: account.address }, { key: null });
      expect(response.status).toBe(200);
      const { token, message, expiresAt } = response.body.data.walletChallenge as Challenge;

      const expiry = new Date(now.getTime() + FIVE_MINUTES_MS).toISOString();
      expect(expiresAt).toBe(expiry);
      expect(token.length).toBeGreaterThanOrEqual(32);
      const lines = message.split('\n');
      expect(lines[0]).toBe(`${host} wants you to sign in with your Ethereum account:`);
      expect(lines[1]).toBe(account.address);
      expect(lines).toContain(`Domain: ${host}`);
      expect(lines).toContain(`URI: ${PUBLIC_URL}`);
      expect(lines).toContain(`Issued At: ${now.toISOString()}`);
      expect(lines).toContain(`Expiration Time: ${expiry}`);
      const nonce = lines.find((line) => line.startsWith('Nonce: '));
      expect(nonce).toMatch(/^Nonce: [0-9a-f]{16,}$/);

      const again = await challenge(account.address);
      expect(again.token).not.toBe(token);
      expect(again.message.split('\n').find((line) => line.startsWith('Nonce: '))).not.toBe(nonce);
    });

    it('accepts a lower-case address and names it checksummed in the message', async () => {
      const account = newAccount();
      expect(account.address).not.toBe(account.address.toLowerCase());
      const { message } = await challenge(account.address.toLowerCase());
      expect(message.split('\n')[1]).toBe(account.address);
      expect(message).not.toContain(account.address.toLowerCase());
    });

    it.each([['0x123'], ['hello'], ['0x' + 'g'.repeat(40)]])('refuses the malformed address %s with 400 BAD_USER_INPUT naming address', async (address) => {
      const response = await server.gql(CHALLENGE, { address }, { key: null });
      expect({ status: response.status, code: response.code }).toEqual({ status: 400, code: 'BAD_USER_INPUT' });
      expect(response.body.errors![0].message).toMatch(/^address\b/);
    });
  });

  describe('createApiKeyWithWallet', () => {
    it("creates a working INFERENCE key in a new organization named after the checksummed address, with REQUESTS/MONTH 10000", async () => {
      const account = newAccount();
      const created = await walletKey(account, { name: 'laptop' });
      expect(created.secret).toMatch(/^kw_live_[0-9A-Za-z]{38}$/);
      expect(created.apiKey).toMatchObject({ name: 'laptop', environment: 'LIVE', status: 'ACTIVE', scopes: ['inference:*', 'usage:read'] });
      expect(created.apiKey.id).toMatch(/^key_/);

      const viewer = ok(await server.gql(VIEWER, {}, { key: created.secret })).viewer;
      expect(viewer.apiKey).toEqual({ id: created.apiKey.id, organizationId: created.apiKey.organizationId, scopes: ['inference:*', 'usage:read'], environment: 'LIVE' });
      expect(viewer.organization).toEqual({ id: created.apiKey.organizationId, name: account.address, quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 10000 }] });

      const organization = ok(await server.gql(ORGANIZATION, { id: created.apiKey.organizationId })).organization;
      expect(organization).toMatchObject({ name: account.address, status: 'ACTIVE' });
      expect(organization.quotas).toEqual([expect.objectContaining({ organizationId: organization.id, apiKeyId: null, meter: 'REQUESTS', period: 'MONTH', limit: 10000 })]);
    });

    it('accepts the lower-case address and names the organization after the checksummed one', async () => {
      const account = newAccount();
      const { token, message } = await challenge(account.address.toLowerCase());
      const signature = await account.signMessage({ message });
      const created = ok(await create({ address: account.address.toLowerCase(), signature, token })).createApiKeyWithWallet;
      const organization = ok(await server.gql(ORGANIZATION, { id: created.apiKey.organizationId })).organization;
      expect(organization.name).toBe(account.address);
    });

    it('gives a kw_test_ key for environment TEST, with the preset asked for', async () => {
      const created = await walletKey(newAccount(), { environment: 'TEST', preset: 'INFERENCE' });
      expect(created.secret).toMatch(/^kw_test_[0-9A-Za-z]{38}$/);
      expect(created.apiKey.environment).toBe('TEST');
      expect(created.apiKey.scopes).toEqual(['inference:*', 'usage:read']);
      expect(ok(await server.gql(VIEWER, {}, { key: created.secret })).viewer.apiKey.id).toBe(created.apiKey.id);
    });

    it("puts a second key of the same wallet (new challenge) in the wallet's organization", async () => {
      const account = newAccount();
      const first = await walletKey(account, { name: 'first' });
      const second = await walletKey(account, { name: 'second' });
      expect(second.apiKey.organizationId).toBe(first.apiKey.organizationId);
      expect(second.apiKey.id).not.toBe(first.apiKey.id);
      expect(second.secret).not.toBe(first.secret);

      const keys = ok(await server.gql(KEYS, { organizationId: first.apiKey.organizationId })).apiKeys;
      expect(keys.nodes.map((key: { name: string }) => key.name)).toEqual(['second', 'first']);
      expect((await footprint(account.address)).named).toBe(1);
    });

    it('keeps the wallets of different addresses in different organizations', async () => {
      const a = await walletKey(newAccount());
      const b = await walletKey(newAccount());
      expect(a.apiKey.organizationId).not.toBe(b.apiKey.organizationId);
    });

    it('writes wallet.key_create, api_key.create and organization.create audit entries with actorKeyId null, and no secret', async () => {
      const account = newAccount();
      const first = await walletKey(account);
      const organizationId = first.apiKey.organizationId as string;
      const entries = ok(await server.gql(AUDIT, { organizationId })).auditLog.nodes as Array<Record<string, any>>;
      expect(entries.map((entry) => [entry.action, entry.targetType, entry.targetId, entry.actorKeyId, entry.organizationId])).toEqual([
        ['wallet.key_create', 'api_key', first.apiKey.id, null, organizationId],
        ['api_key.create', 'api_key', first.apiKey.id, null, organizationId],
        ['organization.create', 'organization', organizationId, null, organizationId],
      ]);
      for (const entry of entries) expect(LOCALHOST).toContain(entry.ip);
      expect(entries[0].metadata).toEqual({ address: account.address, preset: 'INFERENCE', hint: first.apiKey.hint });
      expect(JSON.stringify(entries)).not.toContain(first.secret);

      const second = await walletKey(account);
      const after = ok(await server.gql(AUDIT, { organizationId })).auditLog.nodes as Array<Record<string, any>>;
      expect(after.slice(0, 2).map((entry) => [entry.action, entry.targetId, entry.actorKeyId])).toEqual([
        ['wallet.key_create', second.apiKey.id, null],
        ['api_key.create', second.apiKey.id, null],
      ]);
      expect(after).toHaveLength(5);
    });

    describe('refusals: 400 BAD_USER_INPUT naming the field, nothing written', () => {
      /** Sends `input` and checks the refusal and that no organization, key or audit entry appeared. */
      async function expectRefused(address: string, input: Record<string, unknown>, field: string): Promise<void> {
        const before = await footprint(address);
        expectBadInput(await create(input), new RegExp(`^${field}\\b`));
        expect(await footprint(address)).toEqual(before);
      }

      it('refuses a token that was already used', async () => {
        const account = newAccount();
        const { token, message } = await challenge(account.address);
        const signature = await account.signMessage({ message });
        ok(await create({ address: account.address, signature, token }));
        await expectRefused(account.address, { address: account.address, signature, token }, 'token');
      });

      it('refuses a token after its 5 minutes', async () => {
        const account = newAccount();
        const { token, message } = await challenge(account.address);
        const signature = await account.signMessage({ message });
        server.clock.advance(FIVE_MINUTES_MS + 1);
        try {
          await expectRefused(account.address, { address: account.address, signature, token }, 'token');
        } finally {
          server.clock.advance(-(FIVE_MINUTES_MS + 1));
        }
      });

      it('refuses a token that was never issued', async () => {
        const account = newAccount();
        const { message } = await challenge(account.address);
        const signature = await account.signMessage({ message });
        await expectRefused(account.address, { address: account.address, signature, token: 'not-a-token-0123456789abcdefghijklmnop' }, 'token');
      });

      it('refuses a signature made by another account', async () => {
        const account = newAccount();
        const { token, message } = await challenge(account.address);
        const signature = await newAccount().signMessage({ message });
        await expectRefused(account.address, { address: account.address, signature, token }, 'signature');
      });

      it('refuses a signature over another message', async () => {
        const account = newAccount();
        const { token, message } = await challenge(account.address);
        const signature = await account.signMessage({ message: message.replace(/Nonce: [0-9a-f]+/, 'Nonce: 00000000000000000000') });
        await expectRefused(account.address, { address: account.address, signature, token }, 'signature');
      });

      it('refuses a token issued for another address', async () => {
        const victim = newAccount();
        const attacker = newAccount();
        const { token, message } = await challenge(victim.address);
        const signature = await attacker.signMessage({ message });
        await expectRefused(attacker.address, { address: attacker.address, signature, token }, 'address');
        expect((await footprint(victim.address)).named).toBe(0);
      });

      it.each([['0x123'], ['hello']])('refuses the malformed address %s', async (address) => {
        const account = newAccount();
        const { token, message } = await challenge(account.address);
        const signature = await account.signMessage({ message });
        await expectRefused(account.address, { address, signature, token }, 'address');
      });

      it.each([
        ['too short', '0xdeadbeef'],
        ['not hex', 'not-a-signature'],
        ['65 bytes without 0x', 'ab'.repeat(66)],
        ['65 bytes that are no signature', '0x' + '11'.repeat(65)],
      ])('refuses a malformed signature (%s)', async (_what, signature) => {
        const account = newAccount();
        const { token } = await challenge(account.address);
        await expectRefused(account.address, { address: account.address, signature, token }, 'signature');
      });

      it('refuses an empty name', async () => {
        const account = newAccount();
        const { token, message } = await challenge(account.address);
        const signature = await account.signMessage({ message });
        await expectRefused(account.address, { address: account.address, signature, token, name: '  ' }, 'name');
      });
    });
  });

  describe('public rate limit', () => {
    let limited: TestServer;
    beforeAll(async () => { limited = await startTestServer(); });
    afterAll(async () => { await limited.close(); });

    it('refuses the 31st anonymous public call in a minute from one IP with 429 RATE_LIMITED and Retry-After; calls with a key are not limited this way', async () => {
      const address = newAccount().address;
      for (let i = 1; i <= 30; i++) {
        const response = await limited.gql(CHALLENGE, { address }, { key: null });
        expect({ call: i, status: response.status }).toEqual({ call: i, status: 200 });
      }
      const refused = await limited.gql(CHALLENGE, { address }, { key: null });
      expect({ status: refused.status, code: refused.code }).toEqual({ status: 429, code: 'RATE_LIMITED' });
      // The 30 calls came at one instant of the test clock: the first frees up a minute later.
      expect(refused.headers.get('retry-after')).toBe('60');

      // createApiKeyWithWallet shares the allowance; nothing is looked at before the limit.
      const mutation = await limited.gql(CREATE, { input: { address, signature: '0x', token: 'x', name: 'n' } }, { key: null });
      expect({ status: mutation.status, code: mutation.code }).toEqual({ status: 429, code: 'RATE_LIMITED' });

      // With a key, the call is metered by the key's own limits, not by the public allowance.
      const withKey = await limited.gql(CHALLENGE, { address }, { key: limited.adminKey });
      expect(withKey.status).toBe(200);
      expect(withKey.body.data.walletChallenge.message).toContain(address);

      // A minute after the 30 calls, they have all left the window.
      limited.clock.advance(59_999);
      expect((await limited.gql(CHALLENGE, { address }, { key: null })).status).toBe(429);
      limited.clock.advance(1);
      expect((await limited.gql(CHALLENGE, { address }, { key: null })).status).toBe(200);
    });
  });
});
