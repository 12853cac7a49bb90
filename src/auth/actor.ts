import { holdsScope, PLATFORM_ADMIN } from './scopes';

/**
 * Who is acting, as the services see it: an authenticated key, or the CLI's direct
 * bootstrap (keyId null). Services take an Actor and know nothing of HTTP or GraphQL.
 */
export interface Actor {
  keyId: string | null;
  organizationId: string | null;
  scopes: readonly string[];
  /** Holds platform:admin and belongs to the platform organization: may cross organizations. */
  isPlatformAdmin: boolean;
  /**
   * Belongs to the platform organization: with keys:verify / usage:write it may verify and
   * record usage for keys of every organization; `platform:` scopes mean something only here.
   */
  inPlatformOrganization: boolean;
  /**
   * The secret was rotated out and works only until its grace ends: it may make ordinary calls
   * but no change to keys, webhooks or organizations (a leaked secret must not outlive rotation).
   */
  superseded: boolean;
  /** Client address, for the audit log. */
  ip: string | null;
}

export function actorForKey(
  key: { id: string; organizationId: string; scopes: readonly string[]; replacedById: string | null },
  organization: { isPlatform: boolean },
  ip: string | null,
): Actor {
  return {
    keyId: key.id,
    organizationId: key.organizationId,
    scopes: key.scopes,
    // platform:admin only means something on a key of the platform organization.
    isPlatformAdmin: holdsScope(key.scopes, PLATFORM_ADMIN, organization.isPlatform),
    inPlatformOrganization: organization.isPlatform,
    superseded: key.replacedById !== null,
    ip,
  };
}

/** The CLI acting on the database directly (`keyward init`). */
export const SYSTEM_ACTOR: Actor = {
  keyId: null, organizationId: null, scopes: ['*'], isPlatformAdmin: true, inPlatformOrganization: true, superseded: false, ip: null,
};
