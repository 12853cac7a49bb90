import { Field, ID, Int, ObjectType } from 'type-graphql';

@ObjectType({ description: 'One sliding window of a key, as it stands.' })
export class RateLimitState {
  @Field(() => ID)
  apiKeyId!: string;

  @Field({ description: "The window's name; `org:<name>` for a window the key's organization sets (keyRateLimits)." })
  name!: string;

  @Field(() => Int, { description: 'Units admitted in any span of windowSeconds.' })
  limit!: number;

  @Field(() => Int, { description: 'After the request that was just counted.' })
  remaining!: number;

  @Field(() => Int)
  windowSeconds!: number;

  @Field({ description: 'When the next unit frees up.' })
  resetAt!: Date;
}

@ObjectType({ description: 'A request a window refused (kept 24 hours).' })
export class RateLimitEvent {
  @Field(() => ID, { description: 'The refused key.' })
  apiKeyId!: string;

  @Field({ description: 'The window that refused it.' })
  name!: string;

  @Field(() => Int, { description: "That window's limit then." })
  limit!: number;

  @Field(() => String, { nullable: true, description: 'Operation or verified request that was refused.' })
  operation!: string | null;

  @Field(() => String, { nullable: true })
  ip!: string | null;

  @Field()
  at!: Date;
}
