import { Arg, Ctx, ID, Query, Resolver } from 'type-graphql';
import { QuotaStatus } from './quota.type';
import { RequireScope } from '../auth/directives';
import { actorOf, Context } from '../context';
import { assertOrganizationAccess } from '../auth/authorization';

@Resolver()
export class QuotaResolver {
  @Query(() => [QuotaStatus], { description: "A key's quotas when apiKeyId is given, else an organization's (the caller's by default)." })
  @RequireScope('usage:read')
  async quotas(
    @Arg('organizationId', () => ID, { nullable: true }) organizationId: string | null,
    @Arg('apiKeyId', () => ID, { nullable: true }) apiKeyId: string | null,
    @Ctx() ctx: Context,
  ) {
    const actor = actorOf(ctx);
    if (apiKeyId) {
      const key = await ctx.app.apiKeys.get(actor, apiKeyId);
      return ctx.app.quotas.statuses({ apiKeyId: key.id });
    }
    const target = organizationId ?? actor.organizationId!;
    assertOrganizationAccess(actor, target);
    return ctx.app.quotas.statuses({ organizationId: target });
  }
}
