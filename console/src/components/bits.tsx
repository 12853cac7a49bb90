import { ReactNode, useState } from 'react';
import { ApiError } from '../api';

/** A status as a coloured label: ACTIVE green, DISABLED / SUSPENDED grey, EXPIRED amber, REVOKED red. */
export function Badge({ value }: { value: string }) {
  return <span className={`badge badge-${value.toLowerCase()}`}>{value}</span>;
}

/** "No keys yet — create one" and the like. */
export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/**
 * What went wrong, with the server's own message: a refusal (scope, tenancy) reads as "your key
 * may not", anything else as an error.
 */
export function Problem({ error }: { error: unknown }) {
  if (!error) return null;
  const apiError = error instanceof ApiError ? error : null;
  const message = error instanceof Error ? error.message : String(error);
  const refusal = apiError?.isRefusal ?? false;
  return (
    <div className={`notice ${refusal ? 'notice-refusal' : 'notice-error'}`} role="alert">
      {refusal ? 'Your key may not do this: ' : ''}
      {message}
      {apiError ? <code className="notice-code">{apiError.code}</code> : null}
    </div>
  );
}

export function Notice({ children }: { children: ReactNode }) {
  return <div className="notice notice-info" role="status">{children}</div>;
}

/** Copies `text` to the clipboard; says whether it worked. */
export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setState('copied');
    } catch {
      // Not a secure context, or permission refused: the text stays selectable.
      setState('failed');
    }
  };
  return (
    <button type="button" onClick={copy} aria-live="polite">
      {state === 'copied' ? 'Copied' : state === 'failed' ? 'Copy failed — select and copy' : label}
    </button>
  );
}
