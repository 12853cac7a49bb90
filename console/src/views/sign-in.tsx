import { FormEvent, useState } from 'react';

/** A password field for the key; Enter submits. The key is kept in sessionStorage only. */
export function SignIn({ onSignIn, busy, problem }: { onSignIn: (key: string) => void; busy: boolean; problem: string | null }) {
  const [key, setKey] = useState('');
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (key.trim()) onSignIn(key.trim());
  };
  return (
    <main className="sign-in">
      <form className="sign-in-card" onSubmit={submit} aria-labelledby="sign-in-title">
        <h1 id="sign-in-title"><span className="logo" aria-hidden="true" /> keyward console</h1>
        <p>Sign in with an API key. A platform key (from <code>npx keyward init</code>) sees every organization; an organization's ADMIN key sees its own.</p>
        <label htmlFor="api-key">API key</label>
        <input id="api-key" name="api-key" type="password" autoComplete="off" spellCheck={false} autoFocus placeholder="kw_live_…" value={key} onChange={(event) => setKey(event.target.value)} />
        {problem ? <div className="notice notice-error" role="alert">{problem}</div> : null}
        <button type="submit" className="primary" disabled={busy || key.trim() === ''}>{busy ? 'Signing in…' : 'Sign in'}</button>
        <p className="muted small">The key stays in this tab (sessionStorage) until you sign out or close it; it is sent only to this server.</p>
      </form>
    </main>
  );
}
