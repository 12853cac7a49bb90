import { DataSource, EntityManager } from 'typeorm';
import { SessionEntity, SessionStatus } from './session.entity';
import { SessionCreditEntity } from './session-credit.entity';
import { OrganizationEntity } from '../organizations/organization.entity';
import { lockOrganization } from '../organizations/organization-lock';
import { Actor } from '../auth/actor';
import { assertOrganizationAccess, canAccessOrganization } from '../auth/authorization';
import { PLATFORM_ADMIN } from '../auth/scopes';
import { AuditLogService } from '../audit-log/audit-log.service';
import { Clock } from '../clock';
import { newId } from '../ids';
import { Transactions } from '../db/data-source';
import { BadUserInputError, ErrorCode, InsufficientScopeError, KeywardError, NotFoundError } from '../errors';
import { Page, pageRequest, toPage } from '../pagination';
import { requireInt, requireText } from '../validation';

export const SESSION_DEFAULTS = {
  tokenLimit: 100_000,
  ttlSeconds: 24 * 3600,
  maxTokenLimit: 1_000_000_000_000,
  minTtlSeconds: 60,
  maxTtlSeconds: 30 * 24 * 3600,
  maxCreditsPerCall: 1_000_000,
} as const;

export interface SessionBalance {
  organizationId: string;
  available: number;
  purchased: number;
  used: number;
}

export function balanceOf(organization: OrganizationEntity): SessionBalance {
  return {
    organizationId: organization.id,
    available: organization.sessionsPurchased - organization.sessionsUsed,
    purchased: organization.sessionsPurchased,
    used: organization.sessionsUsed,
  };
}

/** Who hears of sessions that changed (live subscribers). */
export interface SessionEvents {
  session(session: SessionEntity): void;
}

/** Who must hear of a session used up, inside the transaction that used it up (the webhook outbox). */
export interface SessionAlerts {
  sessionExhausted(tx: EntityManager, session: SessionEntity): Promise<void>;
}

/** What SessionService is built from (app.ts wires it). */
export interface SessionServiceDependencies {
  dataSource: DataSource;
  transactions: Transactions;
  audit: AuditLogService;
  clock: Clock;
  priceUsd: number;
  events: SessionEvents;
  alerts: SessionAlerts;
}

/**
 * Pay-per-session metering: organizations buy sessions (addSessionCredits), a key starts one
 * (createSession) with a token budget and a lifetime; usage charges it until it is EXHAUSTED,
 * EXPIRED (observed lazily and by `sweep`) or TERMINATED. One ACTIVE session per organization.
 */
export class SessionService {
  constructor(private readonly deps: SessionServiceDependencies) {}

  /** The organization's ACTIVE session, after expiring it if its time is up. */
  async active(organizationId: string, manager: EntityManager = this.deps.dataSource.manager): Promise<SessionEntity | null> {
    const session = await manager.getRepository(SessionEntity).findOneBy({ organizationId, status: SessionStatus.ACTIVE });
    if (!session) return null;
    const observed = await this.observeExpiry(session, manager);
    return observed.status === SessionStatus.ACTIVE ? observed : null;
  }

  async get(actor: Actor, id: string): Promise<SessionEntity> {
    const session = await this.deps.dataSource.getRepository(SessionEntity).findOneBy({ id });
    if (!session || !canAccessOrganization(actor, session.organizationId)) throw new NotFoundError('Session');
    return this.observeExpiry(session);
  }

  /** Sessions of the caller's organization (every organization's for platform admins), newest first. */
  async list(actor: Actor, status: SessionStatus | null | undefined, first?: number | null, after?: string | null): Promise<Page<SessionEntity>> {
    const request = pageRequest(first, after);
    await this.sweep();
    const query = this.deps.dataSource.getRepository(SessionEntity).createQueryBuilder('s');
    if (!actor.isPlatformAdmin) query.andWhere('s.organization_id = :organizationId', { organizationId: actor.organizationId });
    if (status) query.andWhere('s.status = :status', { status });
    const totalCount = await query.clone().getCount();
    if (request.afterId) query.andWhere('s.id < :after', { after: request.afterId });
    const rows = await query.orderBy('s.id', 'DESC').limit(request.first + 1).getMany();
    return toPage(rows, request, totalCount);
  }

