import http from 'node:http';
import type { Duplex } from 'node:stream';
import { GraphQLError, GraphQLSchema } from 'graphql';
import { WebSocket, WebSocketServer } from 'ws';
import type { Context as GraphQLWsContext } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import type { App } from '../app';
import { authenticateCaller, Caller, Context } from '../context';
import { VerifyCode } from '../auth/verify-code';
import { keyFromConnectionParams } from '@keyward/client/wire';
import { ErrorCode, storeUnavailableError, UNAVAILABLE_RETRY_AFTER_SECONDS } from '../errors';
import { isStoreUnreachable } from '../db/store-errors';
import type { Logger } from '../logger';
import { requestIdFrom } from '../request-log';
import { Loaders } from '../loaders';
import { Connection, SocketRegistry } from './socket-registry';
import { countedUntilEnd, subscribeLive } from './shared-execution';
import { FanOut } from './fan-out';
import { LiveCloseCode, SUBSCRIPTION_LIMITS } from './live-limits';

export { LiveCloseCode, SUBSCRIPTION_LIMITS };

type Extra = {
  socket: WebSocket;
  request: http.IncomingMessage;
  caller?: Caller;
  ip?: string | null;
  connection?: Connection;
  /** The connection's id (the upgrade request's X-Request-Id when safe, else generated) and logger. */
  requestId?: string;
  logger?: Logger;
};

type ConnectContext = GraphQLWsContext<Record<string, unknown>, Extra>;

export interface LiveServer {
  /** Open sockets that passed authentication. */
  readonly connections: number;
  /** Subscriptions currently open (their event streams not yet ended). */
  readonly subscriptions: number;
  /** Where live events are written to sockets (metrics observe it). */
  readonly fanOut: FanOut;
  /** Closes every socket with 1001 and stops accepting. */
  stop(): Promise<void>;
}

/** Refusals that are about where or what, not who: the key works, the socket may not. */
const FORBIDDEN_CODES: ReadonlySet<VerifyCode> = new Set([VerifyCode.ORGANIZATION_SUSPENDED, VerifyCode.FORBIDDEN_IP]);

/**
 * A socket's `connection_init`: its key (from connectionParams) is authenticated exactly as an
 * HTTP request's is (failed-auth limit, pipeline steps 1–5: nothing consumed). A refusal closes
 * the socket with 4401 (the key does not work) or 4403 (it may not connect from here); a key that
 * already holds MAX_WEBSOCKETS_PER_KEY sockets on this instance gets 4029. A socket counts for
 * its key from here until it closes.
 */
async function authenticateConnection(app: App, registry: SocketRegistry, ctx: ConnectContext): Promise<boolean> {
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
  const ip = app.clientAddressOf(request);
  const { caller, refusal } = await authenticateCaller(app, secret, ip);
  if (refusal) {
    const { outcome } = refusal;
    logger.info({ code: outcome.code, keyId: outcome.key?.id ?? null }, 'websocket refused');
    const forbidden = FORBIDDEN_CODES.has(outcome.code);
    socket.close(forbidden ? LiveCloseCode.Forbidden : LiveCloseCode.Unauthorized, `${forbidden ? 'Forbidden' : 'Unauthorized'}: ${outcome.reason}`);
    return false;
  }
  const perKey = app.config.maxWebSocketsPerKey;
  if (registry.countOf(caller.key.id) >= perKey) {
    logger.info({ code: 'TOO_MANY_CONNECTIONS', keyId: caller.key.id }, 'websocket refused');
    socket.close(LiveCloseCode.TooManyConnections, `Too many connections: this API key already holds ${perKey} WebSockets on this server (MAX_WEBSOCKETS_PER_KEY)`);
    return false;
  }
  const connection: Connection = { socket, keyId: caller.key.id, organizationId: caller.organization.id, expiresAt: caller.key.expiresAt };
  Object.assign(ctx.extra, { caller, ip, connection });
  registry.add(connection);
  logger.info({ keyId: caller.key.id, organizationId: caller.organization.id }, 'websocket connected');
  return true;
}

/**
 * graphql-ws on the same HTTP server and path as GraphQL over HTTP. The connection is
 * authenticated once (authenticateConnection); scopes and tenancy are checked per
 * subscription; graphql-ws itself pings every socket (keepAliveMs) and drops silent ones.
 */
