import type { GraphQLResponse } from './server';

/** Assertions on keyward's answers, written once for every test file. */

/** The data of a successful response; anything else fails the test showing the body. */
export function ok<T = any>(response: GraphQLResponse<T>): T {
  if (response.status !== 200 || response.body.errors) throw new Error(`unexpected response ${response.status}: ${JSON.stringify(response.body)}`);
  return response.body.data as T;
}

/**
 * The HTTP status each refusal code must come with (docs/behaviour.md "Errors"), written out here so
 * that a test fails when the server's table drifts from the contract.
 */
export const REFUSAL_STATUS: Readonly<Record<string, number>> = {
  UNAUTHENTICATED: 401,
  INVALID_API_KEY: 401,
  KEY_EXPIRED: 401,
  KEY_REVOKED: 401,
  KEY_DISABLED: 401,
  ORGANIZATION_SUSPENDED: 403,
  FORBIDDEN_IP: 403,
  INSUFFICIENT_SCOPE: 403,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  KEY_LIMIT_EXCEEDED: 403,
  RATE_LIMITED: 429,
  QUOTA_EXCEEDED: 429,
  BAD_USER_INPUT: 400,
  GRAPHQL_VALIDATION_FAILED: 400,
};

/**
 * A refusal with `code` and its HTTP status (`status` overrides the table), and no data for
 * the refused field. Compared as one object so a failure shows status, code and message together.
 */
export function expectRefused(response: GraphQLResponse, code: string, status = REFUSAL_STATUS[code]): void {
  if (status === undefined) throw new Error(`no HTTP status known for ${code}`);
  const seen = { status: response.status, code: response.code, message: response.body.errors?.[0]?.message };
  expect(seen).toEqual({ status, code, message: expect.any(String) });
  for (const value of Object.values(response.body.data ?? {})) expect(value ?? null).toBeNull();
}

/** 400 BAD_USER_INPUT (nothing written, no data) whose message names `field` (a string it contains, or a pattern it matches). */
export function expectBadInput(response: GraphQLResponse, field: string | RegExp): void {
  expectRefused(response, 'BAD_USER_INPUT');
  const message = response.body.errors![0].message;
  if (typeof field === 'string') expect(message).toContain(field);
  else expect(message).toMatch(field);
}

/** Anything shaped like a keyward secret. */
export const SECRET_PATTERN = /kw_(live|test)_[0-9A-Za-z]{16,}/;

/** An asymmetric matcher for a number from `min` to `max` (inclusive), shown as such when a comparison fails. */
export function between(min: number, max: number): number {
  const matcher = {
    $$typeof: Symbol.for('jest.asymmetricMatcher'),
    asymmetricMatch: (actual: unknown) => typeof actual === 'number' && actual >= min && actual <= max,
    toString: () => `between(${min}, ${max})`,
    toAsymmetricMatcher: () => `a number from ${min} to ${max}`,
  };
  return matcher as unknown as number;
}

/** An asymmetric matcher for `target` ± `tolerance`. */
export function near(target: number, tolerance: number): number {
  return between(target - tolerance, target + tolerance);
}