  async balance(actor: Actor, organizationId?: string | null): Promise<SessionBalance> {
    const target = organizationId ?? actor.organizationId;
    if (!target) throw new BadUserInputError('organizationId', 'is required');
    assertOrganizationAccess(actor, target);
    const organization = await this.deps.dataSource.getRepository(OrganizationEntity).findOneBy({ id: target });
    if (!organization) throw new NotFoundError('Organization');
    return balanceOf(organization);
  }

  /** The payment hook. The same idempotency key with the same count adds once; with another count it is refused. */
  async addCredits(actor: Actor, input: { organizationId: string; sessions: number; idempotencyKey: string }): Promise<SessionBalance> {
    if (!actor.isPlatformAdmin) throw new InsufficientScopeError(`Crediting sessions needs ${PLATFORM_ADMIN}`);
    const sessions = requireInt('sessions', input.sessions, 1, SESSION_DEFAULTS.maxCreditsPerCall);
    const idempotencyKey = requireText('idempotencyKey', input.idempotencyKey, 200);
    return this.deps.transactions.run(async (tx) => {
      const organization = await lockOrganization(tx, input.organizationId);
      const previous = await tx.getRepository(SessionCreditEntity).findOneBy({ organizationId: organization.id, idempotencyKey });
      if (previous) {
        if (previous.sessions !== sessions) {
          throw new KeywardError(ErrorCode.IDEMPOTENCY_CONFLICT, `idempotencyKey "${idempotencyKey}" was already used to add ${previous.sessions} sessions, not ${sessions}`);
        }
        return balanceOf(organization);
      }
      const now = this.deps.clock.now();
      await tx.insert(SessionCreditEntity, { id: newId('ses', now), organizationId: organization.id, sessions, idempotencyKey, actorKeyId: actor.keyId, createdAt: now });
      organization.sessionsPurchased += sessions;
      organization.updatedAt = now;
      await tx.update(OrganizationEntity, { id: organization.id }, { sessionsPurchased: organization.sessionsPurchased, updatedAt: now });
      await this.deps.audit.record(tx, actor, {
        action: 'session_credits.add', targetType: 'organization', targetId: organization.id, organizationId: organization.id,
        metadata: { sessions, idempotencyKey },
      });
      return balanceOf(organization);
    });
  }

  /** Spends one session of the caller's organization on a new ACTIVE session for the calling key. */
  async create(actor: Actor, input: { tokenLimit?: number | null; ttlSeconds?: number | null } = {}): Promise<SessionEntity> {
    const session = await this.open(actor, input);
    this.deps.events.session(session);
    return session;
  }

  private async open(actor: Actor, input: { tokenLimit?: number | null; ttlSeconds?: number | null }): Promise<SessionEntity> {
    if (!actor.keyId || !actor.organizationId) throw new BadUserInputError('apiKey', 'a session belongs to an API key');
    const tokenLimit = input.tokenLimit == null ? SESSION_DEFAULTS.tokenLimit : requireInt('tokenLimit', input.tokenLimit, 1, SESSION_DEFAULTS.maxTokenLimit);
    const ttlSeconds = input.ttlSeconds == null ? SESSION_DEFAULTS.ttlSeconds
      : requireInt('ttlSeconds', input.ttlSeconds, SESSION_DEFAULTS.minTtlSeconds, SESSION_DEFAULTS.maxTtlSeconds);
    const organizationId = actor.organizationId;
    const keyId = actor.keyId;
    return this.deps.transactions.run(async (tx) => {
      const organization = await lockOrganization(tx, organizationId);
      const current = await this.active(organizationId, tx);
      if (current) {
        throw new KeywardError(ErrorCode.SESSION_ALREADY_ACTIVE, `The organization already has an active session (${current.id}); terminate it or wait until it ends`);
      }
      if (organization.sessionsPurchased - organization.sessionsUsed <= 0) {
        throw new KeywardError(ErrorCode.SESSION_BALANCE_EMPTY, 'The organization has no sessions left to start; buy more (addSessionCredits)');
      }
      const now = this.deps.clock.now();
      const session = tx.getRepository(SessionEntity).create({
        id: newId('ses', now),
        organizationId,
        apiKeyId: keyId,
        status: SessionStatus.ACTIVE,
        tokenLimit,
        tokensUsed: 0,
        requestCount: 0,
        priceUsd: this.deps.priceUsd,
        startedAt: now,
        expiresAt: new Date(now.getTime() + ttlSeconds * 1000),
        endedAt: null,
      });
      await tx.insert(SessionEntity, session);
      await tx.update(OrganizationEntity, { id: organizationId }, { sessionsUsed: organization.sessionsUsed + 1, updatedAt: now });
      await this.deps.audit.record(tx, actor, {
        action: 'session.create', targetType: 'session', targetId: session.id, organizationId,
        metadata: { tokenLimit, ttlSeconds, priceUsd: this.deps.priceUsd },
      });
      return session;
    });
  }

