import 'reflect-metadata';
import { GraphQLSchema, specifiedDirectives } from 'graphql';
import { buildSchema } from 'type-graphql';
import { printSchemaWithDirectives } from '@graphql-tools/utils';
import { applyAuthDirectives, publicDirective, requireScopeDirective } from './auth/directives';
import { DateTimeScalar } from './scalars';
import { OrganizationResolver } from './organizations/organization.resolver';
import { ApiKeyResolver } from './api-keys/api-key.resolver';
import { ViewerResolver } from './auth/viewer.resolver';
import { AuditLogResolver } from './audit-log/audit-log.resolver';
import { VerifyKeyResolver } from './auth/verify-key.resolver';
import { RateLimitResolver } from './rate-limits/rate-limit.resolver';
import { QuotaResolver } from './quotas/quota.resolver';
import { SessionResolver } from './sessions/session.resolver';
import { UsageResolver } from './usage/usage.resolver';
import { LiveResolver } from './live/live.resolver';
import { WalletResolver } from './wallets/wallet.resolver';
import { WebhookDeliveryResolver, WebhookResolver } from './webhooks/webhook.resolver';

export const RESOLVERS = [
  OrganizationResolver, ApiKeyResolver, ViewerResolver, AuditLogResolver, VerifyKeyResolver,
  RateLimitResolver, QuotaResolver, SessionResolver, UsageResolver, LiveResolver, WalletResolver, WebhookResolver, WebhookDeliveryResolver,
] as const;

let built: Promise<GraphQLSchema> | null = null;

/** The executable schema, with @requireScope / @public enforced. Built once per process. */
export function buildKeywardSchema(): Promise<GraphQLSchema> {
  built ??= buildSchema({
    resolvers: RESOLVERS,
    directives: [...specifiedDirectives, requireScopeDirective, publicDirective],
    scalarsMap: [{ type: Date, scalar: DateTimeScalar }],
    validate: false,
    emitSchemaFile: false,
    // Every @Subscription brings its own `subscribe` over the app's LivePubSub (the schema is
    // shared by all apps in a process); TypeGraphQL still wants a pubSub, which must never run.
    pubSub: {
      publish: () => {
        throw new Error('keyward publishes through App.live, not TypeGraphQL');
      },
      subscribe: () => {
        throw new Error('every keyward subscription has its own subscribe function');
      },
    },
  }).then(applyAuthDirectives);
  return built;
}

/** The SDL committed as schema.graphql, applied directives included. */
export async function printKeywardSchema(): Promise<string> {
  const header = '# Generated from the resolvers by `npm run schema`; do not edit by hand.\n\n';
  return header + printSchemaWithDirectives(await buildKeywardSchema()) + '\n';
}
