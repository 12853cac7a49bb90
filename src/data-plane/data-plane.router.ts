import express, { NextFunction, Request, Response, Router } from 'express';
import type { GraphQLSchema } from 'graphql';
import { App, reportUnreachable } from '../app';
import type { Actor } from '../auth/actor';
import { buildContext, Caller } from '../context';
import { AccessRecord, requestScope } from '../request-log';
import { meteringHeaders, recordMeteredCall } from '../usage/metering.plugin';
import { REFUSAL_ERROR } from '../auth/verify-code';
import type { VerifyKey } from '../auth/verify-key.service';
import type { RecordUsage } from '../usage/usage.service';
import type { ReserveUsage, SettleUsage } from '../usage/usage-reservation.service';
import { isStoreUnreachable } from '../db/store-errors';
import { ErrorCode, HTTP_STATUS, KeywardError } from '../errors';
import { inputCoercer, outputSerializer } from './wire-json';
import { DataPlaneOperation, openApiDocument } from './openapi';

/**
 * The plain-HTTP data plane: what a platform's services call on every request, from any
 * language, without GraphQL (two curls: create a key, verify it).
 *
 *   POST /v1/verify        the verifyKey mutation       (caller needs keys:verify)
 *   POST /v1/usage         the recordUsage mutation     (caller needs usage:write)
 *   POST /v1/reserve       the reserveUsage mutation    (caller needs keys:verify)
 *   POST /v1/settle        the settleUsage mutation     (caller needs usage:write)
 *   GET  /v1/openapi.json  an OpenAPI 3.1 document of both (public)
 *
 * Each route is its GraphQL mutation without the GraphQL: the caller's key is authenticated by
 * the same context builder (failed-auth limit, pipeline steps 1–5) and metered by the same
 * consuming steps (its scope, rate limits and quotas, one usage event per call, the same
 * X-RateLimit-* headers), the body is coerced and the result serialized by the schema's own
 * types (wire-json.ts), and the services do the rest. A refused key being verified is data
 * (200, valid: false); the caller's own problems answer `{ "error": { "code", "message" } }`
 * with the code's HTTP status and, for 429, Retry-After.
 */
export const DATA_PLANE_PATH = '/v1';

export const DATA_PLANE_OPERATIONS: readonly DataPlaneOperation[] = [
  { path: '/v1/verify', mutation: 'verifyKey', scope: 'keys:verify', summary: 'Verify a key presented to your API', input: 'VerifyKeyInput', result: 'VerifyKeyResult' },
  { path: '/v1/usage', mutation: 'recordUsage', scope: 'usage:write', summary: 'Record what a request used (tokens, cost), once per idempotencyKey', input: 'RecordUsageInput', result: 'UsageRecorded' },
  {
    path: '/v1/reserve', mutation: 'reserveUsage', scope: 'keys:verify', input: 'ReserveUsageInput', result: 'UsageReservation',
    summary: 'Verify a key and hold estimated tokens / dollars against its budgets before calling the model',
  },
  { path: '/v1/settle', mutation: 'settleUsage', scope: 'usage:write', summary: "Replace a reservation's hold with the usage the provider reported", input: 'SettleUsageInput', result: 'UsageRecorded' },
];

export interface DataPlaneOptions {
  maxBodyBytes: number;
  /** Told of every call while it runs (shutdown waits for them, as for GraphQL operations). */
  track: (call: Promise<unknown>) => void;
}

/** The data plane's own version (OpenAPI info.version): changes that break clients get a /v2. */
const DATA_PLANE_VERSION = '1.0.0';

/** The error body of the data plane. */
export function dataPlaneError(res: Response, code: ErrorCode, message: string, retryAfterSeconds: number | null = null): void {
  if (retryAfterSeconds !== null) res.setHeader('retry-after', String(retryAfterSeconds));
  res.status(HTTP_STATUS[code]).json({ error: { code, message } });
}