  async terminate(actor: Actor, id: string): Promise<SessionEntity> {
    const session = await this.end(actor, id);
    this.deps.events.session(session);
    return session;
  }

  private async end(actor: Actor, id: string): Promise<SessionEntity> {
    const found = await this.deps.dataSource.getRepository(SessionEntity).findOneBy({ id });
    if (!found || !canAccessOrganization(actor, found.organizationId)) throw new NotFoundError('Session');
    // Observed outside the transaction below, so an expiry seen here is kept even though we refuse.
    const observed = await this.observeExpiry(found);
    if (observed.status !== SessionStatus.ACTIVE) throw new BadUserInputError('id', `the session already ended (${observed.status})`);
    return this.deps.transactions.run(async (tx) => {
      const session = await tx.getRepository(SessionEntity).findOneByOrFail({ id });
      if (session.status !== SessionStatus.ACTIVE) throw new BadUserInputError('id', `the session already ended (${session.status})`);
      const now = this.deps.clock.now();
      session.status = SessionStatus.TERMINATED;
      session.endedAt = now;
      await tx.update(SessionEntity, { id }, { status: session.status, endedAt: now });
      await this.deps.audit.record(tx, actor, { action: 'session.terminate', targetType: 'session', targetId: id, organizationId: session.organizationId });
      return session;
    });
  }

  /**
   * Charges a session for recorded usage, inside the caller's transaction. Refuses a session
   * that is not ACTIVE; marks it EXHAUSTED when the budget is reached.
   */
  async charge(tx: EntityManager, session: SessionEntity, tokens: number): Promise<SessionEntity> {
    const current = await this.observeExpiry(session, tx);
    if (current.status !== SessionStatus.ACTIVE) {
      throw new KeywardError(ErrorCode.NO_ACTIVE_SESSION, `Session ${session.id} is ${current.status}, not ACTIVE`);
    }
    const now = this.deps.clock.now();
    current.tokensUsed += tokens;
    current.requestCount += 1;
    if (current.tokensUsed >= current.tokenLimit) {
      current.status = SessionStatus.EXHAUSTED;
      current.endedAt = now;
    }
    await tx.update(SessionEntity, { id: current.id }, {
      tokensUsed: current.tokensUsed, requestCount: current.requestCount, status: current.status, endedAt: current.endedAt,
    });
    if (current.status === SessionStatus.EXHAUSTED) await this.deps.alerts.sessionExhausted(tx, current);
    return current;
  }

  /** Marks every ACTIVE session whose time is up as EXPIRED; run periodically and before listings. */
  async sweep(): Promise<number> {
    const now = this.deps.clock.now();
    const due = await this.deps.dataSource.getRepository(SessionEntity).createQueryBuilder('s')
      .where('s.status = :active AND s.expires_at <= :now', { active: SessionStatus.ACTIVE, now })
      .getMany();
    for (const session of due) await this.observeExpiry(session);
    return due.length;
  }

  private async observeExpiry(session: SessionEntity, manager: EntityManager = this.deps.dataSource.manager): Promise<SessionEntity> {
    if (session.status !== SessionStatus.ACTIVE || session.expiresAt.getTime() > this.deps.clock.now().getTime()) return session;
    session.status = SessionStatus.EXPIRED;
    session.endedAt = session.expiresAt;
    const result = await manager.update(SessionEntity, { id: session.id, status: SessionStatus.ACTIVE }, { status: session.status, endedAt: session.endedAt });
    if (result.affected) this.deps.events.session(session);
    return session;
  }

}
