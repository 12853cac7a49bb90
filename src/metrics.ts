import { DataSource } from 'typeorm';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { App } from './app';
import type { LiveServer } from './live/ws-server';
import { VerifyCode } from './auth/verify-code';
import type { AccessRecord } from './request-log';

/**
 * Prometheus metrics of one keyward (served unauthenticated at /metrics, like /healthz:
 * restrict it at your network edge). Each App has its own Registry, never prom-client's
 * global one, so several servers in one process (tests) do not mix their numbers.
 *
 *  keyward_verifications_total{code}            every run of the verification pipeline, by outcome
 *                                               (VALID, a refusal code, or ERROR when it threw)
 *  keyward_verification_duration_seconds        pipeline latency (histogram)
 *  keyward_http_request_duration_seconds{operation_type}
 *                                               HTTP requests to /graphql, by query | mutation |
 *                                               subscription | none (did not parse, 413, …)
 *  keyward_rate_limit_refusals_total{limiter}   key: a key's rate limit refused (verifyKey or a call);
 *                                               public: the per-IP limit of @public fields;
 *                                               auth_failures: an address blocked after too many
 *                                               failed authentications
 *  keyward_active_subscriptions                 GraphQL subscriptions open over WebSocket
 *  keyward_ws_connections                       WebSocket connections that passed authentication
 *  keyward_usage_buffer_depth                   usage events and rate-limit log rows waiting to be written
 *  keyward_db_pool_connections{state}           MySQL/MariaDB: max, open, in_use, idle, waiting (read from
 *                                               mysql2's pool); SQLite: one connection (max = open = 1)
 *  keyward_webhook_attempts_total{result}       webhook delivery attempts: delivered (2xx), http_error (any
 *                                               other answer), timeout, network_error, blocked (SSRF guard)
 *  keyward_webhook_deliveries_failed_total      deliveries that used up their retries (FAILED)
 *  keyward_webhook_attempt_duration_seconds     webhook attempt latency (histogram)
 * plus Node's process metrics (process_*, nodejs_*).
 */
export class Metrics {
  readonly registry = new Registry();
  private live: LiveServer | null = null;

