import { Field, Float, ObjectType } from 'type-graphql';
import { QuotaStatus } from '../quotas/quota.type';
import { Session } from '../sessions/session.type';
import { SafeIntScalar } from '../scalars';

@ObjectType()
export class UsageRecorded {
  @Field({ description: 'False when this idempotencyKey was already recorded: nothing was counted twice.' })
  recorded!: boolean;

  @Field(() => [QuotaStatus])
  quotas!: QuotaStatus[];

  @Field(() => Session, { nullable: true })
  session!: Session | null;
}

@ObjectType()
export class UsageBucket {
  @Field({ description: 'Operation name, key id or ISO day, depending on the breakdown.' })
  key!: string;

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
export class UsageSummary {
  @Field()
  from!: Date;

  @Field()
  to!: Date;

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

  @Field(() => [UsageBucket])
  byOperation!: UsageBucket[];

  @Field(() => [UsageBucket])
  byApiKey!: UsageBucket[];

  @Field(() => [UsageBucket])
  byDay!: UsageBucket[];
}
