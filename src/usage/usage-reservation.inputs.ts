import { Field, Float, ID, InputType, Int } from 'type-graphql';

@InputType()
export class ReserveUsageInput {
  @Field({ description: 'The secret presented to your API; verified exactly as verifyKey does (same pipeline, same codes).' })
  key!: string;

  @Field(() => Int, { nullable: true, defaultValue: 1, description: "Units taken from REQUESTS windows and quotas, as verifyKey's cost." })
  cost?: number | null;

  @Field(() => Int, { nullable: true, description: 'Estimates to hold against TOKENS / COST_USD quotas, tokens-per-minute windows and the active session.' })
  tokens?: number | null;

  @Field(() => Float, { nullable: true, description: 'Dollars to hold against COST_USD quotas; when absent, priced from model and tokens (MODEL_PRICES) or 0 without a model.' })
  costUsd?: number | null;

  @Field(() => String, { nullable: true, description: 'The model to be called: prices costUsd when it is not given, and the settle when it gives no cost.' })
  model?: string | null;

  @Field(() => String, { nullable: true, description: 'What is being accessed, for usage breakdowns.' })
  operation?: string | null;

  @Field(() => [String], { nullable: true })
  requiredScopes?: string[] | null;

  @Field(() => String, { nullable: true, description: "Client address, checked against the key's ipAllowlist." })
  ip?: string | null;

  @Field(() => Boolean, { nullable: true, defaultValue: false, description: "Refuse with NO_ACTIVE_SESSION unless the organization has an active session; the tokens are then held on its budget too." })
  requireSession?: boolean | null;

  @Field(() => Int, { nullable: true, defaultValue: 300, description: 'An unsettled reservation is released after this long (10–3600).' })
  ttlSeconds?: number | null;

  @Field({ description: 'Same key twice within 24 h returns the first reservation; with different amounts: IDEMPOTENCY_CONFLICT.' })
  idempotencyKey!: string;
}

@InputType()
export class SettleUsageInput {
  @Field(() => ID)
  reservationId!: string;

  @Field(() => Int, { nullable: true, description: 'Actual usage, as the model provider reported it; the hold is replaced by these.' })
  inputTokens?: number | null;

  @Field(() => Int, { nullable: true })
  outputTokens?: number | null;

  @Field(() => Int, { nullable: true, description: 'Defaults to inputTokens + outputTokens.' })
  tokens?: number | null;

  @Field(() => Float, { nullable: true, description: "Defaults to the reservation's model priced with MODEL_PRICES (0 without a model)." })
  costUsd?: number | null;

  @Field(() => Int, { nullable: true })
  statusCode?: number | null;

  @Field(() => Float, { nullable: true })
  latencyMs?: number | null;
}
