import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { CreatedWebhookEndpoint, WebhookDelivery, WebhookDeliveryPage, WebhookEndpoint } from './webhook.type';
import { CreateWebhookEndpointInput, UpdateWebhookEndpointInput } from './webhook.inputs';
import { WebhookDeliveryEntity, WebhookDeliveryStatus } from './webhook-delivery.entity';
import { RequireScope } from '../auth/directives';
import { actorOf, Context } from '../context';
import { JSONObjectScalar } from '../scalars';

@Resolver(() => WebhookEndpoint)
export class WebhookResolver {
  @Query(() => [WebhookEndpoint], { description: "Webhook endpoints of the caller's organization (every organization's for platform admins when none is given), newest first; never their secrets." })
  @RequireScope('webhooks:read')
  webhookEndpoints(@Arg('organizationId', () => ID, { nullable: true }) organizationId: string | null, @Ctx() ctx: Context) {
    return ctx.app.webhooks.list(actorOf(ctx), organizationId);
  }

  @Query(() => WebhookDeliveryPage, { description: "An endpoint's delivery log, newest first: each event's status, attempts and last answer." })
  @RequireScope('webhooks:read')
  webhookDeliveries(
    @Arg('endpointId', () => ID) endpointId: string,
    @Arg('status', () => WebhookDeliveryStatus, { nullable: true }) status: WebhookDeliveryStatus | null,
    @Arg('first', () => Int, { nullable: true, defaultValue: 50 }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: Context,
  ) {
    return ctx.app.webhooks.deliveries(actorOf(ctx), endpointId, status, first, after);
  }

  @Mutation(() => CreatedWebhookEndpoint, { description: 'A new endpoint for signed event deliveries (Standard Webhooks); its signing secret is in the answer once and never again.' })
  @RequireScope('webhooks:write')
  createWebhookEndpoint(@Arg('input', () => CreateWebhookEndpointInput) input: CreateWebhookEndpointInput, @Ctx() ctx: Context) {
    return ctx.app.webhooks.create(actorOf(ctx), input);
  }

  @Mutation(() => WebhookEndpoint, { description: "Changes an endpoint's URL, events, thresholds or notice days, or disables / enables it (enabling clears its failure streak)." })
  @RequireScope('webhooks:write')
  updateWebhookEndpoint(@Arg('id', () => ID) id: string, @Arg('input', () => UpdateWebhookEndpointInput) input: UpdateWebhookEndpointInput, @Ctx() ctx: Context) {
    return ctx.app.webhooks.update(actorOf(ctx), id, input);
  }

  @Mutation(() => Boolean, { description: 'Deletes an endpoint with its delivery log; deliveries not yet made are dropped.' })
  @RequireScope('webhooks:write')
  deleteWebhookEndpoint(@Arg('id', () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.app.webhooks.delete(actorOf(ctx), id);
  }

  @Mutation(() => CreatedWebhookEndpoint, { description: 'A new signing secret, shown once; every attempt from now on (retries included) is signed with it.' })
  @RequireScope('webhooks:write')
  rotateWebhookSecret(@Arg('id', () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.app.webhooks.rotateSecret(actorOf(ctx), id);
  }

  @Mutation(() => WebhookDelivery, { description: 'Sends a TEST event to the endpoint now; the answer is the delivery, to follow in webhookDeliveries.' })
  @RequireScope('webhooks:write')
  sendTestWebhook(@Arg('id', () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.app.webhooks.sendTest(actorOf(ctx), id);
  }

  @Mutation(() => WebhookDelivery, { description: 'Attempts a delivery again now, with the same webhook-id (one that used up its retries gets this one attempt).' })
  @RequireScope('webhooks:write')
  retryWebhookDelivery(@Arg('id', () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.app.webhooks.retry(actorOf(ctx), id);
  }
}

@Resolver(() => WebhookDelivery)
export class WebhookDeliveryResolver {
  @FieldResolver(() => JSONObjectScalar, { description: 'The JSON body, as delivered on every attempt: { type, timestamp, data }.' })
  payload(@Root() delivery: Pick<WebhookDeliveryEntity, 'payload'>): Record<string, unknown> {
    return JSON.parse(delivery.payload) as Record<string, unknown>;
  }
}
