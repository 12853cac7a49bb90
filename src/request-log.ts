import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { ApolloServerPlugin } from '@apollo/server';
import type { Context } from './context';
import { Logger, writeTrustedLine } from './logger';
import { redactSecrets } from './auth/key-format';
import { operationLabel, rootFields } from './graphql-limits';

export const REQUEST_ID_HEADER = 'X-Request-Id';

/** A client's request id is kept only if it is this harmless (no spaces, quotes or control characters). */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The client's X-Request-Id when it looks safe, else a fresh UUID. An id that contains
 * something shaped like an API key is replaced too: the id is bound to every log line of the
 * request, where a secret must never appear.
 */
export function requestIdFrom(headers: IncomingHttpHeaders): string {
  const raw = headers['x-request-id'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  return value !== undefined && SAFE_REQUEST_ID.test(value) && redactSecrets(value) === value ? value : randomUUID();
}

/** What one HTTP request to /graphql did, filled in as it goes and logged when it ends. */
export interface AccessRecord {
  requestId: string;
  /** app.logger with `requestId` bound. */
  logger: Logger;
  method: string;
  /** performance.now() when the request arrived. */
  started: number;
  /** The context the operation ran with; null when the request never reached GraphQL (413, bad JSON…). */
  context: Context | null;
  /** The operation's name, or its root fields joined by "+" when anonymous. */
  operationName: string | null;
  /** query | mutation | subscription; null when the document did not parse or validate. */
  operationType: string | null;
}

/**
 * Access records by the request's logger: Apollo hands plugins a shallow copy of the context
 * the context function built, and the copy and the original share the logger.
 */
const records = new WeakMap<Logger, AccessRecord>();

function recordOf(res: Response): AccessRecord | undefined {
  return res.locals.access as AccessRecord | undefined;
}

/**
 * The request id and logger a GraphQL context gets (they were set up by `requestLog`), and a
 * hook that notes the context on the access record as soon as it exists (a request refused
 * while its key is authenticated still logs which key it was).
 */
export function requestScope(res: Response, fallback: Logger): { requestId: string; logger: Logger; onContext?: (context: Context) => void } {
  const access = recordOf(res);
  if (access) return { requestId: access.requestId, logger: access.logger, onContext: (context) => { access.context = context; } };
  const requestId = randomUUID();
  return { requestId, logger: fallback.child({ requestId }) };
}

/**
 * Express middleware for the GraphQL route: gives every request an id (the client's
 * X-Request-Id when it matches [A-Za-z0-9._-]{1,64}, else a UUID), echoes it in the response's
 * X-Request-Id, and writes one access line at info level when the response is done: method,
 * operation, status, duration, request id and the calling key's id (never the secret).
 * `onDone` is told of every finished request (metrics).
 */
export function requestLog(rootLogger: Logger, onDone?: (access: AccessRecord, status: number, seconds: number) => void): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const requestId = requestIdFrom(req.headers);
    const access: AccessRecord = {
      requestId,
      logger: rootLogger.child({ requestId }),
      method: req.method,
      started: performance.now(),
      context: null,
      operationName: null,
      operationType: null,
    };
    res.locals.access = access;
    records.set(access.logger, access);
    res.setHeader(REQUEST_ID_HEADER, requestId);
    res.once('close', () => {
      const seconds = (performance.now() - access.started) / 1000;
      const status = res.statusCode;
      onDone?.(access, status, seconds);
      const context = access.context;
      // Every field is the server's own or validated (request id, operation label): a trusted line.
      writeTrustedLine(access.logger, 'info', {
        method: access.method,
        operation: access.operationName,
        operationType: access.operationType,
        status,
        durationMs: Math.round(seconds * 1e6) / 1e3,
        keyId: context?.caller?.key.id ?? context?.verification?.key?.id ?? null,
        ...(!res.writableFinished && { aborted: true }),
      }, 'graphql request');
    });
    next();
  };
}

/** Notes each operation's context, name and type on its access record for the access line. */
export const accessLogPlugin: ApolloServerPlugin<Context> = {
  async requestDidStart({ contextValue }) {
    const access = records.get(contextValue.logger);
    if (!access) return;
    access.context = contextValue;
    return {
      async didResolveOperation({ operation, document }) {
        if (!operation) return;
        access.operationType = operation.operation;
        access.operationName = operationLabel(operation, rootFields(operation, document));
      },
    };
  },
};
