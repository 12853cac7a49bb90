import { Field, ID, Int, ObjectType } from 'type-graphql';

@ObjectType()
export class RateLimitState {
  @Field(() => ID)
  apiKeyId!: string;

  @Field()
  name!: string;

  @Field(() => Int)
  limit!: number;

  @Field(() => Int, { description: 'After the request that was just counted.' })
  remaining!: number;

  @Field(() => Int)
  windowSeconds!: number;

  @Field()
  resetAt!: Date;
}

@ObjectType()
export class RateLimitEvent {
  @Field(() => ID)
  apiKeyId!: string;

  @Field()
  name!: string;

  @Field(() => Int)
  limit!: number;

  @Field(() => String, { nullable: true, description: 'Operation or verified request that was refused.' })
  operation!: string | null;

  @Field(() => String, { nullable: true })
  ip!: string | null;

  @Field()
  at!: Date;
}
