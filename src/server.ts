import http from 'node:http';
import net from 'node:net';
import express, { NextFunction, Request, Response } from 'express';
import { ApolloServer, ApolloServerPlugin } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { expressMiddleware } from '@as-integrations/express5';
import { GraphQLFormattedError, GraphQLSchema } from 'graphql';
import { App, reportUnreachable } from './app';
import { buildContext, Context } from './context';
import { meteringPlugin } from './usage/metering.plugin';
import { enforcementPlugin } from './auth/enforcement.plugin';
import { isStoreUnreachable } from './db/store-errors';
import { attachLiveServer, LiveServer } from './live/ws-server';
import { buildKeywardSchema } from './schema';
import { ErrorCode, HTTP_STATUS, isErrorCode, storeUnavailableError, UNAVAILABLE_RETRY_AFTER_SECONDS } from './errors';
import { graphqlLimits, queryTooComplex, withoutSuggestions, withoutVariableValues } from './graphql-limits';
import { graphiqlAssets, graphiqlPage, GRAPHIQL_ASSETS_PATH, wantsGraphiql } from './graphiql/graphiql';
import { Metrics } from './metrics';
import { accessLogPlugin, requestLog, requestScope } from './request-log';
import { pageSecurityHeaders } from './security-headers';
import { consoleRoutes } from './console/console';
import { DATA_PLANE_PATH, dataPlaneError, dataPlaneRouter } from './data-plane/data-plane.router';

export const GRAPHQL_PATH = '/graphql';
/** Larger bodies are refused with 413 PAYLOAD_TOO_LARGE before parsing. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Apollo's own codes that keep their meaning; anything else unknown is masked. */
const PASSTHROUGH_CODES = new Set(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT']);
/** Apollo's request-level refusals: the request itself is wrong (400 BAD_USER_INPUT). */
const REQUEST_ERRORS = new Set(['BAD_REQUEST', 'OPERATION_RESOLUTION_FAILURE', 'PERSISTED_QUERY_NOT_FOUND', 'PERSISTED_QUERY_NOT_SUPPORTED']);

export interface KeywardServer {
  httpServer: http.Server;
  /** graphql-ws on the same port and path. */
  live: LiveServer;
  /** Resolves once listening; returns the bound port. */
  listen(port: number, host: string): Promise<number>;
  /** Stops accepting, finishes in-flight requests, then closes the app. */
  stop(): Promise<void>;
}

function jsonError(res: Response, code: ErrorCode, message: string): void {
  if (code === ErrorCode.UNAVAILABLE) res.setHeader('retry-after', String(UNAVAILABLE_RETRY_AFTER_SECONDS));
  res.status(HTTP_STATUS[code]).json({ errors: [{ message, extensions: { code } }] });
}

/** The one place that shapes errors for clients: known codes pass, the rest are masked. */
function formatErrorFor(app: App) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    // Over a GraphQL limit (graphql-limits.ts): one code, no limit named, no locations.
    const tooComplex = queryTooComplex(error);
    if (tooComplex) return { message: tooComplex.message, extensions: { code: ErrorCode.QUERY_TOO_COMPLEX } };
    if (formatted.extensions?.validationErrorCode === 'INTROSPECTION_DISABLED') {
      return { ...formatted, message: 'Introspection (__schema, __type) is disabled on this server (INTROSPECTION=false)' };
    }
    // Suggestions name parts of the schema; Apollo and graphql-armor drop most, this the rest.
    if (!app.config.introspection) formatted = { ...formatted, message: withoutSuggestions(formatted.message) };
    formatted = { ...formatted, message: withoutVariableValues(formatted.message) };
    const code = formatted.extensions?.code;
    if (typeof code === 'string' && REQUEST_ERRORS.has(code)) return { ...formatted, extensions: { ...formatted.extensions, code: ErrorCode.BAD_USER_INPUT } };
    if (isErrorCode(code) && code !== ErrorCode.INTERNAL_SERVER_ERROR) return formatted;
    const cause = unwrapResolverError(error);
    if (isStoreUnreachable(cause)) {
      reportUnreachable(app, cause);
      const unavailable = storeUnavailableError();
      return { message: unavailable.message, path: formatted.path, extensions: { code: unavailable.code, retryAfterSeconds: UNAVAILABLE_RETRY_AFTER_SECONDS } };
    }
    if (typeof code === 'string' && PASSTHROUGH_CODES.has(code)) return formatted;
    app.logger.error({ err: cause, path: formatted.path }, 'unexpected error');
    return { message: 'Internal server error', path: formatted.path, extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } };
  };
}

