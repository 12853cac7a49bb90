import { Field, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { OrganizationStatus } from './organization.entity';
import { PageOf } from '../page.type';
import { RateLimit } from '../api-keys/api-key.type';

registerEnumType(OrganizationStatus, { name: 'OrganizationStatus' });

/** Resolved from OrganizationEntity; `quotas` and `sessionBalance` come from OrganizationResolver. */
@ObjectType()
export class Organization {
  @Field(() => ID)
  id!: string;

  @Field()
  name!: string;

  @Field()
  slug!: string;

  @Field(() => OrganizationStatus)
  status!: OrganizationStatus;

  @Field({ description: 'The platform organization (made by `keyward init`): only its keys may hold platform: scopes.' })
  isPlatform!: boolean;

  @Field(() => Int, { description: 'Most non-deleted keys the organization may hold; creating one more fails with KEY_LIMIT_EXCEEDED.' })
  maxKeys!: number;

  @Field(() => [RateLimit], { description: "Windows every key of the organization obeys on top of its own rateLimits, set by the platform; a key's refusals and rateLimitStatus name them `org:<name>`." })
  keyRateLimits!: RateLimit[];

  @Field()
  createdAt!: Date;
}

@ObjectType()
export class OrganizationPage extends PageOf(Organization) {}
