import { DataSource, EntityManager } from 'typeorm';
import { AuditEntryEntity } from './audit-entry.entity';
import { Actor } from '../auth/actor';
import { Clock } from '../clock';
import { newId } from '../ids';
import { Page, pageRequest, toPage } from '../pagination';
import { assertOrganizationAccess } from '../auth/authorization';

export interface AuditRecord {
  action: string;
  targetType: string;
  targetId: string | null;
  organizationId: string | null;
  /** Never a secret. */
  metadata?: Record<string, unknown>;
}

export class AuditLogService {
  constructor(private readonly dataSource: DataSource, private readonly clock: Clock) {}

  /** Call inside the transaction that makes the change, so both land or neither does. */
  async record(manager: EntityManager, actor: Actor, record: AuditRecord): Promise<AuditEntryEntity> {
    const at = this.clock.now();
    const entry = manager.create(AuditEntryEntity, {
      id: newId('aud', at),
      organizationId: record.organizationId,
      actorKeyId: actor.keyId,
      action: record.action,
      targetType: record.targetType,
      targetId: record.targetId,
      ip: actor.ip,
      metadata: record.metadata ?? null,
      at,
    });
    await manager.insert(AuditEntryEntity, entry);
    return entry;
  }

  /** The caller's organization by default; platform admins may read any, or all when none is given. */
  async list(actor: Actor, organizationId: string | null | undefined, first?: number | null, after?: string | null): Promise<Page<AuditEntryEntity>> {
    const request = pageRequest(first, after);
    const scope = organizationId ?? (actor.isPlatformAdmin ? null : actor.organizationId);
    if (scope) assertOrganizationAccess(actor, scope);
    const query = this.dataSource.getRepository(AuditEntryEntity).createQueryBuilder('a');
    if (scope) query.where('a.organization_id = :scope', { scope });
    const totalCount = await query.clone().getCount();
    if (request.afterId) query.andWhere('a.id < :after', { after: request.afterId });
    const rows = await query.orderBy('a.id', 'DESC').limit(request.first + 1).getMany();
    return toPage(rows, request, totalCount);
  }
}
