import { Command } from 'commander';
import { KeywardClientError } from '@keyward/client';
import type { ApiKeyFieldsFragment, KeywardClient, QuotaFieldsFragment, RateLimitStateFieldsFragment, SessionFieldsFragment } from '@keyward/client';
import { CliContext, CliIo, ConnectionOptions, connect, notFound, withConnection } from '../context';
import { formatDate } from '../output';

/** A connection carries at most 50 subscriptions (docs/behaviour.md): 3 for the organization, the rest for keys' windows. */
const MAX_KEY_STREAMS = 47;

type EventType = 'quota' | 'rate-limit' | 'key' | 'session';

interface ListenOptions extends ConnectionOptions {
  org?: string;
  key?: string;
}

/**
 * `keyward listen [--org ID] [--key ID] [--json]`: the terminal twin of the console's event
 * feed. Streams quota, rate-limit, key and session events over graphql-ws, one line each with
 * the time it arrived; the first lines are the current state of each quota and window.
 * Ctrl-C ends it (exit 0); a refused or lost connection ends it with exit 1.
 */
export function listenCommand(program: Command, context: CliContext): void {
  const { io } = context;
  withConnection(program.command('listen'))
    .description('Stream quota, rate-limit, key and session events as they happen, one line each (Ctrl-C stops)')
    .option('--org <id>', "organization to follow (default: the caller's; another one needs platform:admin)")
    .option('--key <id>', "only this key: its quotas, rate-limit windows and changes")
    .action(async (options: ListenOptions) => {
      const client = connect(context, options);
      const stop = stopSignal(io);
      const listener = new Listener(client, io, options.json ?? false, stop.signal);
      try {
        if (options.key) await listener.followKey(options.key);
        else await listener.followOrganization(options.org);
        context.exitCode = await listener.done();
      } finally {
        stop.dispose();
        await client.close();
      }
    });
}

/** The run's stop signal: the io's, or one that Ctrl-C / SIGTERM aborts. */
function stopSignal(io: CliIo): { signal: AbortSignal; dispose: () => void } {
  if (io.stop) return { signal: io.stop, dispose: () => undefined };
  const controller = new AbortController();
  const abort = () => controller.abort();
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', abort);
      process.off('SIGTERM', abort);
    },
  };
}

class Listener {
  private readonly streams = new Set<Promise<void>>();
  private readonly keyStreams = new Set<string>();
  private readonly iterators: Array<AsyncIterator<unknown>> = [];
  private failure: KeywardClientError | Error | null = null;
  private wake: () => void = () => undefined;

  constructor(private readonly client: KeywardClient, private readonly io: CliIo, private readonly json: boolean, private readonly stop: AbortSignal) {}

  async followOrganization(requested: string | undefined): Promise<void> {
    const viewer = await this.client.viewer();
    const organizationId = requested ?? viewer.organization.id;
    const keys = await this.client.apiKeys({ filter: { organizationId, status: 'ACTIVE' }, first: MAX_KEY_STREAMS });
    this.follow('quota', this.client.subscribeQuotaChanged({ organizationId }), (quota) => this.quota(quota));
    this.follow('key', this.client.subscribeApiKeyChanged({ organizationId }), (event) => {
      this.print('key', `${event.type} ${describeKey(event.apiKey)}`, event, event.at);
      if (event.apiKey.status === 'ACTIVE') this.followWindows(event.apiKey);
    });
    this.follow('session', this.client.subscribeSessionChanged({ organizationId }), (session) => this.session(session));
    for (const key of keys.nodes) this.followWindows(key);
    const more = keys.totalCount > keys.nodes.length ? ` (the ${keys.nodes.length} newest of ${keys.totalCount} active keys)` : '';
    this.io.err(`Listening to organization ${organizationId}: quotas, keys, sessions and the rate limits of ${this.keyStreams.size} keys${more}. Ctrl-C stops.`);
  }

