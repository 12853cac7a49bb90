import { Field, Float, ObjectType } from 'type-graphql';
import { QuotaStatus } from '../quotas/quota.type';
import { Session } from '../sessions/session.type';
import { SafeIntScalar } from '../scalars';
import { VerifyCode } from '../auth/verify-code';

@ObjectType()
export class UsageRecorded {
  @Field({ description: 'False when this idempotencyKey was already recorded: nothing was counted twice.' })
  recorded!: boolean;

  @Field(() => [QuotaStatus])
  quotas!: QuotaStatus[];

  @Field(() => Session, { nullable: true })
  session!: Session | null;
}

/** Requests, errors, tokens, cost and mean latency of some usage. */
@ObjectType()
abstract class UsageTotals {
  @Field(() => SafeIntScalar)
  requests!: number;

  @Field(() => SafeIntScalar)
  errors!: number;

  @Field(() => SafeIntScalar)
  tokens!: number;

  @Field(() => Float)
  costUsd!: number;

  @Field(() => Float, { nullable: true })
  avgLatencyMs!: number | null;
}

@ObjectType()
export class UsageBucket extends UsageTotals {
  @Field({ description: "Operation name, key id, ISO day or the hour's start (e.g. 2025-06-01T13:00:00.000Z), depending on the breakdown." })
  key!: string;
}

@ObjectType({ description: 'How many verifyKey calls ended with one code.' })
export class OutcomeCount {
  @Field(() => VerifyCode)
  code!: VerifyCode;

  @Field(() => SafeIntScalar)
  count!: number;
}

@ObjectType()
export class UsageSummary extends UsageTotals {
  @Field()
  from!: Date;

  @Field()
  to!: Date;

  @Field(() => [UsageBucket])
  byOperation!: UsageBucket[];

  @Field(() => [UsageBucket])
  byApiKey!: UsageBucket[];

  @Field(() => [UsageBucket])
  byDay!: UsageBucket[];

  @Field(() => [UsageBucket], { description: 'Per UTC hour with usage, keyed by the hour\'s start; exact at the ends of the range like the totals.' })
  byHour!: UsageBucket[];

  @Field(() => [OutcomeCount], {
    description: 'verifyKey outcomes (VALID and each refusal code, none with 0), counted per UTC hour: every hour the range touches counts whole. '
      + "A refusal naming no key (NOT_FOUND) belongs to the verifying caller's organization; with apiKeyId only that key's outcomes count.",
  })
  byOutcome!: OutcomeCount[];
}
