import { Field, ID, InputType, Int } from 'type-graphql';

@InputType()
export class CreateSessionInput {
  @Field(() => Int, { nullable: true, description: 'Token budget; default 100,000.' })
  tokenLimit?: number | null;

  @Field(() => Int, { nullable: true, description: 'Lifetime in seconds; default 86,400 (24 h).' })
  ttlSeconds?: number | null;
}

@InputType()
export class AddSessionCreditsInput {
  @Field(() => ID)
  organizationId!: string;

  @Field(() => Int)
  sessions!: number;

  @Field({ description: 'Same key twice adds once.' })
  idempotencyKey!: string;
}