  private readonly verifications = new Counter({
    name: 'keyward_verifications_total',
    help: 'Key verifications (verifyKey, key-authenticated GraphQL calls, WebSocket connects) by outcome code; ERROR: the pipeline threw (a backing store down).',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  private readonly verificationDuration = new Histogram({
    name: 'keyward_verification_duration_seconds',
    help: 'Time taken by the verification pipeline.',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  private readonly httpDuration = new Histogram({
    name: 'keyward_http_request_duration_seconds',
    help: 'HTTP requests to the GraphQL endpoint, from arrival to the end of the response, by operation type (none: it never became an operation).',
    labelNames: ['operation_type'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  private readonly rateLimitRefusals = new Counter({
    name: 'keyward_rate_limit_refusals_total',
    help: "Requests refused by a rate limit: limiter=key (an API key's limits), public (per client IP on @public fields), auth_failures (a client IP with too many failed authentications).",
    labelNames: ['limiter'] as const,
    registers: [this.registry],
  });

  private readonly webhookAttempts = new Counter({
    name: 'keyward_webhook_attempts_total',
    help: 'Webhook delivery attempts by result: delivered (2xx), http_error (any other answer, redirects included), timeout, network_error, blocked (a private address).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  private readonly webhookDeliveriesFailed = new Counter({
    name: 'keyward_webhook_deliveries_failed_total',
    help: 'Webhook deliveries whose last scheduled attempt failed (status FAILED).',
    registers: [this.registry],
  });

  private readonly webhookAttemptDuration = new Histogram({
    name: 'keyward_webhook_attempt_duration_seconds',
    help: 'Time taken by a webhook delivery attempt, from connecting to the end of the answer (at most 10 s).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  constructor(app: App) {
    const self = this;
    for (const code of [...Object.values(VerifyCode), 'ERROR']) this.verifications.inc({ code }, 0);
    for (const limiter of ['key', 'public', 'auth_failures']) this.rateLimitRefusals.inc({ limiter }, 0);
    for (const type of ['query', 'mutation', 'subscription', 'none']) this.httpDuration.zero({ operation_type: type });
    for (const result of ['delivered', 'http_error', 'timeout', 'network_error', 'blocked']) this.webhookAttempts.inc({ result }, 0);

    new Gauge({
      name: 'keyward_active_subscriptions',
      help: 'GraphQL subscriptions currently open over WebSocket.',
      registers: [this.registry],
      collect() {
        this.set(self.live?.subscriptions ?? 0);
      },
    });
    new Gauge({
      name: 'keyward_ws_connections',
      help: 'WebSocket connections currently open that passed authentication.',
      registers: [this.registry],
      collect() {
        this.set(self.live?.connections ?? 0);
      },
    });
    new Gauge({
      name: 'keyward_usage_buffer_depth',
      help: 'Usage events and rate-limit log rows buffered in memory, not yet written to the database.',
      registers: [this.registry],
      collect() {
        this.set(app.usageBuffer.depth);
      },
    });
    new Gauge({
      name: 'keyward_db_pool_connections',
      help: 'Database connections by state: max, open, in_use, idle, waiting (requests queued for a connection). SQLite has one connection.',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        for (const [state, value] of Object.entries(dbPoolState(app.dataSource))) this.set({ state }, value);
      },
    });

    app.verifier.observer = (code, seconds) => {
      this.verifications.inc({ code });
      this.verificationDuration.observe(seconds);
      if (code === VerifyCode.RATE_LIMITED) this.rateLimitRefusals.inc({ limiter: 'key' });
    };
    app.webhookDispatcher.observer = ({ result, seconds, gaveUp }) => {
      this.webhookAttempts.inc({ result });
      this.webhookAttemptDuration.observe(seconds);
      if (gaveUp) this.webhookDeliveriesFailed.inc();
    };
  }

  /** The WebSocket side, once attached (subscription and connection gauges). */
  observeLive(live: LiveServer): void {
    this.live = live;
  }

  /** A finished HTTP request to /graphql (see requestLog). */
  observeRequest(access: AccessRecord, _status: number, seconds: number): void {
    this.httpDuration.observe({ operation_type: access.operationType ?? 'none' }, seconds);
    // The per-IP limits (public fields; failed authentications) are not part of the key pipeline:
    // the metering plugin leaves their refusal (without a key) on the context. Key refusals
    // were counted by the verifier.
    const context = access.context;
    const outcome = context?.verification;
    if (context && outcome && !outcome.key && outcome.code === VerifyCode.RATE_LIMITED) {
      this.rateLimitRefusals.inc({ limiter: context.keyPresented ? 'auth_failures' : 'public' });
    }
  }

  readonly contentType = this.registry.contentType;

  /** The Prometheus text exposition: this app's metrics, then the process's. */
  async render(): Promise<string> {
    return (await this.registry.metrics()) + (await processRegistry().metrics());
  }
}

/**
 * Node's process metrics (CPU, memory, event-loop lag, GC…) belong to the process, not to an
 * App: collected once per process into a registry of their own (collectDefaultMetrics starts
 * an event-loop monitor and a GC observer that are never stopped, so not one per App), created
 * on the first scrape.
 */
let processMetrics: Registry | null = null;
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

interface Mysql2Pool {
  config?: { connectionLimit?: number };
  _allConnections?: { length: number };
  _freeConnections?: { length: number };
  _connectionQueue?: { length: number };
}

/**
 * Connections of the database pool. mysql2 does not expose its pool's counters publicly; they
 * are read from its (stable since mysql2 1.x) internal queues, and only `max` is reported if
 * they ever go away.
 */
export function dbPoolState(dataSource: DataSource): Record<string, number> {
  if (dataSource.options.type === 'better-sqlite3') {
    const open = dataSource.isInitialized ? 1 : 0;
    return { max: 1, open };
  }
  const pool = (dataSource.driver as unknown as { pool?: Mysql2Pool }).pool;
  const max = pool?.config?.connectionLimit ?? (dataSource.options as { poolSize?: number }).poolSize ?? 10;
  if (!pool?._allConnections || !pool._freeConnections) return { max };
  const open = pool._allConnections.length;
  const idle = pool._freeConnections.length;
  return { max, open, in_use: open - idle, idle, waiting: pool._connectionQueue?.length ?? 0 };
}
