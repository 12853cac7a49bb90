import WebSocket from 'ws';
import { createClient, Client, ClientOptions } from 'graphql-ws';
import { Operation, queryText } from './server';

/**
 * Live updates from the test side: graphql-ws clients (LiveClients), the events of one
 * subscription (Feed), and a raw graphql-transport-ws socket that shows every message, ping
 * and close (RawSocket). Written once for every test file, as graphql-ws's tests/utils does.
 */

export const GRAPHQL_WS_PROTOCOL = 'graphql-transport-ws';

/** A GraphQL error as a subscription delivers it; a socket close appears as code `CLOSE_<code>`. */
export interface LiveError {
  message: string;
  extensions?: { code?: string; [k: string]: unknown };
}

export interface Closed {
  code: number;
  reason: string;
  /** performance.now() when the close arrived. */
  at: number;
}

/** Something that changes as messages arrive and that a test waits on. */
abstract class Observed {
  private readonly listeners = new Set<() => void>();

  /** What arrived so far, for the message of a failed wait. */
  protected abstract describe(): string;

  /** Resolves once `predicate` holds; fails after `timeoutMs` showing what arrived. */
  until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${this.describe()}`));
      }, timeoutMs);
      this.listeners.add(check);
    });
  }

  protected changed(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

export function toLiveErrors(error: unknown): LiveError[] {
  if (Array.isArray(error)) return error as LiveError[];
  if (error && typeof error === 'object' && 'code' in error && typeof (error as { code: unknown }).code === 'number') {
    const { code, reason } = error as { code: number; reason?: string };
    return [{ message: `socket closed ${code} ${reason ?? ''}`, extensions: { code: `CLOSE_${code}` } }];
  }
  return [{ message: error instanceof Error ? error.message : String(error) }];
}

/**
 * The events of one subscription, each with its arrival time (performance.now()), and the
 * errors it ended with (an `error` message, or a `next` carrying errors).
 */
export class Feed<T> extends Observed {
  readonly events: Array<{ data: T; at: number }> = [];
  readonly errors: LiveError[] = [];
  completed = false;
  readonly unsubscribe: () => void;

  /** Subscribes `query` on `client` and collects the field `field` of every event. */
  static watch<TData, TVariables, K extends keyof TData & string>(client: Client, query: Operation<TData, TVariables>, variables: TVariables, field: K): Feed<NonNullable<TData[K]>> {
    return new Feed<NonNullable<TData[K]>>(client, queryText(query), variables as Record<string, unknown>, field);
  }

  constructor(client: Client, query: string, variables: Record<string, unknown>, private readonly field: string) {
    super();
    this.unsubscribe = client.subscribe<Record<string, T>>({ query, variables }, {
      next: (result) => {
        if (result.errors) this.errors.push(...(result.errors as LiveError[]));
        const data = result.data?.[this.field];
        if (data !== undefined && data !== null) this.events.push({ data, at: performance.now() });
        this.changed();
      },
      error: (error: unknown) => {
        this.errors.push(...toLiveErrors(error));
        this.changed();
      },
      complete: () => {
        this.completed = true;
        this.changed();
      },
    });
  }

  get data(): T[] {
    return this.events.map((event) => event.data);
  }

  /** The first `count` events (waits for them). */
  async take(count: number, timeoutMs = 3_000): Promise<T[]> {
    await this.until(() => this.events.length >= count, timeoutMs, `${count} event(s)`);
    return this.data.slice(0, count);
  }

  /** The first error (waits for it). */
  async error(timeoutMs = 3_000): Promise<LiveError> {
    await this.until(() => this.errors.length > 0, timeoutMs, 'an error');
    return this.errors[0];
  }

  /** Resolves once the subscription ended (completed or failed). */
  ended(timeoutMs = 3_000): Promise<void> {
    return this.until(() => this.completed || this.errors.length > 0, timeoutMs, 'the end');
  }

  protected describe(): string {
    return `${this.field}: got events ${JSON.stringify(this.data)}, errors ${JSON.stringify(this.errors)}, completed ${this.completed}`;
  }
}

export interface LiveClientOptions {
  /** How the key travels in connectionParams: `{ authorization: "Bearer …" }` (default) or `{ apiKey }`. */
  keyAs?: 'authorization' | 'apiKey';
  /** Headers of the upgrade request (e.g. X-Forwarded-For). */
  headers?: Record<string, string>;
  /** graphql-ws event listeners (connected, closed, …). */
  on?: ClientOptions['on'];
  /** Connect with the first subscription and close after the last (graphql-ws's default), rather than at once. */
  lazy?: boolean;
}

/** A graphql-ws client over `ws` authenticated with `secret`, never retrying. */
export function liveClient(wsUrl: string, secret: string, options: LiveClientOptions = {}): Client {
  const headers = options.headers;
  const webSocketImpl = headers
    ? class WebSocketWithHeaders extends WebSocket {
      constructor(address: string | URL, protocols?: string | string[]) {
        super(address, protocols, { headers });
      }
    }
    : WebSocket;
  const lazy = options.lazy ?? false;
  return createClient({
    url: wsUrl,
    webSocketImpl,
    connectionParams: options.keyAs === 'apiKey' ? { apiKey: secret } : { authorization: `Bearer ${secret}` },
    retryAttempts: 0,
    lazy,
    // A refused connection shows in the subscriptions' errors and `on.closed`.
    ...(!lazy && { onNonLazyError: () => {} }),
    on: options.on,
  });
}

/** The clients a test file opened, disposed together (call `disposeAll` in afterEach). */
export class LiveClients {
  private clients: Client[] = [];

  connect(wsUrl: string, secret: string, options?: LiveClientOptions): Client {
    const client = liveClient(wsUrl, secret, options);
    this.clients.push(client);
    return client;
  }

  async disposeAll(): Promise<void> {
    const clients = this.clients;
    this.clients = [];
    await Promise.all(clients.map((client) => client.dispose()));
  }
}

/**
 * A round trip on the connection that involves the database: subscriptions sent before it
 * (without a first event to wait for) are listening once it returns.
 */
export async function roundTrip(client: Client): Promise<void> {
  const feed = new Feed<unknown>(client, '{ organization { id } }', {}, 'organization');
  await feed.ended();
}

export interface Message {
  type: string;
  id?: string;
  payload?: any;
}

/** A raw graphql-transport-ws socket: every message received, every ping, and how and when it closed. */
export class RawSocket extends Observed {
  readonly messages: Message[] = [];
  /** performance.now() of every WebSocket ping from the server. */
  readonly pings: number[] = [];
  readonly closed: Promise<Closed>;
  readonly opened: Promise<void>;
  closedWith: Closed | null = null;
  readonly socket: WebSocket;

  /** `autoPong: false` makes a client that stops answering the server's pings. */
  constructor(wsUrl: string, options: { headers?: Record<string, string>; autoPong?: boolean } = {}) {
    super();
    const socket = new WebSocket(wsUrl, GRAPHQL_WS_PROTOCOL, { headers: options.headers, autoPong: options.autoPong ?? true });
    this.socket = socket;
    this.opened = new Promise((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      socket.once('close', (code, reason) => {
        this.closedWith = { code, reason: reason.toString(), at: performance.now() };
        this.changed();
        resolve(this.closedWith);
      });
    });
    socket.on('message', (data) => {
      this.messages.push(JSON.parse(data.toString()) as Message);
      this.changed();
    });
    socket.on('ping', () => {
      this.pings.push(performance.now());
      this.changed();
    });
    socket.on('error', () => {});
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  get acked(): boolean {
    return this.messages.some((message) => message.type === 'connection_ack');
  }

  send(message: Message): void {
    this.socket.send(JSON.stringify(message));
  }

  /** Sends connection_init; resolves with 'ack', or with the close if the server closed instead. */
  async init(payload?: Record<string, unknown>): Promise<'ack' | Closed> {
    await this.opened;
    this.send(payload === undefined ? { type: 'connection_init' } : { type: 'connection_init', payload });
    await this.until(() => this.acked || this.closedWith !== null, 5_000, 'connection_ack or close');
    return this.acked ? 'ack' : this.closedWith!;
  }

  /** Sends a subscribe message (any operation); its messages carry `id`. */
  subscribe(id: string, query: Operation<any, any>, variables: Record<string, unknown> = {}): void {
    this.send({ id, type: 'subscribe', payload: { query: queryText(query), variables } });
  }

  /** The `next` payloads of operation `id` so far. */
  nextsOf(id: string): any[] {
    return this.messages.filter((message) => message.id === id && message.type === 'next').map((message) => message.payload);
  }

  /** Runs a query over the socket; resolves with its `next` payload. */
  async query(query: string, id = `q-${Math.random().toString(36).slice(2)}`): Promise<any> {
    this.subscribe(id, query);
    await this.until(() => this.messages.some((message) => message.id === id && (message.type === 'next' || message.type === 'error')), 3_000, `the result of ${id}`);
    return this.messages.find((message) => message.id === id)!.payload;
  }

  /** Ends the socket now (no close handshake) and waits for its close. */
  async terminate(): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.terminate();
    await this.closed;
  }

  protected describe(): string {
    return `messages ${JSON.stringify(this.messages)}, pings ${this.pings.length}, closed ${JSON.stringify(this.closedWith)}`;
  }
}
