/**
 * Scopes are `resource:action` strings; `*` holds everything and `resource:*` holds every
 * action of one resource. These rules are part of the public contract (DESIGN.md "Precise rules").
 */

export const PLATFORM_ADMIN = 'platform:admin';

/** Built-in resources; any other resource (e.g. `inference:run`) is the platform's own. */
export const BUILT_IN_RESOURCES = ['platform', 'org', 'keys', 'usage', 'sessions', 'audit'] as const;

export enum ScopePreset {
  READ = 'READ',
  WRITE = 'WRITE',
  ADMIN = 'ADMIN',
  INFERENCE = 'INFERENCE',
}

const READ_SCOPES = ['org:read', 'keys:read', 'usage:read', 'sessions:read', 'audit:read'];

export const PRESET_SCOPES: Record<ScopePreset, readonly string[]> = {
  [ScopePreset.READ]: READ_SCOPES,
  [ScopePreset.WRITE]: [...READ_SCOPES, 'org:write', 'keys:write', 'usage:write', 'sessions:write'],
  // Every organization-level scope; presets never include platform:*.
  [ScopePreset.ADMIN]: ['org:*', 'keys:*', 'usage:*', 'sessions:*', 'audit:*'],
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

export function holdsScope(held: readonly string[], required: string): boolean {
  return held.some((scope) => scopeCovers(scope, required));
}

/** `verifyKey(requiredScopes)`: every listed scope must be held. */
export function holdsAll(held: readonly string[], required: readonly string[]): boolean {
  return required.every((scope) => holdsScope(held, scope));
}

/** `@requireScope(anyOf)`: one of the listed scopes is enough. */
export function holdsAny(held: readonly string[], anyOf: readonly string[]): boolean {
  return anyOf.some((scope) => holdsScope(held, scope));
}

/** The granted scopes the holder does not cover: what an escalation attempt asks for. */
export function scopesBeyond(held: readonly string[], granted: readonly string[]): string[] {
  return granted.filter((scope) => !holdsScope(held, scope));
}

/** Sorted, without duplicates. */
export function normalizeScopes(scopes: Iterable<string>): string[] {
  return [...new Set(scopes)].sort();
}
