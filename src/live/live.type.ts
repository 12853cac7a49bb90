import { Field, ObjectType, registerEnumType } from 'type-graphql';
import { ApiKeyEventType } from '../api-keys/api-key-events';
import { ApiKey } from '../api-keys/api-key.type';

registerEnumType(ApiKeyEventType, { name: 'ApiKeyEventType' });

@ObjectType()
export class ApiKeyEvent {
  @Field(() => ApiKeyEventType)
  type!: ApiKeyEventType;

  @Field(() => ApiKey)
  apiKey!: ApiKey;

  @Field()
  at!: Date;
}
