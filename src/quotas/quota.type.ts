import { Field, Float, ID, InputType, ObjectType, registerEnumType } from 'type-graphql';
import { Meter, QuotaPeriod } from './quota.entity';

registerEnumType(Meter, { name: 'Meter' });
registerEnumType(QuotaPeriod, { name: 'QuotaPeriod' });

@ObjectType()
export class QuotaStatus {
  @Field(() => ID, { nullable: true, description: 'Exactly one of organizationId / apiKeyId is set: who the quota belongs to.' })
  organizationId!: string | null;

  @Field(() => ID, { nullable: true })
  apiKeyId!: string | null;

  @Field(() => Meter)
  meter!: Meter;

  @Field(() => QuotaPeriod)
  period!: QuotaPeriod;

  @Field(() => Float)
  limit!: number;

  @Field(() => Float)
  used!: number;

  @Field(() => Float)
  remaining!: number;

  @Field(() => Float, { description: '0-100.' })
  percentUsed!: number;

  @Field(() => Date, { nullable: true, description: 'Null for LIFETIME.' })
  resetsAt!: Date | null;
}

@InputType({ description: 'A quota to set: what is counted, per which UTC period, up to what.' })
export class QuotaInput {
  @Field(() => Meter, { description: 'REQUESTS (verification cost), TOKENS or COST_USD (from recordUsage).' })
  meter!: Meter;

  @Field(() => QuotaPeriod, { description: 'DAY and MONTH reset at UTC boundaries; LIFETIME never.' })
  period!: QuotaPeriod;

  @Field(() => Float, { description: 'Greater than 0.' })
  limit!: number;
}
