export interface KeywardClientErrorDetails {
  /** HTTP status of keyward's response; 0 (the default) when there was none. */
  status?: number;
  /** The GraphQL path of the failing field, when there is one. */
  path?: ReadonlyArray<string | number>;
}

/**
 * A request to keyward that failed. `code` is keyward's `extensions.code` when it answered (an
 * `ErrorCode`, e.g. KEY_REVOKED or BAD_USER_INPUT; a newer server may add codes), else one of
 * the client's own: NETWORK_ERROR (keyward could not be reached: connection refused, DNS,
 * timeout) or SOCKET_CLOSED (keyward closed the subscription socket; the close code is in the
 * message).
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
