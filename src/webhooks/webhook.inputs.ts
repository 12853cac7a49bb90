import { Field, ID, InputType, Int } from 'type-graphql';
import { WebhookEventType } from './webhook-endpoint.entity';

@InputType()
export class CreateWebhookEndpointInput {
  @Field(() => ID, { nullable: true, description: "Defaults to the caller's organization; another organization needs platform:admin." })
  organizationId?: string | null;

  @Field({ description: 'http(s), at most 2,000 characters; private addresses only with WEBHOOK_ALLOW_PRIVATE=true.' })
  url!: string;

  @Field(() => [WebhookEventType])
  eventTypes!: WebhookEventType[];

  @Field(() => String, { nullable: true })
  description?: string | null;

  @Field(() => [Int], { nullable: true, description: 'Default [80, 100].' })
  quotaThresholds?: number[] | null;

  @Field(() => Int, { nullable: true, description: 'Default 7.' })
  expiryNoticeDays?: number | null;
}

@InputType()
export class UpdateWebhookEndpointInput {
  @Field(() => String, { nullable: true })
  url?: string | null;

  @Field(() => [WebhookEventType], { nullable: true })
  eventTypes?: WebhookEventType[] | null;

  @Field(() => String, { nullable: true, description: 'null clears it.' })
  description?: string | null;

  @Field(() => [Int], { nullable: true })
  quotaThresholds?: number[] | null;

  @Field(() => Int, { nullable: true })
  expiryNoticeDays?: number | null;

  @Field(() => Boolean, { nullable: true })
  enabled?: boolean | null;
}
