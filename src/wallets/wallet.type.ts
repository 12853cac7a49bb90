import { Field, InputType, ObjectType } from 'type-graphql';
import { KeyEnvironment } from '../api-keys/api-key.entity';
import { ScopePreset } from '../auth/scopes';

@ObjectType()
export class WalletChallenge {
  @Field({ description: 'Single use; pass back to createApiKeyWithWallet.' })
  token!: string;

  @Field({ description: 'Exact text the wallet signs (EIP-191 personal_sign).' })
  message!: string;

  @Field()
  expiresAt!: Date;
}

@InputType()
export class CreateApiKeyWithWalletInput {
  @Field()
  address!: string;

  @Field()
  signature!: string;

  @Field()
  token!: string;

  @Field()
  name!: string;

  @Field(() => KeyEnvironment, { nullable: true, defaultValue: KeyEnvironment.LIVE })
  environment?: KeyEnvironment | null;

  @Field(() => ScopePreset, { nullable: true, defaultValue: ScopePreset.INFERENCE })
  preset?: ScopePreset | null;
}
