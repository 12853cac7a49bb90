/** An error answered by keyward (or reaching it), with the server's `extensions.code`. */
export class KeywardError extends Error {
  constructor(
    message: string,
    /** The server's error code (e.g. KEY_REVOKED, BAD_USER_INPUT), or NETWORK_ERROR when keyward could not be reached. */
    readonly code: string,
    /** HTTP status of the response; 0 when there was none. */
    readonly status: number,
    /** The GraphQL path of the failing field, when there is one. */
    readonly path?: ReadonlyArray<string | number>,
  ) {
    super(message);
    this.name = 'KeywardError';
  }
}
