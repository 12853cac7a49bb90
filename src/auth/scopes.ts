/**
 * Scopes are `resource:action` strings; `*` holds everything and `resource:*` holds every
 * action of one resource. Scopes are organization-bound: `*` on a customer organization's key
 * means every scope inside that organization (platform-defined ones such as `inference:run`
 * included) but never a `platform:` scope, which exists only in the platform organization.
 * These rules are part of the public contract (docs/authorization.md, README "Who may do what").
 */

export const PLATFORM_ADMIN = 'platform:admin';

/** Built-in resources; any other resource (e.g. `inference:run`) is the platform's own. */
export const BUILT_IN_RESOURCES = ['platform', 'org', 'keys', 'usage', 'sessions', 'audit', 'webhooks'] as const;

export enum ScopePreset {
  READ = 'READ',
  WRITE = 'WRITE',
  ADMIN = 'ADMIN',
  INFERENCE = 'INFERENCE',
}

const READ_SCOPES = ['org:read', 'keys:read', 'usage:read', 'sessions:read', 'audit:read', 'webhooks:read'];

export const PRESET_SCOPES: Record<ScopePreset, readonly string[]> = {
  [ScopePreset.READ]: READ_SCOPES,
  [ScopePreset.WRITE]: [...READ_SCOPES, 'org:write', 'keys:write', 'usage:write', 'sessions:write', 'webhooks:write'],
  // `*` within its organization: never platform:* outside the platform organization.
  [ScopePreset.ADMIN]: ['*'],
  [ScopePreset.INFERENCE]: ['inference:*', 'usage:read'],
};

const SCOPE_PATTERN = /^(\*|[a-z][a-z0-9_.-]{0,49}:(\*|[a-z][a-z0-9_.-]{0,49}))$/;

export function isValidScope(scope: string): boolean {
  return SCOPE_PATTERN.test(scope);
}

/** Does one held scope cover one required (or granted) scope? */
export function scopeCovers(held: string, required: string): boolean {
  if (held === '*' || held === required) return true;
  if (held.endsWith(':*')) return required.startsWith(held.slice(0, -1));
  return false;
}

/** `platform:admin`, `platform:*`: scopes that exist only in the platform organization. */
export function isPlatformScope(scope: string): boolean {
  return scope.startsWith('platform:');
}

/**
 * Does a key of an organization, holding `held`, have `required`? Outside the platform
 * organization no held scope (not even `*`) reaches a `platform:` scope.
 */
export function holdsScope(held: readonly string[], required: string, inPlatformOrganization: boolean): boolean {
  if (!inPlatformOrganization && isPlatformScope(required)) return false;
  return held.some((scope) => scopeCovers(scope, required));
}

/** `verifyKey(requiredScopes)`: every listed scope must be held. */
export function holdsAll(held: readonly string[], required: readonly string[], inPlatformOrganization: boolean): boolean {
  return required.every((scope) => holdsScope(held, scope, inPlatformOrganization));
}

/** `@requireScope(anyOf)`: one of the listed scopes is enough. */
export function holdsAny(held: readonly string[], anyOf: readonly string[], inPlatformOrganization: boolean): boolean {
  return anyOf.some((scope) => holdsScope(held, scope, inPlatformOrganization));
}

/**
 * The scopes in `granted` the holder does not cover: what an escalation attempt asks for,
 * or — with a key's scopes as `granted` — why the holder does not dominate that key.
 */
export function scopesBeyond(held: readonly string[], granted: readonly string[], inPlatformOrganization: boolean): string[] {
  return granted.filter((scope) => !holdsScope(held, scope, inPlatformOrganization));
}

/** Sorted, without duplicates. */
export function normalizeScopes(scopes: Iterable<string>): string[] {
  return [...new Set(scopes)].sort();
}
