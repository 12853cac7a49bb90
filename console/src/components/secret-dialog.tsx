import { ReactNode } from 'react';
import { CopyButton } from './bits';
import { Dialog } from './dialog';

/**
 * A secret, shown this once (a key's, an endpoint's signing secret): in a read-only field with
 * a copy button. Closing the dialog drops it; the console never stores it.
 */
export function SecretDialog({ title, children, secret, note, onClose }: { title: string; children: ReactNode; secret: string; note?: string; onClose: () => void }) {
  return (
    <Dialog title={title} onClose={onClose} actions={<button type="button" className="primary" onClick={onClose}>I have stored it</button>}>
      <p>{children}</p>
      <div className="secret-row">
        <input className="mono secret" readOnly value={secret} aria-label="Secret" onFocus={(event) => event.target.select()} />
        <CopyButton text={secret} />
      </div>
      {note ? <p className="muted">{note}</p> : null}
    </Dialog>
  );
}
