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

  @Field(() => Int, { nullable: true, description: "The provider's input tokens; with outputTokens, tokens defaults to their sum and costUsd is priced from model." })
  inputTokens?: number | null;

  @Field(() => Int, { nullable: true })
  outputTokens?: number | null;

  @Field(() => String, { nullable: true, description: 'Counted with a real tokenizer (o200k_base) when tokens are absent; never stored.' })
  text?: string | null;

  @Field(() => Int, { nullable: true, description: 'When tokens and text are absent, tokens are estimated as ceil(characters / 4).' })
  characters?: number | null;

  @Field(() => Float, { nullable: true, description: 'When absent, priced from model and the tokens with MODEL_PRICES (0 without a model).' })
  costUsd?: number | null;

  @Field(() => String, { nullable: true, description: 'The model that was called: prices costUsd when it is not given (unknown model without a cost: BAD_USER_INPUT).' })
  model?: string | null;

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
