import { BadUserInputError } from './errors';
import { LIMITS } from './validation';

/**
 * Cursor pagination over sortable ids (src/ids.ts): newest first, the cursor is the last
 * id of the page, base64url-encoded so clients treat it as opaque.
 */
export interface Page<T> {
  nodes: T[];
  pageInfo: { endCursor: string | null; hasNextPage: boolean };
  totalCount: number;
}

export interface PageRequest {
  first: number;
  /** Id after which to continue, or null for the first page. */
  afterId: string | null;
}

export function encodeCursor(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

export function pageRequest(first: number | null | undefined, after: string | null | undefined): PageRequest {
  const size = first ?? 50;
  if (!Number.isInteger(size) || size < 1 || size > LIMITS.pageSize) {
    throw new BadUserInputError('first', `must be between 1 and ${LIMITS.pageSize} (got ${size})`);
  }
  if (after === null || after === undefined || after === '') return { first: size, afterId: null };
  const id = Buffer.from(after, 'base64url').toString('utf8');
  if (!/^[a-z]{3}_[0-9a-z]{26}$/.test(id)) throw new BadUserInputError('after', 'is not a cursor returned by this API');
  return { first: size, afterId: id };
}

/** `rows` were fetched with limit first + 1, newest first. */
export function toPage<T extends { id: string }>(rows: T[], request: PageRequest, totalCount: number): Page<T> {
  const hasNextPage = rows.length > request.first;
  const nodes = hasNextPage ? rows.slice(0, request.first) : rows;
  const last = nodes[nodes.length - 1];
  return { nodes, pageInfo: { endCursor: last ? encodeCursor(last.id) : null, hasNextPage }, totalCount };
}
