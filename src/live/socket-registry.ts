import type { WebSocket } from 'ws';
import type { App } from '../app';
import { ApiKeyEntity, keyState } from '../api-keys/api-key.entity';
import { In } from 'typeorm';
import { OrganizationEntity, OrganizationStatus } from '../organizations/organization.entity';
import { Topic } from './topics';
import { ApiKeyEventType } from '../api-keys/api-key-events';
import { LiveCloseCode, SUBSCRIPTION_LIMITS } from './live-limits';

/** One authenticated socket. */
export interface Connection {
  socket: WebSocket;
  keyId: string;
  organizationId: string;
  expiresAt: Date | null;
}

/**
 * Which sockets belong to which key and organization, so a key that stops working has its
 * sockets closed at once (4403). Key and organization changes arrive as live events (from any
 * instance); expiry is checked on a short timer. One watch per organization, not per socket.
 */
export class SocketRegistry {
  private readonly byKey = new Map<string, Set<Connection>>();
  private readonly byOrganization = new Map<string, Set<Connection>>();
  private readonly watches = new Map<string, Array<AsyncIterator<unknown>>>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly app: App) {
    this.timer = setInterval(() => this.closeExpired(), SUBSCRIPTION_LIMITS.expiryCheckMs);
    this.timer.unref();
  }

  get size(): number {
    let count = 0;
    for (const set of this.byKey.values()) count += set.size;
    return count;
  }

  /** Sockets of `keyId` open now. */
  countOf(keyId: string): number {
    return this.byKey.get(keyId)?.size ?? 0;
  }

  add(connection: Connection): void {
    add(this.byKey, connection.keyId, connection);
    if (add(this.byOrganization, connection.organizationId, connection)) this.watch(connection.organizationId);
  }

  remove(connection: Connection): void {
    remove(this.byKey, connection.keyId, connection);
    if (remove(this.byOrganization, connection.organizationId, connection)) {
      for (const iterator of this.watches.get(connection.organizationId) ?? []) void iterator.return?.();
      this.watches.delete(connection.organizationId);
    }
  }

  closeAll(code: number, reason: string): void {
    for (const set of this.byKey.values()) for (const connection of set) connection.socket.close(code, reason);
  }

  stop(): void {
    clearInterval(this.timer);
    for (const iterators of this.watches.values()) for (const iterator of iterators) void iterator.return?.();
    this.watches.clear();
  }

  private watch(organizationId: string): void {
    const keys = this.app.pubSub.subscribe(Topic.API_KEY_CHANGED, organizationId)[Symbol.asyncIterator]();
    const organization = this.app.pubSub.subscribe(Topic.ORGANIZATION_CHANGED, organizationId)[Symbol.asyncIterator]();
    this.watches.set(organizationId, [keys, organization]);
    void (async () => {
      for (let next = await keys.next(); !next.done; next = await keys.next()) {
        const { type, apiKey } = next.value;
        const ids = type === ApiKeyEventType.ROTATED && apiKey.rotatedFromId ? [apiKey.id, apiKey.rotatedFromId] : [apiKey.id];
        await this.recheck(ids).catch((error) => this.app.logger.warn({ err: error }, 'socket recheck failed'));
      }
    })();
    void (async () => {
      for (let next = await organization.next(); !next.done; next = await organization.next()) {
        if (next.value.status !== OrganizationStatus.SUSPENDED) continue;
        for (const connection of [...(this.byOrganization.get(organizationId) ?? [])]) {
          connection.socket.close(LiveCloseCode.Forbidden, 'Forbidden: the organization was suspended');
        }
      }
    })();
  }

  /**
   * Re-reads every connected key and organization: after a Redis outage, whose key and
   * organization events may have been missed on this instance.
   */
  async recheckAll(): Promise<void> {
    await this.recheck([...this.byKey.keys()]);
    const organizationIds = [...this.byOrganization.keys()];
    if (organizationIds.length === 0) return;
    const suspended = await this.app.dataSource.getRepository(OrganizationEntity).findBy({ id: In(organizationIds), status: OrganizationStatus.SUSPENDED });
    for (const { id } of suspended) {
      for (const connection of [...(this.byOrganization.get(id) ?? [])]) connection.socket.close(LiveCloseCode.Forbidden, 'Forbidden: the organization was suspended');
    }
  }

  /** Re-reads keys that changed; closes their sockets if they no longer work, else notes the new expiry. */
  private async recheck(keyIds: string[]): Promise<void> {
    for (const keyId of keyIds) {
      const connections = this.byKey.get(keyId);
      if (!connections?.size) continue;
      const key = await this.app.dataSource.getRepository(ApiKeyEntity).findOneBy({ id: keyId });
      // Expiry is left to the timer (closeExpired), which also sees expiry moved by an update.
      const state = key ? keyState({ ...key, expiresAt: null }, this.app.clock.now()) : 'DELETED';
      for (const connection of [...connections]) {
        if (state !== 'ACTIVE') connection.socket.close(LiveCloseCode.Forbidden, `Forbidden: the API key was ${state.toLowerCase()}`);
        else connection.expiresAt = key!.expiresAt;
      }
    }
    this.closeExpired();
  }

  private closeExpired(): void {
    const now = this.app.clock.now().getTime();
    for (const set of this.byKey.values()) {
      for (const connection of set) {
        if (connection.expiresAt && connection.expiresAt.getTime() <= now) {
          connection.socket.close(LiveCloseCode.Forbidden, 'Forbidden: the API key expired');
        }
      }
    }
  }
}

function add<K, V>(map: Map<K, Set<V>>, key: K, value: V): boolean {
  let set = map.get(key);
  const created = !set;
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
  return created;
}

function remove<K, V>(map: Map<K, Set<V>>, key: K, value: V): boolean {
  const set = map.get(key);
  if (!set) return false;
  set.delete(value);
  if (set.size > 0) return false;
  map.delete(key);
  return true;
}

