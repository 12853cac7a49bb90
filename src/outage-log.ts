import type { Logger } from './logger';

/** What an error says, in one line: its message, else the messages it aggregates, else its code. */
export function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const inner = error instanceof AggregateError ? error.errors.map(errorText).filter(Boolean).join('; ') : '';
  return error.message || inner || (error as NodeJS.ErrnoException).code || error.name;
}

/**
 * The log of one backing store's outages: one `error` line when it becomes unreachable, with the
 * error's text, and one `info` line when it answers again, however many requests or reconnection
 * attempts fail meanwhile. The owner says when the store is back (`up`).
 */
export class OutageLog {
  private since: number | null = null;
  private failures = 0;

  constructor(private readonly store: string, private readonly logger: Logger) {}

  /** A failure to reach the store: the first of an outage is logged, the rest only counted. */
  down(error: unknown, details: Record<string, unknown> = {}): void {
    this.failures += 1;
    if (this.since !== null) return;
    this.since = Date.now();
    this.logger.error({ store: this.store, error: errorText(error), ...details }, `${this.store} unreachable: ${errorText(error)}; retrying (one line per outage)`);
  }

  /** The store answers again. */
  up(): void {
    if (this.since === null) return;
    this.logger.info({ store: this.store, downForMs: Date.now() - this.since, failures: this.failures }, `${this.store} reachable again`);
    this.since = null;
    this.failures = 0;
  }
}
