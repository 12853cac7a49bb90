/** Codes the client reports on its own, when keyward gave no answer to take a code from. */
export type ClientOnlyErrorCode =
  /** keyward could not be reached (connection refused, DNS, timeout). */
  | 'NETWORK_ERROR'
  /** keyward closed the subscription socket (close code in the message). */
  | 'SOCKET_CLOSED';

export interface KeywardClientErrorDetails {
  /** HTTP status of keyward's response; 0 (the default) when there was none. */
  status?: number;
  /** The GraphQL path of the failing field, when there is one. */
  path?: ReadonlyArray<string | number>;
}

/**
 * A request to keyward that failed: refused by keyward (`code` is the server's
 * `extensions.code`, one of `ErrorCode` from '@keyward/client/wire', e.g. KEY_REVOKED or
 * BAD_USER_INPUT), or one keyward never answered (a `ClientOnlyErrorCode`).
 */
export class KeywardClientError extends Error {
  override readonly name = 'KeywardClientError';
  /** HTTP status of keyward's response; 0 when there was none. */
  readonly status: number;
  /** The GraphQL path of the failing field, when there is one. */
  readonly path?: ReadonlyArray<string | number>;

  constructor(readonly code: string, message: string, details: KeywardClientErrorDetails = {}) {
    super(message);
    this.status = details.status ?? 0;
    if (details.path) this.path = details.path;
  }
}
