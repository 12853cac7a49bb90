import { Ctx, Query, Resolver } from 'type-graphql';
import { Viewer } from './viewer.type';
import { Context } from '../context';
import { ErrorCode, KeywardError } from '../errors';

@Resolver(() => Viewer)
export class ViewerResolver {
  /** The calling key, its organization and scopes; needs only a valid key. */
  @Query(() => Viewer, { description: 'The calling key, its organization and scopes; needs only a valid key.' })
  async viewer(@Ctx() ctx: Context) {
    if (!ctx.caller) throw new KeywardError(ErrorCode.UNAUTHENTICATED, 'viewer needs an API key');
    // Fresh rows, not the verification cache: lastUsedAt / requestCount move on.
    const { actor, key } = ctx.caller;
    return {
      apiKey: await ctx.app.apiKeys.get(actor, key.id),
      organization: await ctx.app.organizations.get(actor, key.organizationId),
      scopes: key.scopes,
      isPlatformAdmin: actor.isPlatformAdmin,
    };
  }
}
