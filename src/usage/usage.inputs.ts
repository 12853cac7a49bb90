import { Field, Float, ID, InputType, Int } from 'type-graphql';

@InputType()
export class RecordUsageInput {
  @Field(() => ID)
  apiKeyId!: string;

  @Field(() => ID, { nullable: true, description: "Charge this session's token budget." })
  sessionId?: string | null;

  @Field()
  operation!: string;

  @Field(() => Int, { nullable: true })
  statusCode?: number | null;

  @Field(() => Float, { nullable: true })
  latencyMs?: number | null;

  @Field(() => Int, { nullable: true })
  tokens?: number | null;

  @Field(() => Int, { nullable: true, description: 'When tokens is absent, tokens are estimated as ceil(characters / 4).' })
  characters?: number | null;

  @Field(() => Float, { nullable: true })
  costUsd?: number | null;

  @Field({ description: 'Same key twice within 24 h is counted once.' })
  idempotencyKey!: string;
}

@InputType()
export class UsageRange {
  @Field(() => ID, { nullable: true })
  organizationId?: string | null;

  @Field(() => ID, { nullable: true })
  apiKeyId?: string | null;

  @Field(() => Date, { nullable: true, description: 'Defaults: start of the current calendar month (UTC) to now.' })
  from?: Date | null;

  @Field(() => Date, { nullable: true })
  to?: Date | null;
}
