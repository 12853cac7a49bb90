import { createContext, useContext } from 'react';
import { Api } from './api';
import type { Organization } from './queries';
import { holdsScope } from './scopes';

/** Who is signed in and which organization the console shows; shared by every view. */
export interface ConsoleSession {
  api: Api;
  viewer: { scopes: string[]; isPlatformAdmin: boolean; apiKey: { id: string; name: string; hint: string }; organization: Organization };
  /** The key holds platform:admin in the platform organization: it sees every organization. */
  isPlatform: boolean;
  /** Organizations the key may look at (one for a tenant key). */
  organizations: Organization[];
  /** The organization the views show. */
  organization: Organization;
  selectOrganization(id: string): void;
  /** Re-reads the organization list (after a create, suspend, quota change). */
  reloadOrganizations(): Promise<void>;
  /** Whether the key holds `scope`; the server still decides. */
  can(scope: string): boolean;
}

export const SessionContext = createContext<ConsoleSession | null>(null);

export function useSession(): ConsoleSession {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in console');
  return session;
}

export function canWith(scopes: readonly string[], inPlatformOrganization: boolean) {
  return (scope: string) => holdsScope(scopes, scope, inPlatformOrganization);
}