/**
 * Operations still executing. A client that hangs up does not stop its operation, and the
 * HTTP drain does not wait for it; shutdown waits here so its quota charge and usage event
 * are in place before the last flush.
 */
class InFlight {
  private count = 0;
  private idle: Array<() => void> = [];

  readonly plugin: ApolloServerPlugin<Context> = {
    requestDidStart: async () => {
      this.count += 1;
      let done = false;
      return {
        willSendResponse: async () => {
          if (done) return;
          done = true;
          this.count -= 1;
          if (this.count === 0) for (const resolve of this.idle.splice(0)) resolve();
        },
      };
    },
  };

  /** A call outside Apollo (the data plane), counted until it settles. */
  track(call: Promise<unknown>): void {
    this.count += 1;
    const done = () => {
      this.count -= 1;
      if (this.count === 0) for (const resolve of this.idle.splice(0)) resolve();
    };
    call.then(done, done);
  }

  /** Resolves when nothing is executing, or after `timeoutMs`. */
  settled(timeoutMs: number): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** How long shutdown waits for operations still executing (milliseconds). */
const SHUTDOWN_GRACE_MS = 10_000;
/** How long an idle keep-alive socket stays open once shutdown began (milliseconds). */
const IDLE_SOCKET_GRACE_MS = 1_000;

/** Resolves when `promise` does, or after `ms`. */
async function within(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); })]);
  clearTimeout(timer);
}

/**
 * Closes the HTTP side on shutdown without resetting a keep-alive client. From `drain()` on,
 * every response carries `Connection: close` (Node closes its socket once it is written), and the
 * listening socket stops accepting. Sockets with no request in flight are closed only after
 * IDLE_SOCKET_GRACE_MS: a client about to reuse one sends on it meanwhile and is answered (503,
 * Connection: close) instead of meeting a reset — closing them at once (what http.Server's own
 * close does) races every client that is sending. What is still open after `graceMs` is closed.
 */
class HttpDrain {
  private readonly pending = new Set<http.ServerResponse>();
  private draining = false;

  constructor(private readonly server: http.Server) {
    // Before the app's own handler, which may answer synchronously.
    server.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
      if (this.draining) {
        res.setHeader('connection', 'close');
        return;
      }
      this.pending.add(res);
      res.once('close', () => this.pending.delete(res));
    });
  }

  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    for (const res of this.pending) if (!res.headersSent) res.setHeader('connection', 'close');
    this.pending.clear();
    const closed = new Promise<void>((resolve) => net.Server.prototype.close.call(this.server, () => resolve()));
    await within(closed, IDLE_SOCKET_GRACE_MS);
    this.server.closeIdleConnections();
    await within(closed, graceMs);
    this.server.closeAllConnections();
  }
}

/**
 * A refused or failed operation answers with its code's HTTP status, not 200; a 503 always
 * says when to retry (Retry-After).
 */
const httpStatusPlugin: ApolloServerPlugin<Context> = {
  async requestDidStart() {
    return {
      async willSendResponse({ response, errors }) {
        if (!errors?.length || response.body.kind !== 'single') return;
        // 500 is Apollo's own status for what a plugin hook threw (e.g. the pipeline's database
        // read failing): the formatted code decides there too.
        if (!response.http.status || response.http.status === 200 || response.http.status === 500) {
          const first = response.body.singleResult.errors?.[0]?.extensions?.code;
          response.http.status = isErrorCode(first) ? HTTP_STATUS[first] : 500;
        }
        if (response.http.status === HTTP_STATUS[ErrorCode.UNAVAILABLE] && !response.http.headers.has('retry-after')) {
          response.http.headers.set('retry-after', String(UNAVAILABLE_RETRY_AFTER_SECONDS));
        }
      },
    };
  },
};

