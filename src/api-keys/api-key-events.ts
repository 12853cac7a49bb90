import type { EntityManager } from 'typeorm';
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

/**
 * Who must hear of a key change inside the transaction that makes it (the webhook outbox): the
 * event commits with the change or not at all.
 */
export interface ApiKeyAlerts {
  keyRevoked(tx: EntityManager, key: ApiKeyEntity): Promise<void>;
  /** `key` is the new key; `rotatedFromId` the one it replaced, whose secret works until `previousKeyExpiresAt`. */
  keyRotated(tx: EntityManager, key: ApiKeyEntity, rotatedFromId: string, previousKeyExpiresAt: Date): Promise<void>;
}
