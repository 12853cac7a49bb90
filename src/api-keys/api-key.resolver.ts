import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { ApiKey, ApiKeyPage, CreatedApiKey, RotatedApiKey } from './api-key.type';
import { ApiKeyFilter, CreateApiKeyInput, UpdateApiKeyInput } from './api-key.inputs';
import { ApiKeyEntity, ApiKeyStatus, apiKeyStatus } from './api-key.entity';
import { QuotaStatus } from '../quotas/quota.type';
import { RequireScope } from '../auth/directives';
import { actorOf, Context } from '../context';

@Resolver(() => ApiKey)
export class ApiKeyResolver {
  @Query(() => ApiKey, { nullable: true, description: "A key of the caller's organization (any organization's for platform admins); another organization's is NOT_FOUND." })
  @RequireScope('keys:read')
  apiKey(@Arg('id', () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.app.apiKeys.get(actorOf(ctx), id);
  }

  @Query(() => ApiKeyPage, { description: 'Keys, newest first, with filters (status, environment, case-insensitive search) and cursor pagination; never secrets.' })
  @RequireScope('keys:read')
  apiKeys(
    @Arg('filter', () => ApiKeyFilter, { nullable: true }) filter: ApiKeyFilter | null,
    @Arg('first', () => Int, { nullable: true, defaultValue: 50 }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: Context,
  ) {
    return ctx.app.apiKeys.list(actorOf(ctx), filter ?? {}, first, after);
  }

  @Mutation(() => CreatedApiKey, { description: 'A new key; its secret is in the answer once and never again. The caller may grant only scopes it holds.' })
  @RequireScope('keys:write')
  createApiKey(@Arg('input', () => CreateApiKeyInput) input: CreateApiKeyInput, @Ctx() ctx: Context) {
    return ctx.app.apiKeys.create(actorOf(ctx), input);
  }

  @Mutation(() => ApiKey, { description: "Changes a key's settings; needs the caller to hold every scope of that key (and of any scopes it grants)." })
  @RequireScope('keys:write')
  updateApiKey(@Arg('id', () => ID) id: string, @Arg('input', () => UpdateApiKeyInput) input: UpdateApiKeyInput, @Ctx() ctx: Context) {
    return ctx.app.apiKeys.update(actorOf(ctx), id, input);
  }

  @Mutation(() => ApiKey, { description: 'Disables a key (refused as DISABLED, sockets closed) or enables it again.' })
  @RequireScope('keys:write')
  setApiKeyEnabled(@Arg('id', () => ID) id: string, @Arg('enabled') enabled: boolean, @Ctx() ctx: Context) {
    return ctx.app.apiKeys.setEnabled(actorOf(ctx), id, enabled);
  }

  @Mutation(() => ApiKey, { description: 'Revokes a key for good, with a reason (refused as REVOKED from now on, on every instance).' })
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
    return ctx.loaders.quotaStatuses({ apiKeyId: key.id });
  }
}