/**
 * The HTTP server: Node checks its timeouts every connectionsCheckingInterval, so a request whose
 * headers or body trickle in is answered 408 and its connection closed within a second of its deadline.
 */
function createHttpServer(app: App, handler: express.Express): http.Server {
  return http.createServer({
    requestTimeout: app.config.requestTimeoutMs,
    headersTimeout: app.config.headersTimeoutMs,
    connectionsCheckingInterval: 1_000,
  }, handler);
}

/**
 * Usage is durable before it is answered: every response first hands the usage records taken so
 * far to the operating system (usage-buffer.ts). Headers always go out first, through writeHead.
 */
function persistUsageBeforeAnswers(expressApp: express.Express, app: App): void {
  const writeHead = http.ServerResponse.prototype.writeHead;
  expressApp.response.writeHead = function writeHeadAfterUsage(this: http.ServerResponse, ...args: unknown[]) {
    app.usageBuffer.persist();
    return (writeHead as (...a: unknown[]) => http.ServerResponse).apply(this, args);
  } as Response['writeHead'];
}

/** Apollo Server over the schema, with keyward's limits, error shaping and plugins; started. */
async function startGraphQLServer(app: App, schema: GraphQLSchema, inFlight: InFlight): Promise<ApolloServer<Context>> {
  const limits = graphqlLimits({ introspection: app.config.introspection, schemaDetailsNeedKey: app.config.schemaDetailsNeedKey });
  const apollo = new ApolloServer<Context>({
    schema,
    introspection: app.config.introspection,
    csrfPrevention: true,
    allowBatchedHttpRequests: false,
    // Automatic persisted queries are not offered: a persistedQuery extension gets 400.
    persistedQueries: false,
    // main.ts owns shutdown (drain, flush, close); Apollo's own signal handler would stop it
    // first, and a second stop() never resolves, so nothing would be flushed.
    stopOnTerminationSignals: false,
    includeStacktraceInErrorResponses: false,
    hideSchemaDetailsFromClientErrors: !app.config.introspection,
    formatError: formatErrorFor(app),
    // Depth, aliases, tokens, directives and cost: refused before anything runs (QUERY_TOO_COMPLEX).
    validationRules: limits.validationRules,
    parseOptions: limits.parseOptions,
    // One plugin per concern, and their order matters (Apollo calls each hook in this order):
    // the request rules (in limits.plugins) name an operation only when it passed them, so the
    // enforcement plugin never consumes for a refused one; the status plugin sets the HTTP
    // status the enforcement plugin (a 503 gives back what it took) and the metering plugin read.
    plugins: [
      ApolloServerPluginLandingPageDisabled(),
      ...limits.plugins, httpStatusPlugin, enforcementPlugin, meteringPlugin, inFlight.plugin,
    ],
  });
  apollo.addPlugin(accessLogPlugin);
  await apollo.start();
  return apollo;
}

