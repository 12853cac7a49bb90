import { Arg, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import { UsageRecorded, UsageSummary } from './usage.type';
import { RecordUsageInput, UsageRange } from './usage.inputs';
import { RequireScope } from '../auth/directives';
import { actorOf, Context } from '../context';

@Resolver()
export class UsageResolver {
  @Query(() => UsageSummary)
  @RequireScope('usage:read')
  usage(@Arg('range', () => UsageRange, { nullable: true }) range: UsageRange | null, @Ctx() ctx: Context) {
    return ctx.app.usage.summary(actorOf(ctx), range ?? {});
  }

  @Mutation(() => UsageRecorded)
  @RequireScope('usage:write')
  recordUsage(@Arg('input', () => RecordUsageInput) input: RecordUsageInput, @Ctx() ctx: Context) {
    return ctx.app.usage.record(actorOf(ctx), input);
  }
}
