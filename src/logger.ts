import pino, { Logger } from 'pino';
import { redactSecrets } from './auth/key-format';

export type { Logger };

/**
 * A copy of `value` with every string masked by redactSecrets, however deeply nested. Errors are
 * serialised first (type, message, stack, code, cause): their own enumerable fields alone would
 * log an ECONNRESET as `{"code":"ECONNRESET"}` and an AggregateError as `{}`.
 */
export function redactDeep(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (value instanceof Error) return redactDeep(pino.stdSerializers.err(value), depth);
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [field, item] of Object.entries(value)) out[field] = redactDeep(item, depth + 1);
  return out;
}

/**
 * JSON logs. Secrets never reach them: credential headers are redacted by path, and any
 * `kw_live_…` / `kw_test_…` text anywhere in a line (message, nested field, error message
 * or stack) is masked.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'headers.authorization', 'headers["x-api-key"]', 'secret', '*.secret', 'connectionParams'],
        censor: '[REDACTED]',
      },
      serializers: {
        // formatters.log has already turned an Error into its serialised form (redactDeep).
        err: (error: unknown) => redactDeep(error),
      },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((arg) => (typeof arg === 'string' ? redactSecrets(arg) : arg)) as Parameters<typeof method>);
        },
      },
      formatters: {
        log: (object) => redactDeep(object) as Record<string, unknown>,
      },
    },
    destination,
  );
}
