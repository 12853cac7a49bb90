import { EntityManager } from 'typeorm';
import { OrganizationEntity } from './organization.entity';
import { NotFoundError } from '../errors';

/**
 * Reads an organization inside a transaction, holding its row lock on MySQL so checks
 * against it (maxKeys, one active session, the session balance) cannot race. SQLite
 * transactions are already serialized (db/data-source.ts Transactions).
 */
export async function lockOrganization(tx: EntityManager, id: string): Promise<OrganizationEntity> {
  const query = tx.getRepository(OrganizationEntity).createQueryBuilder('o').where('o.id = :id', { id });
  if (tx.connection.options.type !== 'better-sqlite3') query.setLock('pessimistic_write');
  const organization = await query.getOne();
  if (!organization) throw new NotFoundError('Organization');
  return organization;
}
