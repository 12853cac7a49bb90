import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { RateLimitEvent, RateLimitState } from './rate-limit.type';
import { RateLimit } from '../api-keys/api-key.type';
import type { RateLimitSpec } from '../api-keys/api-key.entity';
import { Meter } from '../quotas/quota.entity';
import { RequireScope } from '../auth/directives';
import { actorOf, Context } from '../context';

@Resolver()
export class RateLimitResolver {
  @Query(() => [RateLimitState], { description: "Every window the key obeys, its own and its organization's (org:…), with what is left and when the next unit frees up." })
  @RequireScope('keys:read')
  rateLimitStatus(@Arg('apiKeyId', () => ID) apiKeyId: string, @Ctx() ctx: Context) {
    return ctx.app.rateLimits.status(actorOf(ctx), apiKeyId);
  }

  @Query(() => [RateLimitEvent], { description: 'Refused requests of the key, newest first (kept 24 hours).' })
  @RequireScope('keys:read')
  rateLimitLog(
    @Arg('apiKeyId', () => ID) apiKeyId: string,
    @Arg('first', () => Int, { nullable: true, defaultValue: 50 }) first: number | null,
    @Ctx() ctx: Context,
  ) {
    return ctx.app.rateLimits.log(actorOf(ctx), apiKeyId, first);
  }

  @Mutation(() => [RateLimitState], { description: "Starts the key's windows (all, or the one named) afresh." })
  @RequireScope('keys:write')
  resetRateLimit(
    @Arg('apiKeyId', () => ID) apiKeyId: string,
    @Arg('name', () => String, { nullable: true }) name: string | null,
    @Ctx() ctx: Context,
  ) {
    return ctx.app.rateLimits.reset(actorOf(ctx), apiKeyId, name);
  }
}

@Resolver(() => RateLimit)
export class RateLimitMeterResolver {
  /** Windows stored before meters existed count requests. */
  @FieldResolver(() => Meter, { description: 'REQUESTS (each call\'s cost) or TOKENS (tokens held by reserveUsage: a tokens-per-window limit).' })
  meter(@Root() limit: RateLimitSpec): Meter {
    return limit.meter === 'TOKENS' ? Meter.TOKENS : Meter.REQUESTS;
  }
}