  async followKey(id: string): Promise<void> {
    const key = await this.client.apiKey(id);
    if (!key) throw notFound('API key', id);
    this.follow('quota', this.client.subscribeQuotaChanged({ apiKeyId: key.id }), (quota) => this.quota(quota));
    this.followWindows(key);
    this.follow('key', this.client.subscribeApiKeyChanged({ organizationId: key.organizationId }), (event) => {
      if (event.apiKey.id === key.id || event.apiKey.rotatedFromId === key.id) this.print('key', `${event.type} ${describeKey(event.apiKey)}`, event, event.at);
    });
    this.io.err(`Listening to key ${key.id} (${key.name}): its quotas, rate limits and changes. Ctrl-C stops.`);
  }

  /** Resolves with the exit code: 0 when stopped, 1 when the streams ended by themselves or failed. */
  async done(): Promise<number> {
    const stopped = new Promise<void>((resolve) => {
      if (this.stop.aborted) resolve();
      this.stop.addEventListener('abort', () => resolve(), { once: true });
    });
    const ended = new Promise<void>((resolve) => {
      this.wake = () => {
        if (this.streams.size === 0) resolve();
      };
      this.wake();
    });
    await Promise.race([stopped, ended]);
    await Promise.all(this.iterators.map((iterator) => iterator.return?.().catch(() => undefined)));
    if (this.stop.aborted) {
      this.io.err('Stopped.');
      return 0;
    }
    this.io.err(`keyward: ${this.failure ? describeError(this.failure) : 'the server ended every subscription'}`);
    return 1;
  }

  private followWindows(key: ApiKeyFieldsFragment): void {
    if (this.keyStreams.has(key.id) || this.keyStreams.size >= MAX_KEY_STREAMS) return;
    this.keyStreams.add(key.id);
    this.follow('rate-limit', this.client.subscribeRateLimitChanged(key.id), (state) => this.window(state));
  }

  /** Runs one subscription until it ends; a refusal ends only this one (noted on stderr). */
  private follow<T>(type: EventType, iterator: AsyncIterableIterator<T>, onEvent: (event: T) => void): void {
    this.iterators.push(iterator);
    const stream = (async () => {
      try {
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) onEvent(next.value);
      } catch (error) {
        if (this.stop.aborted) return;
        this.failure = error as Error;
        this.io.err(`keyward: no more ${type} events: ${describeError(error as Error)}`);
      }
    })();
    this.streams.add(stream);
    void stream.finally(() => {
      this.streams.delete(stream);
      this.wake();
    });
  }

  private quota(quota: QuotaFieldsFragment): void {
    const owner = quota.apiKeyId ? `key ${quota.apiKeyId}` : `organization ${quota.organizationId}`;
    this.print('quota', `${quota.meter}/${quota.period} ${quota.used} of ${quota.limit} used (${quota.percentUsed}%), ${quota.remaining} left — ${owner}`, quota);
  }

  private window(state: RateLimitStateFieldsFragment): void {
    this.print('rate-limit', `${state.name} ${state.remaining} of ${state.limit} left (per ${state.windowSeconds} s, resets ${formatDate(state.resetAt)}) — key ${state.apiKeyId}`, state);
  }

  private session(session: SessionFieldsFragment): void {
    this.print('session', `${session.status} ${session.id} ${session.tokensUsed} of ${session.tokenLimit} tokens, ${session.requestCount} requests — key ${session.apiKeyId}`, session);
  }

  /** One line: the local time it arrived, the type, then text (or one JSON object with --json). */
  private print(type: EventType, text: string, data: unknown, at?: string): void {
    const received = new Date().toISOString();
    if (this.json) this.io.out(JSON.stringify({ receivedAt: received, type, ...(at && { at }), data }));
    else this.io.out(`${received}  ${type.padEnd(10)}  ${text}`);
  }
}

function describeKey(key: ApiKeyFieldsFragment): string {
  return `${key.id} "${key.name}" ${key.hint} ${key.status}`;
}

function describeError(error: Error): string {
  return error instanceof KeywardClientError ? `${error.message} (${error.code})` : error.message;
}
