import http from 'node:http';
import type { Duplex } from 'node:stream';
import { createSourceEventStream, execute, ExecutionArgs, ExecutionResult, GraphQLError, GraphQLSchema, print } from 'graphql';
import { WebSocket, WebSocketServer } from 'ws';
import { CloseCode } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import type { App } from '../app';
import { callerFrom, Caller, Context } from '../context';
import { VerifyCode } from '../auth/verify-code';
import { authFailureBlock, countAuthFailure } from '../auth/auth-failures';
import { ApiKeyEntity } from '../api-keys/api-key.entity';
import { OrganizationStatus } from '../organizations/organization.entity';
import { ApiKeyEventType, Topic } from './topics';
import { ErrorCode } from '../errors';
import { clientAddress } from '../auth/ip-allowlist';
import { mapIterator } from './iterators';
import type { Logger } from '../logger';
import { requestIdFrom } from '../request-log';

export const SUBSCRIPTION_LIMITS = {
  /** Subscriptions one connection may hold at once. */
  perConnection: 50,
  /** A connection that sends no connection_init is closed (4408) after this many ms. */
  connectionInitWaitTimeoutMs: 3_000,
  /** WebSocket ping interval (ms); a socket that missed the previous pong is dropped. */
  keepAliveMs: 15_000,
  /** How often expiry of connected keys is checked (ms): closes within a second. */
  expiryCheckMs: 500,
} as const;

/** Close codes beyond graphql-ws's own (which keep their meaning: 4408, 4429, …). */
export const LiveCloseCode = {
  /** No key, or a key that does not authenticate. */
  Unauthorized: CloseCode.Unauthorized, // 4401
  /** The key stopped working while connected (revoked, disabled, deleted, expired, organization suspended). */
  Forbidden: CloseCode.Forbidden, // 4403
  GoingAway: 1001,
} as const;

interface Connection {
  socket: WebSocket;
  keyId: string;
  organizationId: string;
  expiresAt: Date | null;
}

type Extra = {
  socket: WebSocket;
  request: http.IncomingMessage;
  caller?: Caller;
  ip?: string | null;
  secret?: string;
  connection?: Connection;
  /** The connection's id (the upgrade request's X-Request-Id when safe, else generated) and logger. */
  requestId?: string;
  logger?: Logger;
};

/** `{ authorization: "Bearer kw_…" }` or `{ apiKey: "kw_…" }`. */
export function keyFromConnectionParams(params: Readonly<Record<string, unknown>> | undefined): string | null {
  if (!params) return null;
  const authorization = params.authorization ?? params.Authorization;
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return match ? match[1] : null;
  }
  const apiKey = params.apiKey ?? params['x-api-key'];
  return typeof apiKey === 'string' && apiKey.trim() !== '' ? apiKey.trim() : null;
}

/**
 * Which sockets belong to which key and organization, so a key that stops working has its
 * sockets closed at once (4403). Key and organization changes arrive as live events (from any
 * instance); expiry is checked on a short timer. One watch per organization, not per socket.
 */
class SocketRegistry {
  private readonly byKey = new Map<string, Set<Connection>>();
  private readonly byOrganization = new Map<string, Set<Connection>>();
  private readonly watches = new Map<string, Array<AsyncIterator<unknown>>>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly app: App) {
    this.timer = setInterval(() => this.closeExpired(), SUBSCRIPTION_LIMITS.expiryCheckMs);
    this.timer.unref();
  }

  get size(): number {
    let count = 0;
    for (const set of this.byKey.values()) count += set.size;
    return count;
  }

  add(connection: Connection): void {
    add(this.byKey, connection.keyId, connection);
    if (add(this.byOrganization, connection.organizationId, connection)) this.watch(connection.organizationId);
  }

  remove(connection: Connection): void {
    remove(this.byKey, connection.keyId, connection);
    if (remove(this.byOrganization, connection.organizationId, connection)) {
      for (const iterator of this.watches.get(connection.organizationId) ?? []) void iterator.return?.();
      this.watches.delete(connection.organizationId);
    }
  }

  closeAll(code: number, reason: string): void {
    for (const set of this.byKey.values()) for (const connection of set) connection.socket.close(code, reason);
  }

  stop(): void {
    clearInterval(this.timer);
    for (const iterators of this.watches.values()) for (const iterator of iterators) void iterator.return?.();
    this.watches.clear();
  }

  private watch(organizationId: string): void {
    const keys = this.app.pubSub.subscribe(Topic.API_KEY_CHANGED, organizationId)[Symbol.asyncIterator]();
    const organization = this.app.pubSub.subscribe(Topic.ORGANIZATION_CHANGED, organizationId)[Symbol.asyncIterator]();
    this.watches.set(organizationId, [keys, organization]);
    void (async () => {
      for (let next = await keys.next(); !next.done; next = await keys.next()) {
        const { type, apiKey } = next.value;
        const ids = type === ApiKeyEventType.ROTATED && apiKey.rotatedFromId ? [apiKey.id, apiKey.rotatedFromId] : [apiKey.id];
        await this.recheck(ids).catch((error) => this.app.logger.warn({ err: error }, 'socket recheck failed'));
      }
    })();
    void (async () => {
      for (let next = await organization.next(); !next.done; next = await organization.next()) {
        if (next.value.status !== OrganizationStatus.SUSPENDED) continue;
        for (const connection of [...(this.byOrganization.get(organizationId) ?? [])]) {
          connection.socket.close(LiveCloseCode.Forbidden, 'Forbidden: the organization was suspended');
        }
      }
    })();
  }

  /** Re-reads keys that changed; closes their sockets if they no longer work, else notes the new expiry. */
  private async recheck(keyIds: string[]): Promise<void> {
    for (const keyId of keyIds) {
      const connections = this.byKey.get(keyId);
      if (!connections?.size) continue;
      const key = await this.app.dataSource.getRepository(ApiKeyEntity).findOneBy({ id: keyId });
      const problem = !key || key.deletedAt ? 'deleted' : key.revokedAt ? 'revoked' : key.disabled ? 'disabled' : null;
      for (const connection of [...connections]) {
        if (problem) connection.socket.close(LiveCloseCode.Forbidden, `Forbidden: the API key was ${problem}`);
        else connection.expiresAt = key!.expiresAt;
      }
    }
    this.closeExpired();
  }

  private closeExpired(): void {
    const now = this.app.clock.now().getTime();
    for (const set of this.byKey.values()) {
      for (const connection of set) {
        if (connection.expiresAt && connection.expiresAt.getTime() <= now) {
          connection.socket.close(LiveCloseCode.Forbidden, 'Forbidden: the API key expired');
        }
      }
    }
  }
}

