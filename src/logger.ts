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

/** A field of a trusted line: primitives only (no nesting, nothing to serialize). */
export type TrustedField = string | number | boolean | null;

/**
 * Writes one line of flat, primitive fields straight to the logger's destination, in pino's own
 * format (level, time, the logger's bindings, the fields, msg), when `level` is enabled. For the
 * line written on every request (the access line): ≈ 1 µs instead of ≈ 18 µs through pino's
 * generic serializer and the deep-redaction hooks. Strings still pass redactSecrets, so the
 * promise of the hooks (no `kw_…` secret in any line) holds here too.
 */
export function writeTrustedLine(logger: Logger, level: 'info' | 'warn', fields: Readonly<Record<string, TrustedField>>, msg: string): void {
  if (!logger.isLevelEnabled(level)) return;
  let line = `{"level":${logger.levels.values[level]},"time":${Date.now()}${(logger as unknown as Record<symbol, string>)[pino.symbols.chindingsSym]}`;
  for (const name in fields) {
    const value = fields[name];
    line += `,${JSON.stringify(name)}:${typeof value === 'string' ? JSON.stringify(redactSecrets(value)) : typeof value === 'number' && !Number.isFinite(value) ? 'null' : String(value)}`;
  }
  line += `,"msg":${JSON.stringify(redactSecrets(msg))}}\n`;
  (logger as unknown as Record<symbol, { write(text: string): void }>)[pino.symbols.streamSym].write(line);
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
