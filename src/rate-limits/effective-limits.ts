import type { RateLimitSpec } from '../api-keys/api-key.entity';

/**
 * The windows an organization imposes on each of its keys (`keyRateLimits`) are reported and
 * counted under this prefix, beside the key's own windows; key windows may not use it.
 */
export const ORGANIZATION_WINDOW_PREFIX = 'org:';

/**
 * Every window a key obeys: its own `rateLimits`, then its organization's `keyRateLimits`
 * (named `org:<name>`). All must allow a request; the key cannot lift the second kind.
 */
export function effectiveRateLimits(key: { rateLimits: readonly RateLimitSpec[] }, organization: { keyRateLimits: readonly RateLimitSpec[] }): RateLimitSpec[] {
  if (organization.keyRateLimits.length === 0) return [...key.rateLimits];
  return [...key.rateLimits, ...organization.keyRateLimits.map((limit) => ({ ...limit, name: ORGANIZATION_WINDOW_PREFIX + limit.name }))];
}

export function isOrganizationWindow(name: string): boolean {
  return name.startsWith(ORGANIZATION_WINDOW_PREFIX);
}
