import { Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { VerifyKeyResult } from '../auth/verify-key.type';

@ObjectType({ description: 'A hold of estimated tokens and dollars, until settleUsage, releaseUsage or its TTL.' })
export class UsageReservation {
  @Field(() => ID, { nullable: true, description: 'Null when the key was refused; then verify says why and nothing is held.' })
  id!: string | null;

  @Field(() => VerifyKeyResult)
  verify!: VerifyKeyResult;

  @Field(() => Int, { description: 'Tokens held (0 when refused).' })
  tokens!: number;

  @Field(() => Float, { description: 'Dollars held (0 when refused).' })
  costUsd!: number;

  @Field(() => Date, { nullable: true })
  expiresAt!: Date | null;
}
