import { Arg, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import { CreateApiKeyWithWalletInput, WalletChallenge } from './wallet.type';
import { CreatedApiKey } from '../api-keys/api-key.type';
import { Public } from '../auth/directives';
import { Context } from '../context';

@Resolver()
export class WalletResolver {
  @Query(() => WalletChallenge, { description: 'A message for the wallet to sign; valid 5 minutes, single use.' })
  @Public()
  walletChallenge(@Arg('address') address: string, @Ctx() ctx: Context) {
    return ctx.app.wallets.challenge(address);
  }

  @Mutation(() => CreatedApiKey, { description: "Creates a key in the wallet's organization (made on the first key) from a signed challenge." })
  @Public()
  createApiKeyWithWallet(@Arg('input', () => CreateApiKeyWithWalletInput) input: CreateApiKeyWithWalletInput, @Ctx() ctx: Context) {
    return ctx.app.wallets.createKey(input, ctx.ip);
  }
}
