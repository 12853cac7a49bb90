import { Command, Option } from 'commander';
import type { SessionBalanceQuery, SessionFieldsFragment, SessionStatus } from '@keyward/client';
import { CliContext, ConnectionOptions, connect, notFound, withConnection } from '../context';
import { choice, integer } from '../option-parsers';
import { formatDate, printFields, printJson, printPageFooter, printTable, Writer } from '../output';

const STATUSES: readonly SessionStatus[] = ['ACTIVE', 'EXHAUSTED', 'EXPIRED', 'TERMINATED'];

/** `keyward sessions create|list|show|current|terminate|credit|balance` */
export function sessionsCommand(program: Command, context: CliContext): void {
  const sessions = program.command('sessions').description("Metered sessions of the caller's organization");
  const { io } = context;

  withConnection(sessions.command('create'))
    .description("Start a session for the calling key, spending one of the organization's session credits")
    .option('--token-limit <n>', 'token budget (default 100000)', integer)
    .option('--ttl-seconds <n>', 'lifetime in seconds (default 86400)', integer)
    .action(async (options: ConnectionOptions & { tokenLimit?: number; ttlSeconds?: number }) => {
      const session = await connect(context, options).createSession({ tokenLimit: options.tokenLimit, ttlSeconds: options.ttlSeconds });
      if (options.json) return printJson(io, session);
      io.out(`Started session ${session.id}.`);
      io.out('');
      printSession(io, session);
    });

  withConnection(sessions.command('list'))
    .description('List sessions, newest first')
    .addOption(new Option('--status <status>', 'ACTIVE, EXHAUSTED, EXPIRED or TERMINATED').argParser(choice(STATUSES)))
    .option('--first <n>', 'page size, 1..500 (default 50)', integer)
    .option('--after <cursor>', 'cursor of the previous page (its "Next page" line)')
    .action(async (options: ConnectionOptions & { status?: SessionStatus; first?: number; after?: string }) => {
      const page = await connect(context, options).sessions({ status: options.status, first: options.first, after: options.after });
      if (options.json) return printJson(io, page);
      printTable(
        io,
        ['id', 'status', 'key', 'tokens used', 'token limit', 'requests', 'started', 'expires'],
        page.nodes.map((session) => [
          session.id,
          session.status,
          session.apiKeyId,
          String(session.tokensUsed),
          String(session.tokenLimit),
          String(session.requestCount),
          formatDate(session.startedAt),
          formatDate(session.expiresAt),
        ]),
        'No sessions.',
      );
      printPageFooter(io, page);
    });

  withConnection(sessions.command('show'))
    .description('Show a session')
    .argument('<id>', 'session id')
    .action(async (id: string, options: ConnectionOptions) => {
      const session = await connect(context, options).session(id);
      if (!session) throw notFound('session', id);
      if (options.json) return printJson(io, session);
      printSession(io, session);
    });

  withConnection(sessions.command('current'))
    .description("Show the organization's active session, if any (--json prints null when there is none)")
    .action(async (options: ConnectionOptions) => {
      const session = await connect(context, options).currentSession();
      if (options.json) return printJson(io, session);
      if (!session) {
        io.out('No active session.');
        return;
      }
      printSession(io, session);
    });

  withConnection(sessions.command('terminate'))
    .description('End a session now (TERMINATED)')
    .argument('<id>', 'session id')
    .action(async (id: string, options: ConnectionOptions) => {
      const session = await connect(context, options).terminateSession(id);
      if (options.json) return printJson(io, session);
      io.out(`Session ${session.id} is now ${session.status}.`);
    });

  withConnection(sessions.command('credit'))
    .description("Add purchased sessions to an organization's balance (payment hook; needs platform:admin)")
    .requiredOption('--org <id>', 'organization id (org_…)')
    .requiredOption('--sessions <n>', 'number of sessions bought', integer)
    .requiredOption('--idempotency-key <key>', 'e.g. the payment id: the same key twice adds once')
    .action(async (options: ConnectionOptions & { org: string; sessions: number; idempotencyKey: string }) => {
      const balance = await connect(context, options).addSessionCredits({ organizationId: options.org, sessions: options.sessions, idempotencyKey: options.idempotencyKey });
      if (options.json) return printJson(io, balance);
      io.out(`Credited organization ${balance.organizationId}.`);
      io.out('');
      printBalance(io, balance);
    });

  withConnection(sessions.command('balance'))
    .description("Session credits of an organization (default: the caller's)")
    .option('--org <id>', 'organization id (org_…)')
    .action(async (options: ConnectionOptions & { org?: string }) => {
      const balance = await connect(context, options).sessionBalance(options.org);
      if (options.json) return printJson(io, balance);
      printBalance(io, balance);
    });
}

function printBalance(writer: Writer, balance: SessionBalanceQuery['sessionBalance']): void {
  printFields(writer, [
    ['Organization', balance.organizationId],
    ['Available', String(balance.available)],
    ['Purchased', String(balance.purchased)],
    ['Used', String(balance.used)],
  ]);
}

export function printSession(writer: Writer, session: SessionFieldsFragment): void {
  printFields(writer, [
    ['ID', session.id],
    ['Status', session.status],
    ['Organization', session.organizationId],
    ['Key', session.apiKeyId],
    ['Tokens', `${session.tokensUsed} used of ${session.tokenLimit} (${session.tokensRemaining} left)`],
    ['Requests', String(session.requestCount)],
    ['Price (USD)', String(session.priceUsd)],
    ['Started', formatDate(session.startedAt)],
    ['Expires', formatDate(session.expiresAt)],
    ['Ended', session.endedAt ? formatDate(session.endedAt) : undefined],
  ]);
}
