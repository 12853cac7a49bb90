import { Field, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { ApiKeyStatus, KeyEnvironment } from './api-key.entity';
import { ScopePreset } from '../auth/scopes';
import { PageOf } from '../page.type';
import { JSONObjectScalar, SafeIntScalar } from '../scalars';

registerEnumType(KeyEnvironment, { name: 'KeyEnvironment' });
registerEnumType(ApiKeyStatus, { name: 'ApiKeyStatus' });
registerEnumType(ScopePreset, {
  name: 'ScopePreset',
  description: "Named bundles of scopes (seed systems' READ/WRITE/ADMIN and INFERENCE/ADMIN key types).",
});

@ObjectType()
export class RateLimit {
  @Field({ description: 'Unique per key, e.g. "per-minute".' })
  name!: string;

  @Field(() => Int)
  limit!: number;

  @Field(() => Int)
  windowSeconds!: number;
}

/** Resolved from ApiKeyEntity; `status` and `quotas` come from ApiKeyResolver. */
@ObjectType()
export class ApiKey {
  @Field(() => ID)
  id!: string;

  @Field(() => ID)
  organizationId!: string;

  @Field()
  name!: string;

  @Field(() => KeyEnvironment)
  environment!: KeyEnvironment;

  @Field({ description: 'Safe to show: prefix and the last 4 characters, e.g. kw_live_…9fQa.' })
  hint!: string;

  @Field(() => [String])
  scopes!: string[];

  @Field(() => [String], { description: 'CIDR blocks; empty means any address.' })
  ipAllowlist!: string[];

  @Field(() => [RateLimit])
  rateLimits!: RateLimit[];

  @Field(() => Int, { nullable: true, description: 'Largest cost one verification may ask for; null means no cap.' })
  maxCostPerRequest!: number | null;

  @Field(() => JSONObjectScalar, { nullable: true })
  meta!: Record<string, unknown> | null;

  @Field(() => String, { nullable: true })
  ownerEmail!: string | null;

  @Field(() => String, { nullable: true })
  externalId!: string | null;

  @Field(() => Date, { nullable: true })
  expiresAt!: Date | null;

  @Field(() => Date, { nullable: true })
  revokedAt!: Date | null;

  @Field(() => String, { nullable: true })
  revokedReason!: string | null;

  @Field(() => ID, { nullable: true, description: 'Id of the key that revoked it.' })
  revokedBy!: string | null;

  @Field(() => ID, { nullable: true, description: 'Set on a key made by rotateApiKey: the key it replaced.' })
  rotatedFromId!: string | null;

  @Field(() => Date, { nullable: true })
  lastUsedAt!: Date | null;

  @Field(() => SafeIntScalar)
  requestCount!: number;

  @Field()
  createdAt!: Date;
}

@ObjectType()
export class ApiKeyPage extends PageOf(ApiKey) {}

@ObjectType({ description: 'The secret is returned once, here, and is never stored or shown again.' })
export class CreatedApiKey {
  @Field(() => ApiKey)
  apiKey!: ApiKey;

  @Field()
  secret!: string;
}

@ObjectType()
export class RotatedApiKey {
  @Field(() => ApiKey)
  apiKey!: ApiKey;

  @Field()
  secret!: string;

  @Field({ description: 'When the old secret stops working.' })
  previousKeyExpiresAt!: Date;
}
