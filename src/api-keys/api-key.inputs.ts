import { Field, ID, InputType, Int } from 'type-graphql';
import { ApiKeyStatus, KeyEnvironment } from './api-key.entity';
import { ScopePreset } from '../auth/scopes';
import { QuotaInput } from '../quotas/quota.type';
import { JSONObjectScalar } from '../scalars';

@InputType()
export class RateLimitInput {
  @Field()
  name!: string;

  @Field(() => Int)
  limit!: number;

  @Field(() => Int)
  windowSeconds!: number;
}

/** What a key's create and update both set (an update replaces each field given). */
@InputType()
abstract class ApiKeySettingsInput {
  @Field(() => [String], { nullable: true, description: 'Addresses or CIDR blocks allowed to use the key; empty: any.' })
  ipAllowlist?: string[] | null;

  @Field(() => [RateLimitInput], { nullable: true, description: "The key's own windows; default on create: per-minute 60 / 60 s and per-hour 1000 / 3600 s; [] means none (its organization's keyRateLimits still apply)." })
  rateLimits?: RateLimitInput[] | null;

  @Field(() => [QuotaInput], { nullable: true })
  quotas?: QuotaInput[] | null;

  @Field(() => Int, { nullable: true })
  maxCostPerRequest?: number | null;

  @Field(() => JSONObjectScalar, { nullable: true })
  meta?: Record<string, unknown> | null;

  @Field(() => String, { nullable: true })
  ownerEmail?: string | null;

  @Field(() => String, { nullable: true })
  externalId?: string | null;
}

@InputType()
export class CreateApiKeyInput extends ApiKeySettingsInput {
  @Field(() => ID, { nullable: true, description: "Defaults to the caller's organization; another organization needs platform:admin." })
  organizationId?: string | null;

  @Field()
  name!: string;

  @Field(() => KeyEnvironment, { nullable: true, defaultValue: KeyEnvironment.LIVE })
  environment?: KeyEnvironment | null;

  @Field(() => [String], { nullable: true, description: "Scopes granted; must be within the caller's own scopes." })
  scopes?: string[] | null;

  @Field(() => ScopePreset, { nullable: true })
  preset?: ScopePreset | null;

  @Field(() => Int, { nullable: true })
  expiresInDays?: number | null;

  @Field(() => Date, { nullable: true })
  expiresAt?: Date | null;

}

@InputType()
export class UpdateApiKeyInput extends ApiKeySettingsInput {
  @Field(() => String, { nullable: true })
  name?: string | null;

  @Field(() => [String], { nullable: true, description: "Replaces the scopes; still bounded by the caller's own." })
  scopes?: string[] | null;

  @Field(() => Date, { nullable: true, description: 'null clears the expiry.' })
  expiresAt?: Date | null;

}

@InputType()
export class ApiKeyFilter {
  @Field(() => ID, { nullable: true })
  organizationId?: string | null;

  @Field(() => ApiKeyStatus, { nullable: true })
  status?: ApiKeyStatus | null;

  @Field(() => KeyEnvironment, { nullable: true })
  environment?: KeyEnvironment | null;

  @Field(() => String, { nullable: true, description: 'Case-insensitive match on name, ownerEmail, externalId or hint.' })
  search?: string | null;
}
