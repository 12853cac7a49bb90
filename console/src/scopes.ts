/**
 * Scope matching as the server does it (DESIGN.md, Precise rules): a held scope matches a
 * required one when equal, when it is `*`, or when it is `res:*` and the required one starts
 * with `res:`. The console uses it only to decide what to offer; the server decides what runs.
 */
export function holdsScope(held: readonly string[], required: string): boolean {
  return held.some((scope) => scope === required || scope === '*' || (scope.endsWith(':*') && required.startsWith(scope.slice(0, -1))));
}

/** A key that may hold platform:admin; only the server knows (it depends on the organization). */
export function mayBePlatformAdmin(held: readonly string[]): boolean {
  return holdsScope(held, 'platform:admin');
}

const STORAGE_KEY = 'keyward.console.apiKey';

/** The signed-in key lives in sessionStorage only: gone when the tab closes, never in the URL or localStorage. */
export const keyStore = {
  load(): string | null {
    return window.sessionStorage.getItem(STORAGE_KEY);
  },
  save(key: string): void {
    window.sessionStorage.setItem(STORAGE_KEY, key);
  },
  forget(): void {
    window.sessionStorage.removeItem(STORAGE_KEY);
  },
};
