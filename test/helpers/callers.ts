import type { TestServer } from './server';
import { createKey, createOrganization } from './fixtures';
import { ok } from './expect';
import { createWalletKey } from './wallet';
import { RotateApiKeyDocument } from './operations';

/**
 * The eight callers of the authorization model (issue 11), built over the public API:
 *
 *   P*   the init key: `*` in the platform organization (platform admin)
 *   Pkw  a platform-organization key holding only keys:read + keys:write
 *   TA   tenant A's ADMIN key          TW  tenant A's WRITE key       TR  tenant A's READ key
 *   OA   tenant B's ADMIN key (another tenant)
 *   SS   a superseded secret: the old secret of a tenant-A ADMIN key rotated with a 1-hour grace
 *   WK   a wallet key (createApiKeyWithWallet, default preset INFERENCE), in its own organization
 */

export const CALLER_KINDS = ['P*', 'Pkw', 'TA', 'TW', 'TR', 'OA', 'SS', 'WK'] as const;
export type CallerKind = (typeof CALLER_KINDS)[number];

export const CALLER_NAMES: Readonly<Record<CallerKind, string>> = {
  'P*': 'P* (the platform admin, *)',
  Pkw: 'Pkw (a platform keys:read+keys:write key)',
  TA: "TA (tenant A's ADMIN key)",
  TW: "TW (tenant A's WRITE key)",
  TR: "TR (tenant A's READ key)",
  OA: "OA (tenant B's ADMIN key)",
  SS: 'SS (a superseded tenant-A ADMIN secret)',
  WK: 'WK (a wallet INFERENCE key)',
};

export interface Caller {
  kind: CallerKind;
  /** The key's id: for SS the rotated-out key, whose old secret `secret` is. */
  id: string;
  secret: string;
  organizationId: string;
}

export interface SupersededKey {
  /** The rotated-out key and its old secret, still working until previousKeyExpiresAt. */
  id: string;
  secret: string;
  organizationId: string;
  previousKeyExpiresAt: string;
  successor: { id: string; secret: string };
}

/** A key made with `input` by the platform admin, then rotated with `graceSeconds` of grace. */
export async function createSupersededKey(server: TestServer, input: Record<string, unknown>, graceSeconds = 3600): Promise<SupersededKey> {
  const key = await createKey(server, input);
  const rotated = ok(await server.gql(RotateApiKeyDocument, { id: key.id, gracePeriodSeconds: graceSeconds })).rotateApiKey;
  return {
    id: key.id,
    secret: key.secret,
    organizationId: key.organizationId,
    previousKeyExpiresAt: rotated.previousKeyExpiresAt,
    successor: { id: rotated.apiKey.id, secret: rotated.secret },
  };
}

export interface Callers {
  platformOrganizationId: string;
  /** Tenant A: TA, TW, TR and SS belong to it. */
  organizationA: string;
  /** Tenant B: OA belongs to it. */
  organizationB: string;
  /** The organization the wallet sign-up made for WK. */
  walletOrganization: string;
  byKind: Readonly<Record<CallerKind, Caller>>;
  organizationOf(kind: CallerKind): string;
  /** A customer organization the caller does not belong to: B for tenant A's callers, A for everyone else. */
  otherOrganizationOf(kind: CallerKind): string;
  /**
   * Another caller of the same kind, made now, for a case that may end or change the caller
   * (it acts on itself). `input` is added to the key's (e.g. rateLimits). P* is then a second
   * `*` key of the platform organization, as strong as the init key. WK is always the one
   * wallet key: a sign-up spends the public allowance and, once limited, a wallet organization.
   */
  fresh(kind: CallerKind, input?: Record<string, unknown>): Promise<Caller>;
}

/** Generous limits, so that no case of a large matrix runs into a key count or a quota. */
const ROOMY_ORGANIZATION = { maxKeys: 100_000, quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 1_000_000_000 }] };

/**
 * Builds tenants A and B, a wallet organization, and one caller of every kind. Every key made
 * here has `rateLimits: []` unless `input` says otherwise, so callers can be used for hundreds
 * of calls without advancing the clock (which would end SS's grace).
 */
export async function buildCallers(server: TestServer): Promise<Callers> {
  const platformOrganizationId = server.platformOrganizationId;
  ok(await server.gql('mutation($id: ID!) { updateOrganization(id: $id, input: { maxKeys: 100000 }) { id } }', { id: platformOrganizationId }));
  const organizationA = (await createOrganization(server, ROOMY_ORGANIZATION)).id;
  const organizationB = (await createOrganization(server, ROOMY_ORGANIZATION)).id;

  const wallet = await createWalletKey(server);
  ok(await server.gql('mutation($id: ID!) { updateApiKey(id: $id, input: { rateLimits: [] }) { id } }', { id: wallet.id }));
  ok(await server.gql('mutation($id: ID!) { updateOrganization(id: $id, input: { maxKeys: 100000 }) { id } }', { id: wallet.organizationId }));
  const walletCaller: Caller = { kind: 'WK', ...wallet };

  const organizationOf = (kind: CallerKind): string => {
    switch (kind) {
      case 'P*': case 'Pkw': return platformOrganizationId;
      case 'TA': case 'TW': case 'TR': case 'SS': return organizationA;
      case 'OA': return organizationB;
      case 'WK': return wallet.organizationId;
    }
  };

  const keyInput = (kind: Exclude<CallerKind, 'WK'>): Record<string, unknown> => {
    const organizationId = organizationOf(kind);
    switch (kind) {
      case 'P*': return { organizationId, scopes: ['*'] };
      case 'Pkw': return { organizationId, scopes: ['keys:read', 'keys:write'] };
      case 'TA': case 'OA': case 'SS': return { organizationId, preset: 'ADMIN' };
      case 'TW': return { organizationId, preset: 'WRITE' };
      case 'TR': return { organizationId, preset: 'READ' };
    }
  };

  const make = async (kind: CallerKind, input: Record<string, unknown> = {}): Promise<Caller> => {
    if (kind === 'WK') return walletCaller;
    if (kind === 'SS') {
      const superseded = await createSupersededKey(server, { ...keyInput(kind), rateLimits: [], ...input });
      return { kind, id: superseded.id, secret: superseded.secret, organizationId: superseded.organizationId };
    }
    const key = await createKey(server, { ...keyInput(kind), rateLimits: [], ...input });
    return { kind, id: key.id, secret: key.secret, organizationId: key.organizationId };
  };

  const rootId = ok(await server.gql('{ viewer { apiKey { id } } }')).viewer.apiKey.id as string;
  const byKind: Record<CallerKind, Caller> = {
    'P*': { kind: 'P*', id: rootId, secret: server.adminKey, organizationId: platformOrganizationId },
    Pkw: await make('Pkw'),
    TA: await make('TA'),
    TW: await make('TW'),
    TR: await make('TR'),
    OA: await make('OA'),
    SS: await make('SS'),
    WK: walletCaller,
  };

  return {
    platformOrganizationId,
    organizationA,
    organizationB,
    walletOrganization: wallet.organizationId,
    byKind,
    organizationOf,
    otherOrganizationOf: (kind) => (organizationOf(kind) === organizationA ? organizationB : organizationA),
    fresh: make,
  };
}
