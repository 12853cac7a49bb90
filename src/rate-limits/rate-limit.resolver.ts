import { Arg, Ctx, ID, Int, Mutation, Query, Resolver } from 'type-graphql';
import { RateLimitEvent, RateLimitState } from './rate-limit.type';
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
