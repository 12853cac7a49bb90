import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { ApiKey, ApiKeyPage, CreatedApiKey, RotatedApiKey } from './api-key.type';
import { ApiKeyFilter, CreateApiKeyInput, UpdateApiKeyInput } from './api-key.inputs';
import { ApiKeyEntity, ApiKeyStatus, apiKeyStatus } from './api-key.entity';
import { QuotaStatus } from '../quotas/quota.type';
import { RequireScope } from '../auth/directives';
import { actorOf, Context } from '../context';

@Resolver(() => ApiKey)
export class ApiKeyResolver {
  @Query(() => ApiKey, { nullable: true })
  @RequireScope('keys:read')
  apiKey(@Arg('id', () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.app.apiKeys.get(actorOf(ctx), id);
  }

  @Query(() => ApiKeyPage)
  @RequireScope('keys:read')
  apiKeys(
    @Arg('filter', () => ApiKeyFilter, { nullable: true }) filter: ApiKeyFilter | null,
    @Arg('first', () => Int, { nullable: true, defaultValue: 50 }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: Context,
  ) {
    return ctx.app.apiKeys.list(actorOf(ctx), filter ?? {}, first, after);
  }

  @Mutation(() => CreatedApiKey)
  @RequireScope('keys:write')
  createApiKey(@Arg('input', () => CreateApiKeyInput) input: CreateApiKeyInput, @Ctx() ctx: Context) {
    return ctx.app.apiKeys.create(actorOf(ctx), input);
  }

  @Mutation(() => ApiKey)
  @RequireScope('keys:write')
  updateApiKey(@Arg('id', () => ID) id: string, @Arg('input', () => UpdateApiKeyInput) input: UpdateApiKeyInput, @Ctx() ctx: Context) {
    return ctx.app.apiKeys.update(actorOf(ctx), id, input);
  }

  @Mutation(() => ApiKey)
  @RequireScope('keys:write')
  setApiKeyEnabled(@Arg('id', () => ID) id: string, @Arg('enabled') enabled: boolean, @Ctx() ctx: Context) {
    return ctx.app.apiKeys.setEnabled(actorOf(ctx), id, enabled);
  }

  @Mutation(() => ApiKey)
  @RequireScope('keys:write')
  revokeApiKey(@Arg('id', () => ID) id: string, @Arg('reason') reason: string, @Ctx() ctx: Context) {
    return ctx.app.apiKeys.revoke(actorOf(ctx), id, reason);
  }

  @Mutation(() => RotatedApiKey, { description: 'New secret, same settings, counters and quotas; the old secret keeps working for the grace period.' })
  @RequireScope('keys:write')
  rotateApiKey(
    @Arg('id', () => ID) id: string,
    @Arg('gracePeriodSeconds', () => Int, { nullable: true, defaultValue: 0 }) gracePeriodSeconds: number,
    @Ctx() ctx: Context,
  ) {
    return ctx.app.apiKeys.rotate(actorOf(ctx), id, gracePeriodSeconds);
  }

  @Mutation(() => Boolean, { description: 'Soft delete: the key stops working and leaves listings; its usage history stays.' })
  @RequireScope('keys:write')
  deleteApiKey(@Arg('id', () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.app.apiKeys.delete(actorOf(ctx), id);
  }

  @FieldResolver(() => ApiKeyStatus)
  status(@Root() key: Pick<ApiKeyEntity, 'revokedAt' | 'disabled' | 'expiresAt'>, @Ctx() ctx: Context): ApiKeyStatus {
    return apiKeyStatus(key, ctx.app.clock.now());
  }

  @FieldResolver(() => [QuotaStatus])
  quotas(@Root() key: Pick<ApiKeyEntity, 'id'>, @Ctx() ctx: Context) {
    return ctx.app.quotas.statuses({ apiKeyId: key.id });
  }
}