function add<K, V>(map: Map<K, Set<V>>, key: K, value: V): boolean {
  let set = map.get(key);
  const created = !set;
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
  return created;
}

function remove<K, V>(map: Map<K, Set<V>>, key: K, value: V): boolean {
  const set = map.get(key);
  if (!set) return false;
  set.delete(value);
  if (set.size > 0) return false;
  map.delete(key);
  return true;
}

/**
 * graphql-js executes a subscription's selection once per subscriber per event. Every
 * subscriber of a subject receives the very same payload object, and what a subscription
 * field returns does not depend on who asks (tenancy and scopes were checked when
 * subscribing), so the result is computed once per (payload, document, variables) and shared.
 */
const sharedResults = new WeakMap<object, Map<string, Promise<ExecutionResult> | ExecutionResult>>();

async function subscribeShared(args: ExecutionArgs): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const source = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in source)) return source as ExecutionResult;
  const key = `${args.operationName ?? ''}\u0000${print(args.document)}\u0000${JSON.stringify(args.variableValues ?? {})}`;
  return mapIterator(source as AsyncIterable<unknown>, (payload) => {
    if (payload === null || typeof payload !== 'object') return execute({ ...args, rootValue: payload });
    let byQuery = sharedResults.get(payload);
    if (!byQuery) sharedResults.set(payload, (byQuery = new Map()));
    let result = byQuery.get(key);
    if (!result) {
      result = execute({ ...args, rootValue: payload });
      byQuery.set(key, result);
    }
    return result;
  });
}

export interface LiveServer {
  /** Open sockets that passed authentication. */
  readonly connections: number;
  /** Subscriptions currently open (their event streams not yet ended). */
  readonly subscriptions: number;
  /** Closes every socket with 1001 and stops accepting. */
  stop(): Promise<void>;
}

/**
 * graphql-ws on the same HTTP server and path as GraphQL over HTTP. The connection is
 * authenticated once, from `connectionParams`, by the verification pipeline (steps 1–5: no
 * units are consumed by connecting); scopes and tenancy are checked per subscription.
 */
