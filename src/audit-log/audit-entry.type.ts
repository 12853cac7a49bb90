import { Field, ID, ObjectType } from 'type-graphql';
import { PageOf } from '../page.type';
import { JSONObjectScalar } from '../scalars';

@ObjectType()
export class AuditEntry {
  @Field(() => ID)
  id!: string;

  @Field(() => ID, { nullable: true })
  organizationId!: string | null;

  @Field(() => ID, { nullable: true, description: "Key that acted; null for public calls and the CLI's direct bootstrap." })
  actorKeyId!: string | null;

  @Field({ description: 'Dotted verb, e.g. api_key.revoke.' })
  action!: string;

  @Field()
  targetType!: string;

  @Field(() => ID, { nullable: true })
  targetId!: string | null;

  @Field(() => String, { nullable: true })
  ip!: string | null;

  @Field(() => JSONObjectScalar, { nullable: true })
  metadata!: Record<string, unknown> | null;

  @Field()
  at!: Date;
}

@ObjectType()
export class AuditPage extends PageOf(AuditEntry) {}
