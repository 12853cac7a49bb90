import { Field, Float, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { SessionStatus } from './session.entity';
import { PageOf } from '../page.type';
import { SafeIntScalar } from '../scalars';

registerEnumType(SessionStatus, { name: 'SessionStatus' });

/** Resolved from SessionEntity; `tokensRemaining` comes from SessionResolver. */
@ObjectType()
export class Session {
  @Field(() => ID)
  id!: string;

  @Field(() => ID)
  organizationId!: string;

  @Field(() => ID)
  apiKeyId!: string;

  @Field(() => SessionStatus)
  status!: SessionStatus;

  @Field(() => SafeIntScalar)
  tokenLimit!: number;

  @Field(() => SafeIntScalar)
  tokensUsed!: number;

  @Field(() => SafeIntScalar, { description: 'What open reservations (reserveUsage with requireSession) hold; tokensRemaining = tokenLimit − tokensUsed − tokensHeld.' })
  tokensHeld!: number;

  @Field(() => Int)
  requestCount!: number;

  @Field(() => Float)
  priceUsd!: number;

  @Field()
  startedAt!: Date;

  @Field()
  expiresAt!: Date;

  @Field(() => Date, { nullable: true })
  endedAt!: Date | null;
}

@ObjectType()
export class SessionPage extends PageOf(Session) {}

@ObjectType()
export class SessionBalance {
  @Field(() => ID)
  organizationId!: string;

  @Field(() => Int, { description: 'Sessions bought and not yet started.' })
  available!: number;

  @Field(() => Int)
  purchased!: number;

  @Field(() => Int)
  used!: number;
}
