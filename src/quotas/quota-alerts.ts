import type { EntityManager } from 'typeorm';
import type { QuotaEntity, QuotaStatus } from './quota.entity';

/**
 * What the code that moves quotas (the verification pipeline, recordUsage) tells backends
 * through the webhook outbox, which implements these above. Asking costs nothing when no
 * endpoint listens: `quotaWatcher` answers from memory, null for an organization nobody watches.
 */
export interface QuotaAlerts {
  /** Who watches `organizationId`'s quotas (its own endpoints and the platform's); null: nobody. */
  quotaWatcher(organizationId: string): Promise<QuotaWatcher | null>;
}

/** A quota that took `amount`, with its state after it. */
export interface QuotaMove {
  quota: QuotaEntity;
  status: QuotaStatus;
  amount: number;
}

export interface QuotaWatcher {
  /** Inside the transaction that moved the quotas: a QUOTA_THRESHOLD event for each threshold crossed. */
  moved(tx: EntityManager, apiKeyId: string, moves: readonly QuotaMove[]): Promise<void>;
  /**
   * After `quota` refused a request of `apiKeyId` (its transaction rolled back, so this writes on
   * its own): QUOTA_EXHAUSTED, once per quota period. Never throws.
   */
  refused(apiKeyId: string, quota: QuotaEntity): Promise<void>;
}

/** `quotas` paired with their statuses (statusesOf keeps the order), each with what it took; those that took nothing left out. */
export function quotaMoves(quotas: readonly QuotaEntity[], statuses: readonly QuotaStatus[], amountOf: (quota: QuotaEntity) => number): QuotaMove[] {
  const moves: QuotaMove[] = [];
  quotas.forEach((quota, index) => {
    const amount = amountOf(quota);
    if (amount > 0) moves.push({ quota, status: statuses[index], amount });
  });
  return moves;
}
