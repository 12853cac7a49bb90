import { Field, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { WebhookEventType } from './webhook-endpoint.entity';
import { WebhookDeliveryStatus } from './webhook-delivery.entity';
import { PageOf } from '../page.type';

registerEnumType(WebhookEventType, {
  name: 'WebhookEventType',
  description: 'What an endpoint subscribes to; `type` in the delivered JSON is the dotted name (quota.threshold, …).',
  valuesConfig: {
    QUOTA_THRESHOLD: { description: "A quota crossed one of the endpoint's quotaThresholds (default 80 and 100), once per quota period." },
    QUOTA_EXHAUSTED: { description: 'A request was refused with QUOTA_EXCEEDED (the first refusal of the period).' },
    RATE_LIMIT_EXHAUSTED: { description: 'A window reached 0 remaining (once per window length).' },
    SESSION_EXHAUSTED: { description: 'A session used up its token budget.' },
    KEY_EXPIRING: { description: "A key's expiresAt is within the endpoint's expiryNoticeDays (default 7); once per key." },
    KEY_REVOKED: { description: 'A key was revoked.' },
    KEY_ROTATED: { description: 'A key was rotated; data names the new key and rotatedFromId.' },
    TEST: { description: 'Sent by sendTestWebhook, whatever the endpoint subscribed to.' },
  },
});
registerEnumType(WebhookDeliveryStatus, { name: 'WebhookDeliveryStatus' });

/** Resolved from WebhookEndpointEntity; never its secret. */
@ObjectType()
export class WebhookEndpoint {
  @Field(() => ID)
  id!: string;

  @Field(() => ID)
  organizationId!: string;

  @Field()
  url!: string;

  @Field(() => String, { nullable: true })
  description!: string | null;

  @Field(() => [WebhookEventType])
  eventTypes!: WebhookEventType[];

  @Field(() => [Int], { description: 'Percentages of a quota limit (1–100); QUOTA_THRESHOLD fires once per period for each.' })
  quotaThresholds!: number[];

  @Field(() => Int, { description: 'KEY_EXPIRING fires when a key expires within this many days.' })
  expiryNoticeDays!: number;

  @Field({ description: 'False: nothing is delivered (set by hand, or after every delivery failed for 5 days); deliveries wait.' })
  enabled!: boolean;

  @Field()
  createdAt!: Date;
}

@ObjectType({ description: 'The signing secret is returned here, once, on create and rotate.' })
export class CreatedWebhookEndpoint {
  @Field(() => WebhookEndpoint)
  endpoint!: WebhookEndpoint;

  @Field({ description: 'Signing secret (whsec_…), shown once.' })
  secret!: string;
}

/** Resolved from WebhookDeliveryEntity; `payload` from WebhookResolver. */
@ObjectType()
export class WebhookDelivery {
  @Field(() => ID)
  id!: string;

  @Field(() => ID)
  endpointId!: string;

  @Field(() => ID, { description: 'Same id in the webhook-id header; stable across retries.' })
  eventId!: string;

  @Field(() => WebhookEventType)
  eventType!: WebhookEventType;

  @Field(() => WebhookDeliveryStatus)
  status!: WebhookDeliveryStatus;

  @Field(() => Int)
  attempts!: number;

  @Field(() => Int, { nullable: true, description: "HTTP status of the last attempt's answer; null when there was none." })
  lastStatusCode!: number | null;

  @Field(() => String, { nullable: true })
  lastError!: string | null;

  @Field(() => Date, { nullable: true })
  nextAttemptAt!: Date | null;

  @Field(() => Date, { nullable: true })
  deliveredAt!: Date | null;

  @Field()
  createdAt!: Date;
}

@ObjectType()
export class WebhookDeliveryPage extends PageOf(WebhookDelivery) {}
