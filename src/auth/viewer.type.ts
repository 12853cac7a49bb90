import { Field, ObjectType } from 'type-graphql';
import { ApiKey } from '../api-keys/api-key.type';
import { Organization } from '../organizations/organization.type';

@ObjectType()
export class Viewer {
  @Field(() => ApiKey)
  apiKey!: ApiKey;

  @Field(() => Organization)
  organization!: Organization;

  @Field(() => [String])
  scopes!: string[];

  @Field({ description: 'The key holds platform:admin in the platform organization: it may act in every organization.' })
  isPlatformAdmin!: boolean;
}
