import http from 'node:http';
import express, { NextFunction, Request, Response } from 'express';
import { ApolloServer, ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { expressMiddleware } from '@as-integrations/express5';
import { GraphQLFormattedError } from 'graphql';
import { App } from './app';
import { buildContext, Context } from './context';
import { meteringPlugin } from './usage/metering.plugin';
import { attachLiveServer, LiveServer } from './live/ws-server';
import { buildKeywardSchema } from './schema';
import { ErrorCode, HTTP_STATUS, isErrorCode } from './errors';
import { graphiqlAssets, graphiqlPage, GRAPHIQL_ASSETS_PATH, wantsGraphiql } from './graphiql/graphiql';

export const GRAPHQL_PATH = '/graphql';
/** Larger bodies are refused with 413 PAYLOAD_TOO_LARGE before parsing. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Apollo's own codes that keep their meaning; anything else unknown is masked. */
const PASSTHROUGH_CODES = new Set(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT', 'PERSISTED_QUERY_NOT_FOUND', 'PERSISTED_QUERY_NOT_SUPPORTED']);

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
  res.status(HTTP_STATUS[code]).json({ errors: [{ message, extensions: { code } }] });
}

/** The one place that shapes errors for clients: known codes pass, the rest are masked. */
function formatErrorFor(app: App) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const code = formatted.extensions?.code;
    if (code === 'BAD_REQUEST') return { ...formatted, extensions: { ...formatted.extensions, code: ErrorCode.BAD_USER_INPUT } };
    if (isErrorCode(code) && code !== ErrorCode.INTERNAL_SERVER_ERROR) return formatted;
    if (isStoreUnreachable((error as { originalError?: unknown })?.originalError ?? error)) {
      app.logger.error({ err: (error as { originalError?: unknown })?.originalError ?? error }, 'backing store unreachable');
      return { message: 'A backing store (database or Redis) is unreachable; retry shortly', path: formatted.path, extensions: { code: ErrorCode.UNAVAILABLE } };
    }
    if (typeof code === 'string' && PASSTHROUGH_CODES.has(code)) return formatted;
    app.logger.error({ err: (error as { originalError?: unknown })?.originalError ?? error, path: formatted.path }, 'unexpected error');
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

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'PROTOCOL_CONNECTION_LOST', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN']);

/** A database or Redis that cannot be reached: UNAVAILABLE (503), never a made-up 500 or 429. */
function isStoreUnreachable(error: unknown): boolean {
  for (let current = error as { code?: string; driverError?: unknown; cause?: unknown; message?: string } | undefined, depth = 0; current && depth < 4; depth++) {
    if (current.code && UNREACHABLE.has(current.code)) return true;
    if (current.message && /Connection is closed|Stream isn't writeable|enableOfflineQueue/.test(current.message)) return true;
    current = (current.driverError ?? current.cause) as typeof current;
  }
  return false;
}

/** A refused or failed operation answers with its code's HTTP status, not 200. */
const httpStatusPlugin: ApolloServerPlugin<Context> = {
  async requestDidStart() {
    return {
      async willSendResponse({ response, errors }) {
        if (!errors?.length || response.body.kind !== 'single') return;
        if (response.http.status && response.http.status !== 200) return;
        const first = response.body.singleResult.errors?.[0]?.extensions?.code;
        response.http.status = isErrorCode(first) ? HTTP_STATUS[first] : 500;
      },
    };
  },
};

export async function createServer(app: App): Promise<KeywardServer> {
  const schema = await buildKeywardSchema();
  const expressApp = express();
  const httpServer = http.createServer(expressApp);
  expressApp.disable('x-powered-by');
  expressApp.set('trust proxy', app.config.trustProxy);

  const inFlight = new InFlight();
  const apollo = new ApolloServer<Context>({
    schema,
    introspection: app.config.introspection,
    csrfPrevention: true,
    allowBatchedHttpRequests: false,
    includeStacktraceInErrorResponses: false,
    hideSchemaDetailsFromClientErrors: !app.config.introspection,
    formatError: formatErrorFor(app),
    // Order matters: the status plugin sets the HTTP status the metering plugin records.
    plugins: [ApolloServerPluginDrainHttpServer({ httpServer }), ApolloServerPluginLandingPageDisabled(), httpStatusPlugin, meteringPlugin, inFlight.plugin],
  });
  await apollo.start();
  const live = attachLiveServer(app, httpServer, schema, GRAPHQL_PATH);

  expressApp.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  expressApp.get('/readyz', async (_req, res) => {
    const database = await app.dataSource.query('SELECT 1').then(() => true, (error: unknown) => {
      app.logger.warn({ err: error }, 'readiness check: database unreachable');
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
  expressApp.use(GRAPHIQL_ASSETS_PATH, graphiqlAssets());
  expressApp.get(GRAPHQL_PATH, (req, res, next) => {
    if (!wantsGraphiql(req)) return next();
    res.type('html').send(graphiqlPage(GRAPHQL_PATH));
  });
  expressApp.use(
    GRAPHQL_PATH,
    express.json({ limit: MAX_BODY_BYTES }),
    expressMiddleware(apollo, {
      context: async ({ req }) => buildContext(app, req.headers, req.ip ?? req.socket.remoteAddress ?? null),
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

  return {
    httpServer,
    live,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => {
          httpServer.off('error', reject);
          const address = httpServer.address();
          resolve(typeof address === 'object' && address ? address.port : port);
        });
      });
    },
    async stop() {
      await live.stop();
      await apollo.stop();
      await inFlight.settled(SHUTDOWN_GRACE_MS);
      await app.close();
    },
  };
}