export function attachLiveServer(app: App, httpServer: http.Server, schema: GraphQLSchema, path: string): LiveServer {
  // noServer: upgrades are handed over here. With `server`, ws would re-emit the HTTP server's
  // own errors (a port in use) as WebSocket server errors, which graphql-ws reports as a crash.
  const wss = new WebSocketServer({ noServer: true, path, maxPayload: 1024 * 1024 });
  // Sockets per client address, counted from the upgrade (before any key is seen) until close.
  const perAddress = new Map<string, number>();
  const onUpgrade = (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!wss.shouldHandle(request)) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      const address = app.clientAddressOf(request) ?? 'unknown';
      const limit = app.config.maxWebSocketsPerAddress;
      const open = perAddress.get(address) ?? 0;
      if (open >= limit) {
        app.logger.info({ code: 'TOO_MANY_CONNECTIONS', ip: address }, 'websocket refused');
        ws.close(LiveCloseCode.TooManyConnections, `Too many connections: this client address already holds ${limit} WebSockets on this server (MAX_WEBSOCKETS_PER_ADDRESS)`);
        return;
      }
      perAddress.set(address, open + 1);
      ws.once('close', () => {
        const left = (perAddress.get(address) ?? 1) - 1;
        if (left > 0) perAddress.set(address, left);
        else perAddress.delete(address);
      });
      wss.emit('connection', ws, request);
    });
  };
  httpServer.on('upgrade', onUpgrade);
  const registry = new SocketRegistry(app);
  const fanOut = new FanOut(app.pubSub, (error) => app.logger.error({ err: error }, 'live event delivery failed'));
  // Key and organization events missed while Redis was away: every connected key is looked at again.
  const stopWatchingRedis = app.redis?.onAvailability((up) => {
    if (up) registry.recheckAll().catch((error) => app.logger.warn({ err: error }, 'socket recheck after the Redis outage failed'));
  });
  let openSubscriptions = 0;

  const disposable = useServer<Record<string, unknown>, Extra>({
    schema,
    subscribe: async (args) => {
      const result = await subscribeLive(args, fanOut);
      if (!(Symbol.asyncIterator in result)) return result;
      openSubscriptions += 1;
      return countedUntilEnd(result, () => { openSubscriptions -= 1; });
    },
    connectionInitWaitTimeout: SUBSCRIPTION_LIMITS.connectionInitWaitTimeoutMs,
    context: (ctx, id): Context => ({
      app, ip: ctx.extra.ip ?? null, keyPresented: true, caller: ctx.extra.caller ?? null, refusal: null, verification: null, operationLabel: null, operationCost: null,
      requestId: ctx.extra.requestId ?? '', logger: ctx.extra.logger ?? app.logger, loaders: new Loaders(app, ctx.extra.caller?.actor ?? null),
      subscription: { socket: ctx.extra.socket, id },
    }),
    onConnect: (ctx) => authenticateConnection(app, registry, ctx).catch((error: unknown) => {
      if (!isStoreUnreachable(error)) throw error;
      ctx.extra.logger?.warn({ code: ErrorCode.UNAVAILABLE }, 'websocket refused: a backing store is unreachable');
      ctx.extra.socket.close(LiveCloseCode.TryAgainLater, `Unavailable: ${storeUnavailableError().message}`);
      return false;
    }),
    // What failed because a backing store is away reads as UNAVAILABLE (the HTTP side answers 503).
    onNext: (_ctx, _id, _payload, _args, result) => {
      if (!result.errors?.some(isStoreUnreachable)) return undefined;
      const { message, code } = storeUnavailableError();
      const unavailable = { message, extensions: { code, retryAfterSeconds: UNAVAILABLE_RETRY_AFTER_SECONDS } };
      return { ...result, errors: result.errors.map((error) => (isStoreUnreachable(error) ? { ...unavailable, path: error.path } : error.toJSON())) };
    },
    onSubscribe: (ctx) => {
      if (Object.keys(ctx.subscriptions).length <= SUBSCRIPTION_LIMITS.perConnection) return undefined;
      return [new GraphQLError(`At most ${SUBSCRIPTION_LIMITS.perConnection} subscriptions per connection; complete one or open another connection`, {
        extensions: { code: ErrorCode.RATE_LIMITED },
      })];
    },
    onClose: (ctx) => {
      if (ctx.extra.connection) registry.remove(ctx.extra.connection);
    },
  }, wss, SUBSCRIPTION_LIMITS.keepAliveMs);

  return {
    get connections() {
      return registry.size;
    },
    get subscriptions() {
      return openSubscriptions;
    },
    fanOut,
    async stop() {
      httpServer.off('upgrade', onUpgrade);
      stopWatchingRedis?.();
      registry.stop();
      for (const socket of wss.clients) socket.close(LiveCloseCode.GoingAway, 'Server shutting down');
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
