import { createClient, Client as SocketClient } from 'graphql-ws';

/** A refusal or failure, with the server's code (e.g. INSUFFICIENT_SCOPE) and message. */
export class ApiError extends Error {
  constructor(message: string, readonly code: string, readonly status: number) {
    super(message);
    this.name = 'ApiError';
  }

  /** The key may not do this (scope or tenancy): shown as a notice, not as a failure. */
  get isRefusal(): boolean {
    return this.code === 'INSUFFICIENT_SCOPE' || this.code === 'FORBIDDEN' || this.code === 'NOT_FOUND';
  }
}

/** Socket close codes the server uses (DESIGN.md, Live updates). */
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_FORBIDDEN = 4403;

export interface Subscription {
  unsubscribe(): void;
}

/**
 * The console's only way to the server: GraphQL over HTTP (POST /graphql) and graphql-ws on the
 * same path, both with the signed-in key. The key travels in the Authorization header and in
 * connectionParams, never in a URL.
 */
export type LiveStatus = 'idle' | 'connecting' | 'live' | 'closed';

export class Api {
  readonly endpoint: string;
  private socket: SocketClient | null = null;
  private status: LiveStatus = 'idle';
  private readonly statusListeners = new Set<(status: LiveStatus) => void>();

  constructor(private readonly key: string, private readonly onSocketRefused: (message: string) => void) {
    this.endpoint = new URL('/graphql', window.location.href).toString();
  }

  async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    let response: Response;
    try {
      response = await fetch(this.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${this.key}` },
        body: JSON.stringify({ query, variables }),
      });
    } catch (error) {
      throw new ApiError(`keyward is unreachable (${(error as Error).message})`, 'NETWORK_ERROR', 0);
    }
    let body: { data?: T | null; errors?: Array<{ message: string; extensions?: { code?: string } }> };
    try {
      body = await response.json();
    } catch {
      throw new ApiError(`keyward answered HTTP ${response.status} without JSON`, 'INTERNAL_SERVER_ERROR', response.status);
    }
    const error = body.errors?.[0];
    if (error) throw new ApiError(error.message, error.extensions?.code ?? 'INTERNAL_SERVER_ERROR', response.status);
    if (!body.data) throw new ApiError('keyward answered without data', 'INTERNAL_SERVER_ERROR', response.status);
    return body.data;
  }

  /** Streams one subscription; `onError` gets refusals (e.g. a scope the key lacks). */
  subscribe<T>(query: string, variables: Record<string, unknown>, onNext: (data: T) => void, onError: (error: ApiError) => void): Subscription {
    const unsubscribe = this.connection().subscribe<T>({ query, variables }, {
      next: (result) => {
        const error = result.errors?.[0];
        if (error) onError(new ApiError(error.message, (error.extensions?.code as string | undefined) ?? 'INTERNAL_SERVER_ERROR', 0));
        else if (result.data) onNext(result.data as T);
      },
      error: (error) => onError(socketError(error)),
      complete: () => undefined,
    });
    return { unsubscribe };
  }

  /** Follows the live connection's state; returns the way to stop following. */
  onStatus(listener: (status: LiveStatus) => void): () => void {
    this.statusListeners.add(listener);
    listener(this.status);
    return () => this.statusListeners.delete(listener);
  }

  private setStatus(status: LiveStatus): void {
    this.status = status;
    for (const listener of this.statusListeners) listener(status);
  }

  /** Closes the socket (sign out). */
  close(): void {
    void this.socket?.dispose();
    this.socket = null;
  }

  private connection(): SocketClient {
    this.socket ??= createClient({
      url: this.endpoint.replace(/^http/, 'ws'),
      connectionParams: { authorization: `Bearer ${this.key}` },
      lazy: true,
      // A dropped connection comes back (server restart, network blip); a refused key does not.
      retryAttempts: 5,
      shouldRetry: (event) => !isRefusedClose(event),
      on: {
        connecting: () => this.setStatus('connecting'),
        connected: () => this.setStatus('live'),
        closed: (event) => {
          this.setStatus('closed');
          if (isRefusedClose(event)) this.onSocketRefused(socketError(event).message);
        },
      },
    });
    return this.socket;
  }
}

function isRefusedClose(event: unknown): boolean {
  const code = (event as { code?: number } | null)?.code;
  return code === CLOSE_UNAUTHORIZED || code === CLOSE_FORBIDDEN;
}

function socketError(error: unknown): ApiError {
  const close = error as { code?: number; reason?: string } | null;
  if (close && typeof close.code === 'number') {
    const why = close.reason ? `: ${close.reason}` : '';
    if (close.code === CLOSE_UNAUTHORIZED) return new ApiError(`The live connection was refused${why}`, 'UNAUTHENTICATED', 0);
    if (close.code === CLOSE_FORBIDDEN) return new ApiError(`The live connection was closed: the key no longer works${why}`, 'FORBIDDEN', 0);
    return new ApiError(`The live connection closed (${close.code}${why})`, 'SOCKET_CLOSED', 0);
  }
  const list = Array.isArray(error) ? (error as Array<{ message: string; extensions?: { code?: string } }>) : null;
  if (list?.[0]) return new ApiError(list[0].message, list[0].extensions?.code ?? 'INTERNAL_SERVER_ERROR', 0);
  return new ApiError(error instanceof Error ? error.message : 'The live connection failed', 'SOCKET_CLOSED', 0);
}
