import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { Organization, OrganizationPage } from './organization.type';
import { CreateOrganizationInput, UpdateOrganizationInput } from './organization.inputs';
import { OrganizationEntity, OrganizationStatus } from './organization.entity';
import { QuotaStatus } from '../quotas/quota.type';
import { RequireScope } from '../auth/directives';
import { actorOf, Context } from '../context';

@Resolver(() => Organization)
export class OrganizationResolver {
  @Query(() => Organization, { nullable: true, description: "Defaults to the caller's organization." })
  @RequireScope('org:read')
  organization(@Arg('id', () => ID, { nullable: true }) id: string | null, @Ctx() ctx: Context) {
    return ctx.app.organizations.get(actorOf(ctx), id);
  }

  @Query(() => OrganizationPage, { description: 'Every organization, newest first (the platform only).' })
  @RequireScope('platform:admin')
  organizations(
    @Arg('first', () => Int, { nullable: true, defaultValue: 50 }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: Context,
  ) {
    return ctx.app.organizations.list(actorOf(ctx), first, after);
  }

  @Mutation(() => Organization, { description: 'A customer organization with its quotas, maxKeys and keyRateLimits.' })
  @RequireScope('platform:admin')
  createOrganization(@Arg('input', () => CreateOrganizationInput) input: CreateOrganizationInput, @Ctx() ctx: Context) {
    return ctx.app.organizations.create(actorOf(ctx), input);
  }

  @Mutation(() => Organization, { description: "Renames an organization (org:write); its quotas, maxKeys and keyRateLimits are the platform's to change (platform:admin)." })
  @RequireScope('org:write')
  updateOrganization(
    @Arg('id', () => ID) id: string,
    @Arg('input', () => UpdateOrganizationInput) input: UpdateOrganizationInput,
    @Ctx() ctx: Context,
  ) {
    return ctx.app.organizations.update(actorOf(ctx), id, input);
  }

  @Mutation(() => Organization, { description: "Suspends an organization (every key refused as ORGANIZATION_SUSPENDED, sockets closed) or activates it again." })
  @RequireScope('platform:admin')
  setOrganizationStatus(
    @Arg('id', () => ID) id: string,
    @Arg('status', () => OrganizationStatus) status: OrganizationStatus,
    @Ctx() ctx: Context,
  ) {
    return ctx.app.organizations.setStatus(actorOf(ctx), id, status);
  }

  @FieldResolver(() => Int, { description: 'Metered sessions bought and not yet started.' })
  sessionBalance(@Root() organization: OrganizationEntity): number {
    return organization.sessionsPurchased - organization.sessionsUsed;
  }

  @FieldResolver(() => [QuotaStatus])
  quotas(@Root() organization: OrganizationEntity, @Ctx() ctx: Context) {
    return ctx.loaders.quotaStatuses({ organizationId: organization.id });
  }
}
