import { Ctx, FieldResolver, Query, Resolver, Root } from 'type-graphql';
import { Viewer } from './viewer.type';
import { ApiKey } from '../api-keys/api-key.type';
import { Organization } from '../organizations/organization.type';
import { Context } from '../context';
import { ErrorCode, KeywardError } from '../errors';

/** What `viewer` knows without the database: the verified caller. */
interface ViewerSource {
  keyId: string;
  organizationId: string;
  scopes: string[];
  isPlatformAdmin: boolean;
}

@Resolver(() => Viewer)
export class ViewerResolver {
  /** The calling key, its organization and scopes; needs only a valid key. */
  @Query(() => Viewer, { description: 'The calling key, its organization and scopes; needs only a valid key.' })
  viewer(@Ctx() ctx: Context): ViewerSource {
    if (!ctx.caller) throw new KeywardError(ErrorCode.UNAUTHENTICATED, 'viewer needs an API key');
    // From the verified context: `viewer { scopes }` reads nothing.
    const { actor, key } = ctx.caller;
    return { keyId: key.id, organizationId: key.organizationId, scopes: key.scopes, isPlatformAdmin: actor.isPlatformAdmin };
  }

  /** A fresh row, not the verification cache: lastUsedAt / requestCount move on. */
  @FieldResolver(() => ApiKey)
  apiKey(@Root() viewer: ViewerSource, @Ctx() ctx: Context) {
    return ctx.loaders.apiKey(viewer.keyId);
  }

  @FieldResolver(() => Organization)
  organization(@Root() viewer: ViewerSource, @Ctx() ctx: Context) {
    return ctx.loaders.organization(viewer.organizationId);
  }
}