/** Every HTTP route: probes, metrics, the data plane, GraphiQL, the console and GraphQL, then the error handler. */
function routeHttp(
  expressApp: express.Express, app: App,
  served: { schema: GraphQLSchema; apollo: ApolloServer<Context>; metrics: Metrics; inFlight: InFlight; isStopping: () => boolean },
): void {
  const { schema, apollo, metrics, inFlight, isStopping } = served;
  expressApp.disable('x-powered-by');
  expressApp.set('trust proxy', app.config.trustProxy);
  persistUsageBeforeAnswers(expressApp, app);
  // Once shutdown began, requests still arriving (e.g. on half-closed keep-alive sockets) are
  // refused without running: a client never sees an error for a call that was counted.
  expressApp.use((req, res, next) => {
    if (!isStopping()) return next();
    res.setHeader('connection', 'close');
    const message = 'keyward is shutting down; retry on another instance';
    if (req.path.startsWith(`${DATA_PLANE_PATH}/`)) dataPlaneError(res, ErrorCode.UNAVAILABLE, message);
    else jsonError(res, ErrorCode.UNAVAILABLE, message);
  });

  expressApp.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  expressApp.get('/readyz', async (_req, res) => {
    const database = await app.dataSource.query('SELECT 1').then(() => {
      app.databaseOutages.up();
      return true;
    }, (error: unknown) => {
      app.databaseOutages.down(error, { during: 'readiness check' });
      return false;
    });
    const redis = app.redis ? await app.redis.ping() : null;
    const ready = database && redis !== false;
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : 'unavailable',
      database: database ? 'up' : 'down',
      ...(redis !== null && { redis: redis ? 'up' : 'down' }),
    });
  });
  // Unauthenticated like /healthz: restrict it at the network edge.
  expressApp.get('/metrics', async (_req, res) => {
    res.set('Content-Type', metrics.contentType).send(await metrics.render());
  });
  // Request id (X-Request-Id) and one access log line per request to the GraphQL endpoint and the data plane.
  const accessLog = requestLog(app.logger, (access, status, seconds) => metrics.observeRequest(access, status, seconds));
  expressApp.use(DATA_PLANE_PATH, accessLog, dataPlaneRouter(app, schema, { maxBodyBytes: MAX_BODY_BYTES, track: (call) => inFlight.track(call) }));
  expressApp.use(GRAPHQL_PATH, accessLog);
  expressApp.use(GRAPHIQL_ASSETS_PATH, graphiqlAssets());
  expressApp.use(consoleRoutes());
  expressApp.get(GRAPHQL_PATH, (req, res, next) => {
    if (!wantsGraphiql(req)) return next();
    pageSecurityHeaders(req, res);
    res.type('html').send(graphiqlPage(GRAPHQL_PATH));
  });
  expressApp.use(
    GRAPHQL_PATH,
    express.json({ limit: MAX_BODY_BYTES }),
    expressMiddleware(apollo, {
      context: async ({ req, res }) => buildContext(app, { headers: req.headers, ip: app.clientAddressOf(req) }, requestScope(res, app.logger)),
    }),
  );
  expressApp.use((error: Error & { type?: string; status?: number }, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    if (error.type === 'entity.too.large') return jsonError(res, ErrorCode.PAYLOAD_TOO_LARGE, `The request body is larger than ${MAX_BODY_BYTES} bytes`);
    if (error.type === 'entity.parse.failed') return jsonError(res, ErrorCode.BAD_USER_INPUT, 'The request body is not valid JSON');
    if (error.status && error.status >= 400 && error.status < 500) return jsonError(res, ErrorCode.BAD_USER_INPUT, 'The request could not be read');
    app.logger.error({ err: error }, 'unhandled HTTP error');
    jsonError(res, ErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error');
  });
}

/** Resolves with the bound port once `httpServer` listens. */
function listenOn(httpServer: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, host, () => {
      httpServer.off('error', reject);
      const address = httpServer.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

/**
 * A serving keyward: the HTTP app and server, the GraphQL server, the WebSocket server on the same
 * port, metrics and the webhook dispatcher; `stop()` shuts them down in order: sockets drained
 * (HttpDrain) and WebSockets closed, operations still executing waited for, then the app closed.
 */
export async function createServer(app: App): Promise<KeywardServer> {
  const schema = await buildKeywardSchema();
  const expressApp = express();
  const httpServer = createHttpServer(app, expressApp);
  const inFlight = new InFlight();
  const drain = new HttpDrain(httpServer);
  const apollo = await startGraphQLServer(app, schema, inFlight);
  const live = attachLiveServer(app, httpServer, schema, GRAPHQL_PATH);
  const metrics = new Metrics(app);
  metrics.observeLive(live);
  // A serving keyward delivers webhooks (a CLI process working on the database does not).
  app.webhookDispatcher.start();
  let stopping = false;
  routeHttp(expressApp, app, { schema, apollo, metrics, inFlight, isStopping: () => stopping });

  return {
    httpServer,
    live,
    listen: (port, host) => listenOn(httpServer, port, host),
    async stop() {
      stopping = true;
      const drained = drain.drain(SHUTDOWN_GRACE_MS);
      await live.stop();
      await drained;
      await apollo.stop();
      await inFlight.settled(SHUTDOWN_GRACE_MS);
      await app.close();
    },
  };
}
