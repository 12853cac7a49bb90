/**
 * Scope matching as the server does it (docs/behaviour.md): a held scope matches a required one
 * when equal, when it is `*`, or when it is `res:*` and the required one starts with `res:`; a
 * `platform:` scope is held only in the platform organization. The console uses it only to
 * decide what to offer; the server decides what runs.
 */
export function holdsScope(held: readonly string[], required: string, inPlatformOrganization: boolean): boolean {
  if (!inPlatformOrganization && required.startsWith('platform:')) return false;
  return held.some((scope) => scope === required || scope === '*' || (scope.endsWith(':*') && required.startsWith(scope.slice(0, -1))));
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
