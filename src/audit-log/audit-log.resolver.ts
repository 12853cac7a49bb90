import { Arg, Ctx, ID, Int, Query, Resolver } from 'type-graphql';
import { AuditPage } from './audit-entry.type';
import { RequireScope } from '../auth/directives';
import { actorOf, Context } from '../context';

@Resolver()
export class AuditLogResolver {
  @Query(() => AuditPage, { description: "Newest first. Defaults to the caller's organization; platform admins see every organization when none is given." })
  @RequireScope('audit:read')
  auditLog(
    @Arg('organizationId', () => ID, { nullable: true }) organizationId: string | null,
    @Arg('first', () => Int, { nullable: true, defaultValue: 50 }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: Context,
  ) {
    return ctx.app.audit.list(actorOf(ctx), organizationId, first, after);
  }
}
