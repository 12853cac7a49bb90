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

/** An invalidation passed between instances: some keys, an organization's keys, or everything. */
export interface CacheInvalidation {
  keyIds?: string[];
  organizationId?: string;
  /** Drop every entry: an instance that was cut off from Redis may have missed telling anyone. */
  all?: boolean;
}

/**
 * The verification cache of pipeline step 2, keyed by secret hash. Entries are dropped at
 * once when their key or organization changes (services call `invalidate*` after commit;
 * in scale-out mode the same calls arrive from other instances), and expire after `ttlMs`
 * as a safety net. Unknown hashes are remembered briefly (`negativeTtlMs`) so floods of
 * bad keys do not each cost a database read.
 *
 * In scale-out mode invalidations travel through Redis, so while Redis is away they may be
 * missed: the cache is then emptied and keeps entries at most `outageTtlMs` (1 s), and once Redis
 * is back it is emptied again on every instance (`invalidationsResumed`) — a key revoked
 * anywhere during an outage is refused everywhere within a second of Redis answering again.
 */
export class KeyCache {
  private readonly entries = new Map<string, { value: CachedKey | null; until: number }>();
  private readonly hashesByKey = new Map<string, string>();
  private readonly hashesByOrganization = new Map<string, Set<string>>();
  /** While invalidations may be missed, and a moment after: entries live at most outageTtlMs. */
  private shortUntil = 0;
  private missing = false;

  /** Told about every local invalidation, to pass it on to other instances (scale-out). */
  private broadcast: ((change: CacheInvalidation) => void) | null = null;

  constructor(
    private readonly options: { ttlMs: number; negativeTtlMs: number; outageTtlMs: number; maxEntries: number } = { ttlMs: 60_000, negativeTtlMs: 5_000, outageTtlMs: 1_000, maxEntries: 50_000 },
  ) {}

  broadcastTo(send: (change: CacheInvalidation) => void): void {
    this.broadcast = send;
  }

  /** An invalidation made on another instance: applied here, not passed on again. */
  applyRemote(change: CacheInvalidation): void {
    if (change.all) this.clear();
    if (change.keyIds) this.dropKeys(change.keyIds);
    if (change.organizationId) this.dropOrganization(change.organizationId);
  }

  /** Invalidations from other instances can no longer arrive (Redis is away): forget, and keep entries briefly. */
  invalidationsLost(): void {
    this.missing = true;
    this.clear();
  }

  /**
   * Invalidations arrive again: whatever was cached meanwhile is dropped here and on every other
   * instance (one of them may have been the one cut off), and entries stay short-lived a moment
   * longer, while the subscription to invalidations is re-established.
   */
  invalidationsResumed(): void {
    this.missing = false;
    this.shortUntil = Date.now() + this.options.outageTtlMs;
    this.clear();
    this.broadcast?.({ all: true });
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
    const now = Date.now();
    const ttl = value ? this.options.ttlMs : this.options.negativeTtlMs;
    const short = this.missing || now < this.shortUntil;
    this.entries.set(hash, { value, until: now + (short ? Math.min(ttl, this.options.outageTtlMs) : ttl) });
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
