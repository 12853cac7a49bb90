import { Field, InputType, Int } from 'type-graphql';
import { QuotaInput } from '../quotas/quota.type';
import { RateLimitInput } from '../api-keys/api-key.inputs';

@InputType()
export class CreateOrganizationInput {
  @Field()
  name!: string;

  @Field(() => String, { nullable: true, description: 'Lower-case letters, digits and dashes; derived from the name when absent.' })
  slug?: string | null;

  @Field(() => Int, { nullable: true, description: 'Default 100.' })
  maxKeys?: number | null;

  @Field(() => [QuotaInput], { nullable: true })
  quotas?: QuotaInput[] | null;

  @Field(() => [RateLimitInput], { nullable: true, description: 'Windows every key of the organization obeys on top of its own rateLimits (reported as `org:<name>`). Default none.' })
  keyRateLimits?: RateLimitInput[] | null;
}

@InputType()
export class UpdateOrganizationInput {
  @Field(() => String, { nullable: true })
  name?: string | null;

  @Field(() => String, { nullable: true, description: 'Lower-case letters, digits and dashes; unique.' })
  slug?: string | null;

  @Field(() => Int, { nullable: true, description: 'Needs platform:admin.' })
  maxKeys?: number | null;

  @Field(() => [QuotaInput], { nullable: true, description: 'Replaces all organization quotas. Needs platform:admin.' })
  quotas?: QuotaInput[] | null;

  @Field(() => [RateLimitInput], { nullable: true, description: 'Replaces the windows every key of the organization obeys on top of its own. Needs platform:admin.' })
  keyRateLimits?: RateLimitInput[] | null;
}
