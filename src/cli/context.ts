import { Command } from 'commander';
import { ErrorCode, KeywardClient, KeywardClientError } from '@keyward/client';

/** Where the CLI writes and what it reads; tests pass their own. */
export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
  /** Reads all of standard input (for `verify -`); default process.stdin. */
  readStdin?: () => Promise<string>;
  /** Ends a command that runs until stopped (`listen`); default: SIGINT (Ctrl-C) or SIGTERM. */
  stop?: AbortSignal;
}

/** Shared by every command of one run: the io and the exit code the run ends with. */
export interface CliContext {
  io: CliIo;
  exitCode: number;
}

/** Options every command that talks to a server accepts. */
export interface ConnectionOptions {
  json?: boolean;
  url?: string;
  apiKey?: string;
}

export const DEFAULT_URL = 'http://localhost:4000/graphql';

const connected = new WeakSet<Command>();

/**
 * Marks a command as one that calls a running keyward: addConnectionOptions gives it --json,
 * --url and --api-key (after its own options, so they come last in its help).
 */
export function withConnection(command: Command): Command {
  connected.add(command);
  return command;
}

/** Adds --json, --url and --api-key to every command under `root` marked by withConnection. */
export function addConnectionOptions(root: Command): void {
  for (const command of root.commands) {
    if (connected.has(command)) {
      command
        .option('--json', 'print the API result as one JSON document')
        .option('--url <url>', `GraphQL endpoint (default: $KEYWARD_URL or ${DEFAULT_URL})`)
        .option('--api-key <secret>', 'key to call with (default: $KEYWARD_API_KEY, preferred: arguments are visible to other local users)');
    }
    addConnectionOptions(command);
  }
}

/** A typed client for the command's --url/--api-key, else KEYWARD_URL/KEYWARD_API_KEY. */
export function connect(context: CliContext, options: ConnectionOptions): KeywardClient {
  const url = checkedUrl(options.url ?? nonEmpty(context.io.env.KEYWARD_URL) ?? DEFAULT_URL, options.url ? '--url' : 'KEYWARD_URL');
  const apiKey = options.apiKey ?? nonEmpty(context.io.env.KEYWARD_API_KEY);
  if (!apiKey) throw new KeywardClientError(ErrorCode.UNAUTHENTICATED, 'no API key: set KEYWARD_API_KEY or pass --api-key');
  return new KeywardClient({ url, apiKey });
}

/**
 * The endpoint as given, refused with a hint when it is a server's root: keyward answers the
 * API on /graphql, and its root only redirects browsers to the console.
 */
function checkedUrl(url: string, source: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new KeywardClientError('BAD_USER_INPUT', `${source} "${url}" is not a URL; it should look like ${DEFAULT_URL}`);
  }
  if (!/^https?:$/.test(parsed.protocol)) throw new KeywardClientError('BAD_USER_INPUT', `${source} "${url}" must start with http:// or https://, e.g. ${DEFAULT_URL}`);
  if (parsed.pathname === '/' || parsed.pathname === '') {
    parsed.pathname = '/graphql';
    throw new KeywardClientError('BAD_USER_INPUT', `${source} ${url} has no path: the GraphQL endpoint is /graphql, e.g. ${parsed.toString()}`);
  }
  return url;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/** Thrown for "the API answered null": an unknown id the server does not report as an error. */
export function notFound(what: string, id: string): KeywardClientError {
  return new KeywardClientError(ErrorCode.NOT_FOUND, `${what} ${id} not found`);
}
