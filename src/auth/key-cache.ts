import type { ApiKeyEntity } from '../api-keys/api-key.entity';
import type { OrganizationEntity } from '../organizations/organization.entity';
import type { QuotaEntity } from '../quotas/quota.entity';

/** What verification needs about one key, loaded once and reused until something changes. */
export interface CachedKey {
  key: ApiKeyEntity;
  organization: OrganizationEntity;
  /** Quotas of the key's lineage (they move to the newest key on rotation) and of its organization. */
  quotas: QuotaEntity[];
}

/**
 * The verification cache of pipeline step 2, keyed by secret hash. Entries are dropped at
 * once when their key or organization changes (services call `invalidate*` after commit;
 * in scale-out mode the same calls arrive from other instances), and expire after `ttlMs`
 * as a safety net. Unknown hashes are remembered briefly (`negativeTtlMs`) so floods of
 * bad keys do not each cost a database read.
 */
export class KeyCache {
  private readonly entries = new Map<string, { value: CachedKey | null; until: number }>();
  private readonly hashesByKey = new Map<string, string>();
  private readonly hashesByOrganization = new Map<string, Set<string>>();

  /** Told about every local invalidation, to pass it on to other instances (scale-out). */
  private broadcast: ((change: { keyIds?: string[]; organizationId?: string }) => void) | null = null;

  constructor(
    private readonly options: { ttlMs: number; negativeTtlMs: number; maxEntries: number } = { ttlMs: 60_000, negativeTtlMs: 5_000, maxEntries: 50_000 },
  ) {}

  broadcastTo(send: (change: { keyIds?: string[]; organizationId?: string }) => void): void {
    this.broadcast = send;
  }

  /** An invalidation made on another instance: applied here, not passed on again. */
  applyRemote(change: { keyIds?: string[]; organizationId?: string }): void {
    if (change.keyIds) this.dropKeys(change.keyIds);
    if (change.organizationId) this.dropOrganization(change.organizationId);
  }

  /** undefined: not cached; null: known not to exist. */
  get(hash: string): CachedKey | null | undefined {
    const entry = this.entries.get(hash);
    if (!entry) return undefined;
    if (entry.until < Date.now()) {
      this.drop(hash);
      return undefined;
    }
    return entry.value;
  }

  set(hash: string, value: CachedKey | null): void {
    if (this.entries.size >= this.options.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.drop(oldest);
    }
    this.entries.set(hash, { value, until: Date.now() + (value ? this.options.ttlMs : this.options.negativeTtlMs) });
    if (!value) return;
    this.hashesByKey.set(value.key.id, hash);
    let hashes = this.hashesByOrganization.get(value.organization.id);
    if (!hashes) this.hashesByOrganization.set(value.organization.id, (hashes = new Set()));
    hashes.add(hash);
  }

  invalidateKeys(keyIds: readonly string[]): void {
    this.dropKeys(keyIds);
    this.broadcast?.({ keyIds: [...keyIds] });
  }

  invalidateOrganization(organizationId: string): void {
    this.dropOrganization(organizationId);
    this.broadcast?.({ organizationId });
  }

  private dropKeys(keyIds: readonly string[]): void {
    for (const id of keyIds) {
      const hash = this.hashesByKey.get(id);
      if (hash) this.drop(hash);
    }
  }

  private dropOrganization(organizationId: string): void {
    for (const hash of [...(this.hashesByOrganization.get(organizationId) ?? [])]) this.drop(hash);
  }

  clear(): void {
    this.entries.clear();
    this.hashesByKey.clear();
    this.hashesByOrganization.clear();
  }

  private drop(hash: string): void {
    const entry = this.entries.get(hash);
    this.entries.delete(hash);
    if (!entry?.value) return;
    this.hashesByKey.delete(entry.value.key.id);
    const hashes = this.hashesByOrganization.get(entry.value.organization.id);
    hashes?.delete(hash);
    if (hashes?.size === 0) this.hashesByOrganization.delete(entry.value.organization.id);
  }
}
