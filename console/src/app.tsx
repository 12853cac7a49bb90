import { useCallback, useEffect, useMemo, useState } from 'react';
import { Api, ApiError } from './api';
import { Organization, ORGANIZATIONS, Page, VIEWER } from './queries';
import { keyStore } from './scopes';
import { canWith, ConsoleSession, SessionContext } from './session';
import { SignIn } from './views/sign-in';
import { Overview } from './views/overview';
import { Keys } from './views/keys';
import { Usage } from './views/usage';
import { Sessions } from './views/sessions';
import { Audit } from './views/audit';
import { Organizations } from './views/organizations';
import { Webhooks } from './views/webhooks';

type Viewer = ConsoleSession['viewer'];

interface SignedIn {
  api: Api;
  viewer: Viewer;
  isPlatform: boolean;
  organizations: Organization[];
}

/** Every organization a platform key sees (all pages). */
async function listOrganizations(api: Api): Promise<Organization[]> {
  const all: Organization[] = [];
  let after: string | null = null;
  for (;;) {
    const { organizations }: { organizations: Page<Organization> } = await api.request(ORGANIZATIONS, { after });
    all.push(...organizations.nodes);
    if (!organizations.pageInfo.hasNextPage) return all;
    after = organizations.pageInfo.endCursor;
  }
}

const VIEWS = [
  { path: 'overview', label: 'Overview', scope: null, platform: false, Component: Overview },
  { path: 'keys', label: 'Keys', scope: 'keys:read', platform: false, Component: Keys },
  { path: 'usage', label: 'Usage', scope: 'usage:read', platform: false, Component: Usage },
  { path: 'sessions', label: 'Sessions', scope: 'sessions:read', platform: false, Component: Sessions },
  { path: 'audit', label: 'Audit log', scope: 'audit:read', platform: false, Component: Audit },
  { path: 'webhooks', label: 'Webhooks', scope: 'webhooks:read', platform: false, Component: Webhooks },
  { path: 'organizations', label: 'Organizations', scope: null, platform: true, Component: Organizations },
] as const;

function currentPath(): string {
  return window.location.hash.replace(/^#\/?/, '') || 'overview';
}

export function App() {
  const [signedIn, setSignedIn] = useState<SignedIn | null>(null);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const [path, setPath] = useState(currentPath());

  useEffect(() => {
    const onHash = () => setPath(currentPath());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const signOut = useCallback((message: string | null = null) => {
    keyStore.forget();
    setSignedIn((current) => {
      current?.api.close();
      return null;
    });
    setSelectedId(null);
    setProblem(message);
  }, []);

  const signIn = useCallback(async (key: string) => {
    setBusy(true);
    setProblem(null);
    const api = new Api(key, (message) => signOut(`Signed out: ${message}`));
    try {
      const { viewer } = await api.request<{ viewer: Viewer }>(VIEWER);
      // The server says whether the key crosses organizations: no probing request that may be refused.
      const organizations = viewer.isPlatformAdmin ? await listOrganizations(api) : [viewer.organization];
      keyStore.save(key);
      setSignedIn({ api, viewer, isPlatform: viewer.isPlatformAdmin, organizations });
      setSelectedId(viewer.organization.id);
    } catch (error) {
      api.close();
      keyStore.forget();
      setProblem(error instanceof ApiError ? `${error.message} (${error.code})` : String(error));
    } finally {
      setBusy(false);
    }
  }, [signOut]);

  useEffect(() => {
    const stored = keyStore.load();
    if (stored) void signIn(stored);
  }, [signIn]);

  const session = useMemo<ConsoleSession | null>(() => {
    if (!signedIn) return null;
    const organization = signedIn.organizations.find((candidate) => candidate.id === selectedId) ?? signedIn.viewer.organization;
    return {
      ...signedIn,
      organization,
      selectOrganization: setSelectedId,
      reloadOrganizations: async () => {
        const organizations = signedIn.isPlatform ? await listOrganizations(signedIn.api) : null;
        if (organizations) setSignedIn((current) => (current ? { ...current, organizations } : current));
      },
      can: canWith(signedIn.viewer.scopes, signedIn.viewer.organization.isPlatform),
    };
  }, [signedIn, selectedId]);

  if (!session) return <SignIn onSignIn={signIn} busy={busy} problem={problem} />;

  const views = VIEWS.filter((view) => (view.platform ? session.isPlatform : !view.scope || session.can(view.scope)));
  const active = views.find((view) => view.path === path) ?? views[0];
  const { Component } = active;
  return (
    <SessionContext.Provider value={session}>
      <div className="shell">
        <header className="topbar">
          <a className="brand" href="#/overview"><span className="logo" aria-hidden="true" /> keyward</a>
          <nav aria-label="Console">
            <ul>
              {views.map((view) => (
                <li key={view.path}><a href={`#/${view.path}`} aria-current={view === active ? 'page' : undefined}>{view.label}</a></li>
              ))}
            </ul>
          </nav>
          <div className="who">
            {session.isPlatform ? (
              <label className="org-select">
                <span className="sr-only">Organization</span>
                <select aria-label="Organization" value={session.organization.id} onChange={(event) => setSelectedId(event.target.value)}>
                  {session.organizations.map((organization) => <option key={organization.id} value={organization.id}>{organization.name}</option>)}
                </select>
              </label>
            ) : <span className="org-name" data-testid="organization-name">{session.organization.name}</span>}
            <span className="key-name" title={session.viewer.scopes.join(', ')}>{session.viewer.apiKey.name} <span className="mono muted">{session.viewer.apiKey.hint}</span></span>
            <button type="button" onClick={() => signOut()}>Sign out</button>
          </div>
        </header>
        <main className="content">
          <Component key={session.organization.id} />
        </main>
      </div>
    </SessionContext.Provider>
  );
}