export function dataPlaneRouter(app: App, schema: GraphQLSchema, options: DataPlaneOptions): Router {
  const router = express.Router();
  const json = express.json({ limit: options.maxBodyBytes });
  const operation = (path: string) => DATA_PLANE_OPERATIONS.find((candidate) => candidate.path === path)!;

  const verifyInput = inputCoercer<VerifyKey>(schema, 'VerifyKeyInput');
  router.post('/verify', json, route(app, schema, operation('/v1/verify'), options, (actor, body) => app.verifyKey.verify(actor, verifyInput(body))));
  const usageInput = inputCoercer<RecordUsage>(schema, 'RecordUsageInput');
  router.post('/usage', json, route(app, schema, operation('/v1/usage'), options, (actor, body) => app.usage.record(actor, usageInput(body))));
  const reserveInput = inputCoercer<ReserveUsage>(schema, 'ReserveUsageInput');
  router.post('/reserve', json, route(app, schema, operation('/v1/reserve'), options, (actor, body) => app.reservations.reserve(actor, reserveInput(body))));
  const settleInput = inputCoercer<SettleUsage>(schema, 'SettleUsageInput');
  router.post('/settle', json, route(app, schema, operation('/v1/settle'), options, (actor, body) => app.reservations.settle(actor, settleInput(body))));

  const document = JSON.stringify(openApiDocument(schema, DATA_PLANE_OPERATIONS, DATA_PLANE_VERSION));
  router.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(document);
  });

  router.use((error: Error & { type?: string; status?: number }, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    if (error.type === 'entity.too.large') return dataPlaneError(res, ErrorCode.PAYLOAD_TOO_LARGE, `The request body is larger than ${options.maxBodyBytes} bytes`);
    if (error.type === 'entity.parse.failed') return dataPlaneError(res, ErrorCode.BAD_USER_INPUT, 'The request body is not valid JSON');
    if (error.status && error.status >= 400 && error.status < 500) return dataPlaneError(res, ErrorCode.BAD_USER_INPUT, 'The request could not be read');
    app.logger.error({ err: error }, 'unhandled data plane error');
    dataPlaneError(res, ErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error');
  });
  return router;
}

/** One route: authenticate and meter the caller like a GraphQL call, run the operation, answer JSON. */
function route(app: App, schema: GraphQLSchema, operation: DataPlaneOperation, options: DataPlaneOptions, run: (actor: Actor, body: unknown) => Promise<unknown>) {
  const serialize = outputSerializer(schema, operation.result);
  const label = `POST ${operation.path}`;
  return (req: Request, res: Response) => {
    const call = (async () => {
      const startedAt = performance.now();
      const access = res.locals.access as AccessRecord | undefined;
      if (access) Object.assign(access, { operationName: label, operationType: 'mutation' });
      let answer: { status: number; body: unknown; retryAfterSeconds: number | null };
      try {
        const context = await buildContext(app, { headers: req.headers, ip: app.clientAddressOf(req) }, requestScope(res, app.logger));
        const caller = callerOf(context.caller, context.refusal?.error ?? null, operation);
        const outcome = await app.verifier.consume(caller.authenticated, { scopeRequirements: [[operation.scope]], cost: 1, operation: label });
        context.verification = outcome;
        for (const [name, value] of meteringHeaders(outcome)) res.setHeader(name, value);
        if (!outcome.valid) throw new KeywardError(REFUSAL_ERROR[outcome.code as keyof typeof REFUSAL_ERROR], outcome.reason);
        try {
          answer = { status: 200, body: serialize(await run(caller.actor, req.body)), retryAfterSeconds: null };
        } catch (error) {
          answer = errorAnswer(app, error);
        }
        recordMeteredCall(app, outcome, { operation: label, status: answer.status, isError: answer.status >= 400, startedAt });
      } catch (error) {
        answer = errorAnswer(app, error);
      }
      if (answer.status === 200) res.status(200).json(answer.body);
      else {
        const { code, message } = (answer.body as { error: { code: ErrorCode; message: string } }).error;
        dataPlaneError(res, code, message, answer.retryAfterSeconds);
      }
    })();
    options.track(call);
    return call;
  };
}

/** The authenticated caller, or the error its missing or refused key answers with. */
function callerOf(caller: Caller | null, refusal: KeywardError | null, operation: DataPlaneOperation): Caller {
  if (refusal) throw refusal;
  if (!caller) throw new KeywardError(ErrorCode.UNAUTHENTICATED, `${operation.path} needs an API key with ${operation.scope}: send "Authorization: Bearer <key>" or "X-API-Key: <key>"`);
  return caller;
}

/**
 * How an error reads on the data plane, by the rules formatError applies to GraphQL (server.ts):
 * known codes pass with their message, a store that is down is UNAVAILABLE, anything else is
 * INTERNAL_SERVER_ERROR with the details only in the log.
 */
function errorAnswer(app: App, error: unknown): { status: number; body: unknown; retryAfterSeconds: number | null } {
  const shaped = (code: ErrorCode, message: string, retryAfterSeconds: number | null = null) => ({ status: HTTP_STATUS[code], body: { error: { code, message } }, retryAfterSeconds });
  if (error instanceof KeywardError && error.code !== ErrorCode.INTERNAL_SERVER_ERROR) {
    const retryAfter = error.extensions.retryAfterSeconds;
    return shaped(error.code, error.message, typeof retryAfter === 'number' ? retryAfter : null);
  }
  if (isStoreUnreachable(error)) {
    reportUnreachable(app, error);
    return shaped(ErrorCode.UNAVAILABLE, 'A backing store (database or Redis) is unreachable; retry shortly');
  }
  app.logger.error({ err: error }, 'unexpected error');
  return shaped(ErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error');
}
