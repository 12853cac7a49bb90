import { Actor } from './actor';
import { isPlatformScope, PLATFORM_ADMIN, scopesBeyond } from './scopes';
import { ForbiddenError, InsufficientScopeError, NotFoundError } from '../errors';

/**
 * Who may act on WHAT. `@requireScope` decides whether a caller may call an operation at all;
 * these checks compare the caller with the object it touches, always in this order:
 *  1. superseded secret: no change to keys, webhooks or organizations  → FORBIDDEN
 *  2. tenancy: another organization's object does not exist for it     → NOT_FOUND
 *  3. dominance: acting on a key needs every scope of that key          → FORBIDDEN
 *  4. escalation: granting needs every granted scope                    → INSUFFICIENT_SCOPE
 *  5. (then the services validate the input itself                      → BAD_USER_INPUT)
 */

/** A key sees and changes only its own organization, unless it is a platform admin. */
export function canAccessOrganization(actor: Actor, organizationId: string): boolean {
  return actor.isPlatformAdmin || actor.organizationId === organizationId;
}

/** Tenancy: another tenant's organization is not revealed, not even that it exists. */
export function assertOrganizationAccess(actor: Actor, organizationId: string): void {
  if (!canAccessOrganization(actor, organizationId)) throw new NotFoundError('Organization');
}

/** A rotated-out secret, still in its grace period, makes no change to keys, webhooks or organizations. */
export function assertNotSuperseded(actor: Actor, what: string): void {
  if (actor.superseded) {
    throw new ForbiddenError(`This secret was rotated out and only works until its grace period ends; it cannot ${what}. Use the new secret`);
  }
}

/**
 * Dominance: rotating, updating, enabling/disabling, revoking, deleting or resetting a key
 * needs the caller's scopes to cover every scope of that key (a key covers itself).
 */
export function assertDominates(actor: Actor, key: { id: string; scopes: readonly string[] }, what: string): void {
  if (actor.keyId === key.id) return;
  const beyond = scopesBeyond(actor.scopes, key.scopes, actor.inPlatformOrganization);
  if (beyond.length > 0) {
    throw new ForbiddenError(`Cannot ${what} a key holding scopes the calling key does not hold (${beyond.join(', ')})`);
  }
}

/** Escalation: a caller never grants a scope it does not hold itself. */
export function assertGrantable(actor: Actor, scopes: readonly string[]): void {
  const beyond = scopesBeyond(actor.scopes, scopes, actor.inPlatformOrganization);
  if (beyond.length > 0) {
    throw new InsufficientScopeError(`Cannot grant scopes the calling key does not hold: ${beyond.join(', ')}`);
  }
}

/** Changes that only the platform may make (limits it sets for its customers, suspension, credits). */
export function assertPlatformAdmin(actor: Actor, what: string): void {
  if (!actor.isPlatformAdmin) throw new InsufficientScopeError(`${what} needs ${PLATFORM_ADMIN}`);
}

/** `platform:` scopes exist only in the platform organization. */
export function platformScopesIn(scopes: readonly string[]): string[] {
  return scopes.filter(isPlatformScope);
}
