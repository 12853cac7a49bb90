import { encodeCursor, pageRequest, toPage } from '../../src/pagination';
import { BadUserInputError } from '../../src/errors';
import { newId } from '../../src/ids';

function badInput(fn: () => unknown): BadUserInputError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(BadUserInputError);
    return error as BadUserInputError;
  }
  throw new Error('expected a BadUserInputError');
}

describe('pageRequest', () => {
  it('defaults to 50 from the start', () => {
    expect(pageRequest(undefined, undefined)).toEqual({ first: 50, afterId: null });
    expect(pageRequest(null, null)).toEqual({ first: 50, afterId: null });
    expect(pageRequest(10, '')).toEqual({ first: 10, afterId: null });
  });

  it('accepts first from 1 to 500', () => {
    expect(pageRequest(1, null).first).toBe(1);
    expect(pageRequest(500, null).first).toBe(500);
  });

  it.each([0, -1, 501, 1.5, Number.NaN])('refuses first = %p with BAD_USER_INPUT naming first', (first) => {
    const error = badInput(() => pageRequest(first, null));
    expect(error.code).toBe('BAD_USER_INPUT');
    expect(error.message).toMatch(/^first: /);
    expect(error.extensions.field).toBe('first');
  });

  it('round-trips an id through its cursor', () => {
    const id = newId('key');
    const cursor = encodeCursor(id);
    expect(cursor).not.toContain(id);
    expect(pageRequest(20, cursor)).toEqual({ first: 20, afterId: id });
  });

  it('encodes cursors as URL-safe base64 without padding', () => {
    for (let i = 0; i < 50; i++) expect(encodeCursor(newId('org'))).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it.each([
    ['random text', 'not-a-cursor'],
    ['an id sent as-is', newId('key')],
    ['a cursor of something that is not an id', Buffer.from('hello world').toString('base64url')],
    ['a cursor of an id with upper-case characters', Buffer.from('key_01JD3M8K2A7X9Q4W1Z0C5B6N8R').toString('base64url')],
  ])('refuses %s as after with BAD_USER_INPUT naming after', (_what, after) => {
    const error = badInput(() => pageRequest(10, after));
    expect(error.code).toBe('BAD_USER_INPUT');
    expect(error.message).toMatch(/^after: /);
  });
});

describe('toPage', () => {
  const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `key_${String(i).padStart(26, '0')}` }));

  it('has a next page when more rows than first were fetched, and drops the extra row', () => {
    const fetched = rows(4);
    const page = toPage(fetched, { first: 3, afterId: null }, 10);
    expect(page.nodes).toEqual(fetched.slice(0, 3));
    expect(page.pageInfo).toEqual({ hasNextPage: true, endCursor: encodeCursor(fetched[2].id) });
    expect(page.totalCount).toBe(10);
  });

  it('has no next page when exactly first rows were fetched', () => {
    const fetched = rows(3);
    const page = toPage(fetched, { first: 3, afterId: null }, 3);
    expect(page.nodes).toEqual(fetched);
    expect(page.pageInfo).toEqual({ hasNextPage: false, endCursor: encodeCursor(fetched[2].id) });
  });

  it('has no next page when fewer rows than first were fetched', () => {
    const fetched = rows(2);
    const page = toPage(fetched, { first: 5, afterId: null }, 2);
    expect(page.nodes).toHaveLength(2);
    expect(page.pageInfo).toEqual({ hasNextPage: false, endCursor: encodeCursor(fetched[1].id) });
  });

  it('has a null endCursor and no next page when empty', () => {
    expect(toPage([], { first: 5, afterId: null }, 0)).toEqual({ nodes: [], pageInfo: { endCursor: null, hasNextPage: false }, totalCount: 0 });
  });

  it('gives an endCursor that pageRequest reads back as the last id of the page', () => {
    const fetched = [newId('key'), newId('key'), newId('key')].map((id) => ({ id }));
    const page = toPage(fetched, { first: 2, afterId: null }, 3);
    expect(pageRequest(2, page.pageInfo.endCursor).afterId).toBe(fetched[1].id);
  });
});
