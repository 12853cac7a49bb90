import { Field, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { VerifyCode } from './verify-code';
import { KeyEnvironment } from '../api-keys/api-key.entity';
import { RateLimitState } from '../rate-limits/rate-limit.type';
import { QuotaStatus } from '../quotas/quota.type';
import { Session } from '../sessions/session.type';
import { JSONObjectScalar } from '../scalars';

registerEnumType(VerifyCode, {
  name: 'VerifyCode',
  description: 'Outcome of a key verification. Anything but VALID means: deny the request.',
  valuesConfig: { NOT_FOUND: { description: 'Unknown, malformed or checksum-invalid key.' } },
});

@ObjectType()
export class VerifyKeyResult {
  @Field()
  valid!: boolean;

  @Field(() => VerifyCode)
  code!: VerifyCode;

  @Field(() => ID, { nullable: true })
  keyId!: string | null;

  @Field(() => ID, { nullable: true })
  organizationId!: string | null;

  @Field(() => KeyEnvironment, { nullable: true })
  environment!: KeyEnvironment | null;

  @Field(() => [String], { nullable: true })
  scopes!: string[] | null;

  @Field(() => Date, { nullable: true })
  expiresAt!: Date | null;

  @Field(() => [RateLimitState], { description: 'Each window after this verification was counted.' })
  rateLimits!: RateLimitState[];

  @Field(() => [QuotaStatus])
  quotas!: QuotaStatus[];

  @Field(() => Session, { nullable: true, description: 'The active session, when requireSession was asked for.' })
  session!: Session | null;

  @Field(() => JSONObjectScalar, { nullable: true })
  meta!: Record<string, unknown> | null;
}

@InputType()
export class VerifyKeyInput {
  @Field({ description: 'The secret presented to your API.' })
  key!: string;

  @Field(() => Int, { nullable: true, defaultValue: 1, description: 'Units taken from rate limits and the REQUESTS quotas; default 1.' })
  cost?: number | null;

  @Field(() => [String], { nullable: true })
  requiredScopes?: string[] | null;

  @Field(() => String, { nullable: true, description: "Client address, checked against the key's ipAllowlist." })
  ip?: string | null;

  @Field(() => String, { nullable: true, description: 'What is being accessed, for usage breakdowns (e.g. "POST /v1/predict").' })
  operation?: string | null;

  @Field(() => Boolean, { nullable: true, defaultValue: false, description: "Refuse with NO_ACTIVE_SESSION unless the key's organization has an active session." })
  requireSession?: boolean | null;

  @Field(() => Boolean, {
    nullable: true,
    defaultValue: true,
    description: 'Record this verification as a usage event. Callers that call recordUsage for the same request afterwards (the Express middleware) pass false, so the request counts once.',
  })
  recordEvent?: boolean | null;
}
