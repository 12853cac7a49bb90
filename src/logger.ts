import pino, { Logger } from 'pino';
import { redactSecrets } from './api-keys/key-format';

export type { Logger };

/**
 * JSON logs. Secrets never reach them: credential headers are redacted by path, and any
 * `kw_live_…` / `kw_test_…` text in a message or string field is masked.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'headers.authorization', 'headers["x-api-key"]', 'secret', '*.secret', 'connectionParams'],
        censor: '[REDACTED]',
      },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((arg) => (typeof arg === 'string' ? redactSecrets(arg) : arg)) as Parameters<typeof method>);
        },
      },
      formatters: {
        log(object) {
          for (const [field, value] of Object.entries(object)) {
            if (typeof value === 'string') object[field] = redactSecrets(value);
          }
          return object;
        },
      },
    },
    destination,
  );
}
