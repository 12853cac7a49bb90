import { Actor } from './actor';
import { ForbiddenError } from '../errors';

/** A key sees and changes only its own organization, unless it is a platform admin. */
export function assertOrganizationAccess(actor: Actor, organizationId: string): void {
  if (actor.isPlatformAdmin || actor.organizationId === organizationId) return;
  throw new ForbiddenError('That organization belongs to another tenant; only platform:admin keys may cross organizations');
}

export function canAccessOrganization(actor: Actor, organizationId: string): boolean {
  return actor.isPlatformAdmin || actor.organizationId === organizationId;
}
