import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts';
import type { GraphQLResponse, TestServer } from './server';
import { uniqueName } from './fixtures';
import { ok } from './expect';
import { CreateApiKeyWithWalletDocument, CreateApiKeyWithWalletInput, CreateApiKeyWithWalletMutation, WalletChallengeDocument } from './operations';

/**
 * The wallet sign-up flow over the public API: walletChallenge, an EIP-191 signature made
 * with a viem account, createApiKeyWithWallet. Both calls are anonymous, so each spends the
 * public allowance of the client address (30 per minute).
 */

export function newWalletAccount(): PrivateKeyAccount {
  return privateKeyToAccount(generatePrivateKey());
}

/** Challenge, sign, create: the raw answer of createApiKeyWithWallet (`input` adds name, preset, environment). */
export async function signUpWithWallet(server: TestServer, account: PrivateKeyAccount, input: Partial<CreateApiKeyWithWalletInput> = {}): Promise<GraphQLResponse<CreateApiKeyWithWalletMutation>> {
  const { token, message } = ok(await server.gql(WalletChallengeDocument, { address: account.address }, { key: null })).walletChallenge;
  const signature = await account.signMessage({ message });
  return server.gql(CreateApiKeyWithWalletDocument, { input: { name: uniqueName('Wallet key'), address: account.address, signature, token, ...input } }, { key: null });
}

/** A working wallet key (default preset), or a failure showing the answer. */
export async function createWalletKey(server: TestServer, account: PrivateKeyAccount = newWalletAccount(), input: Partial<CreateApiKeyWithWalletInput> = {}): Promise<{ id: string; secret: string; organizationId: string }> {
  const created = ok(await signUpWithWallet(server, account, input)).createApiKeyWithWallet;
  return { id: created.apiKey.id, secret: created.secret, organizationId: created.apiKey.organizationId };
}