export function attachLiveServer(app: App, httpServer: http.Server, schema: GraphQLSchema, path: string): LiveServer {
  // noServer: upgrades are handed over below. With `server`, ws would re-emit the HTTP server's
  // own errors (a port in use) as WebSocket server errors, which graphql-ws reports as a crash.
  const wss = new WebSocketServer({ noServer: true, path, maxPayload: 1024 * 1024 });
  const onUpgrade = (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  };
  httpServer.on('upgrade', onUpgrade);
  const registry = new SocketRegistry(app);
  let openSubscriptions = 0;

  const disposable = useServer<Record<string, unknown>, Extra>({
    schema,
    subscribe: async (args) => {
      const result = await subscribeShared(args);
      if (!(Symbol.asyncIterator in result)) return result;
      openSubscriptions += 1;
      return countedUntilEnd(result, () => { openSubscriptions -= 1; });
    },
    connectionInitWaitTimeout: SUBSCRIPTION_LIMITS.connectionInitWaitTimeoutMs,
    context: (ctx): Context => ({
      app, secret: ctx.extra.secret ?? null, ip: ctx.extra.ip ?? null, host: ctx.extra.request.headers.host ?? null, caller: ctx.extra.caller ?? null, verification: null,
      requestId: ctx.extra.requestId ?? '', logger: ctx.extra.logger ?? app.logger,
    }),
    onConnect: async (ctx) => {
      const { socket, request } = ctx.extra;
      const requestId = requestIdFrom(request.headers);
      const logger = app.logger.child({ requestId });
      Object.assign(ctx.extra, { requestId, logger });
      const secret = keyFromConnectionParams(ctx.connectionParams);
      if (!secret) {
        logger.info({ code: 'UNAUTHENTICATED' }, 'websocket refused');
        socket.close(LiveCloseCode.Unauthorized, 'Unauthorized: send connectionParams { authorization: "Bearer <key>" } or { apiKey }');
        return false;
      }
      const ip = clientIp(app, request);
      const blocked = await authFailureBlock(app, ip);
      if (blocked) {
        logger.info({ code: 'RATE_LIMITED' }, 'websocket refused');
        socket.close(LiveCloseCode.Unauthorized, `Unauthorized: ${blocked.message}`);
        return false;
      }
      const outcome = await app.verifier.verify({ secret, ip, authenticateOnly: true });
      if (!outcome.valid) {
        await countAuthFailure(app, ip, outcome.code);
        logger.info({ code: outcome.code, keyId: outcome.key?.id ?? null }, 'websocket refused');
        const forbidden = outcome.code === VerifyCode.ORGANIZATION_SUSPENDED || outcome.code === VerifyCode.FORBIDDEN_IP;
        socket.close(forbidden ? LiveCloseCode.Forbidden : LiveCloseCode.Unauthorized, `${forbidden ? 'Forbidden' : 'Unauthorized'}: ${outcome.reason}`);
        return false;
      }
      const caller = callerFrom(outcome, ip);
      const connection: Connection = { socket, keyId: caller.key.id, organizationId: caller.organization.id, expiresAt: caller.key.expiresAt };
      Object.assign(ctx.extra, { caller, ip, secret, connection });
      registry.add(connection);
      logger.info({ keyId: caller.key.id, organizationId: caller.organization.id }, 'websocket connected');
      return true;
    },
    onSubscribe: (ctx) => {
      if (Object.keys(ctx.subscriptions).length > SUBSCRIPTION_LIMITS.perConnection) {
        return [new GraphQLError(`At most ${SUBSCRIPTION_LIMITS.perConnection} subscriptions per connection; complete one or open another connection`, {
          extensions: { code: ErrorCode.RATE_LIMITED },
        })];
      }
      return undefined;
    },
    onClose: (ctx) => {
      if (ctx.extra.connection) registry.remove(ctx.extra.connection);
    },
  }, wss);

  // Keep-alive: ping every socket; one that did not answer the previous ping is gone.
  const alive = new WeakSet<WebSocket>();
  wss.on('connection', (socket) => {
    alive.add(socket);
    socket.on('pong', () => alive.add(socket));
  });
  const keepAlive = setInterval(() => {
    for (const socket of wss.clients) {
      if (!alive.has(socket)) {
        socket.terminate();
        continue;
      }
      alive.delete(socket);
      socket.ping();
    }
  }, SUBSCRIPTION_LIMITS.keepAliveMs);
  keepAlive.unref();

  return {
    get connections() {
      return registry.size;
    },
    get subscriptions() {
      return openSubscriptions;
    },
    async stop() {
      httpServer.off('upgrade', onUpgrade);
      clearInterval(keepAlive);
      registry.stop();
      for (const socket of wss.clients) socket.close(LiveCloseCode.GoingAway, 'Server shutting down');
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** `source`, calling `onEnd` once when it ends: done, failed, or returned early. */
function countedUntilEnd<T>(source: AsyncIterableIterator<T>, onEnd: () => void): AsyncIterableIterator<T> {
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    onEnd();
  };
  const iterator: AsyncIterableIterator<T> = {
    [Symbol.asyncIterator]: () => iterator,
    async next() {
      try {
        const result = await source.next();
        if (result.done) end();
        return result;
      } catch (error) {
        end();
        throw error;
      }
    },
    async return() {
      end();
      return (await source.return?.()) ?? { done: true, value: undefined };
    },
  };
  return iterator;
}

/** The socket address, or X-Forwarded-For's client when TRUST_PROXY says so (like Express's req.ip). */
function clientIp(app: App, request: http.IncomingMessage): string | null {
  const socketAddress = clientAddress(request.socket.remoteAddress);
  if (!app.config.trustProxy) return socketAddress;
  const forwarded = request.headers['x-forwarded-for'];
  const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
  return clientAddress(first) ?? socketAddress;
}
