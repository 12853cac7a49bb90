import { Arg, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import { UsageRecorded, UsageSummary } from './usage.type';
import { RecordUsageInput, UsageRange } from './usage.inputs';
import { RequireScope } from '../auth/directives';
import { actorOf, Context } from '../context';

@Resolver()
export class UsageResolver {
  @Query(() => UsageSummary, { description: 'Requests, errors, tokens and cost over a range: totals, by operation, key, day and hour, and verification outcomes.' })
  @RequireScope('usage:read')
  usage(@Arg('range', () => UsageRange, { nullable: true }) range: UsageRange | null, @Ctx() ctx: Context) {
    return ctx.app.usage.summary(actorOf(ctx), range ?? {});
  }

  @Mutation(() => UsageRecorded, { description: 'What a request used (tokens, cost), after the fact: charges TOKENS / COST_USD quotas and the session; idempotent per idempotencyKey for 24 h.' })
  @RequireScope('usage:write')
  recordUsage(@Arg('input', () => RecordUsageInput) input: RecordUsageInput, @Ctx() ctx: Context) {
    return ctx.app.usage.record(actorOf(ctx), input);
  }
}
