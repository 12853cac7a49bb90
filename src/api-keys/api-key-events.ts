import type { ApiKeyEntity } from './api-key.entity';

export enum ApiKeyEventType {
  CREATED = 'CREATED',
  UPDATED = 'UPDATED',
  DISABLED = 'DISABLED',
  ENABLED = 'ENABLED',
  REVOKED = 'REVOKED',
  ROTATED = 'ROTATED',
  DELETED = 'DELETED',
}

/** Who hears of key changes once they committed (live subscribers, open sockets). */
export interface ApiKeyEvents {
  apiKey(type: ApiKeyEventType, key: ApiKeyEntity): void;
}
