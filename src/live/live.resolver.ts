import { Arg, ID, Resolver, Root, Subscription, SubscribeResolverData } from 'type-graphql';
import { ApiKeyEvent } from './live.type';
import { Topic, TopicPayloads } from './topics';
import { prepend } from './iterators';
import { QuotaStatus } from '../quotas/quota.type';
import { RateLimitState } from '../rate-limits/rate-limit.type';
import { Session } from '../sessions/session.type';
import { RequireScope } from '../auth/directives';
import { assertOrganizationAccess } from '../auth/authorization';
import { actorOf, Context } from '../context';
import { ApiKeyEvent as ApiKeyEventPayload, reviveApiKeyEvent, reviveQuotaStatus, reviveRateLimitState, reviveSession, SessionPayload } from './payloads';

type Args = Record<string, string | null | undefined>;

/** `first` (the current state), then every published event of the subject. */
const snapshotThen = prepend;

/** Every event of an organization-wide topic: the caller's organization, or one it may see. */
function organizationStream<T extends Topic.SESSION_CHANGED | Topic.API_KEY_CHANGED>(context: Context, args: Args, topic: T): AsyncIterable<TopicPayloads[T]> {
  const actor = actorOf(context);
  const organizationId = args.organizationId ?? actor.organizationId!;
  assertOrganizationAccess(actor, organizationId);
  return context.app.pubSub.subscribe(topic, organizationId);
}

/**
 * Subscriptions. Tenancy and arguments are checked when subscribing (an error then, nothing
 * streamed); scopes by @requireScope like any field. Events come from LiveEvents, computed
 * once per subject and shared by all its subscribers.
 */
@Resolver()
export class LiveResolver {
  @Subscription(() => QuotaStatus, {
    description: 'First event: every current quota of the owner; then each change (coalesced, at most ~4/s, immediately on crossing 80% and 100%).',
    subscribe: async ({ args, context }: SubscribeResolverData<unknown, Args, Context>) => {
      const { organizationId, apiKeyId } = args as Args;
      const actor = actorOf(context);
      const { app } = context;
      if (apiKeyId) {
        const key = await app.apiKeys.get(actor, apiKeyId);
        return snapshotThen(await app.quotas.statuses({ apiKeyId: key.id }), app.pubSub.subscribe(Topic.QUOTA_CHANGED, key.id));
      }
      const owner = organizationId ?? actor.organizationId!;
      assertOrganizationAccess(actor, owner);
      return snapshotThen(await app.quotas.statuses({ organizationId: owner }), app.pubSub.subscribe(Topic.QUOTA_CHANGED, owner));
    },
  })
  @RequireScope('usage:read')
  quotaChanged(
    @Root() status: TopicPayloads[Topic.QUOTA_CHANGED],
    @Arg('organizationId', () => ID, { nullable: true }) _organizationId: string | null,
    @Arg('apiKeyId', () => ID, { nullable: true }) _apiKeyId: string | null,
  ): QuotaStatus {
    return reviveQuotaStatus(status);
  }

  @Subscription(() => RateLimitState, {
    description: 'First event: current state of each limit; then each change (coalesced), immediately when a limit runs out or resets.',
    subscribe: async ({ args, context }: SubscribeResolverData<unknown, Args, Context>) => {
      const { app } = context;
      const key = await app.apiKeys.get(actorOf(context), (args as Args).apiKeyId!);
      return snapshotThen(await app.rateLimits.statesOf(key), app.pubSub.subscribe(Topic.RATE_LIMIT_CHANGED, key.id));
    },
  })
  @RequireScope('keys:read')
  rateLimitChanged(@Root() state: TopicPayloads[Topic.RATE_LIMIT_CHANGED], @Arg('apiKeyId', () => ID) _apiKeyId: string): RateLimitState {
    return reviveRateLimitState(state);
  }

  @Subscription(() => Session, {
    description: "Every change of the organization's sessions: started, charged (coalesced), exhausted, expired, terminated.",
    subscribe: ({ args, context }: SubscribeResolverData<unknown, Args, Context>) => organizationStream(context, args, Topic.SESSION_CHANGED),
  })
  @RequireScope('sessions:read')
  sessionChanged(@Root() session: SessionPayload, @Arg('organizationId', () => ID, { nullable: true }) _organizationId: string | null): SessionPayload {
    return reviveSession(session);
  }

  @Subscription(() => ApiKeyEvent, {
    description: "Every change of the organization's keys.",
    subscribe: ({ args, context }: SubscribeResolverData<unknown, Args, Context>) => organizationStream(context, args, Topic.API_KEY_CHANGED),
  })
  @RequireScope('keys:read')
  apiKeyChanged(@Root() event: TopicPayloads[Topic.API_KEY_CHANGED], @Arg('organizationId', () => ID, { nullable: true }) _organizationId: string | null): ApiKeyEventPayload {
    return reviveApiKeyEvent(event);
  }
}
