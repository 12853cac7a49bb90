import { Ctx, Query, Resolver } from 'type-graphql';
import { Viewer } from './viewer.type';
import { Context } from '../context';
import { ErrorCode, KeywardError } from '../errors';

@Resolver(() => Viewer)
export class ViewerResolver {
  /** The calling key, its organization and scopes; needs only a valid key. */
  @Query(() => Viewer)
  viewer(@Ctx() ctx: Context) {
    if (!ctx.caller) throw new KeywardError(ErrorCode.UNAUTHENTICATED, 'viewer needs an API key');
    return { apiKey: ctx.caller.key, organization: ctx.caller.organization, scopes: ctx.caller.key.scopes };
  }
}
