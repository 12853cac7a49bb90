import { Command } from 'commander';
import { CliContext, ConnectionOptions, connect, withConnection } from '../context';
import { collect, integer } from '../option-parsers';
import { formatDate, formatList, formatValue, printFields, printJson, printTable } from '../output';

interface VerifyOptions extends ConnectionOptions {
  scope?: string[];
  cost?: number;
  ip?: string;
  operation?: string;
  requireSession?: boolean;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += chunk.toString();
  return text;
}

/** `keyward verify <key> [--scope …] [--cost N]`: exit code 0 when VALID, 1 when refused. */
export function verifyCommand(program: Command, context: CliContext): void {
  const { io } = context;
  withConnection(program.command('verify'))
    .description('Verify a key the way your API would (counts against its rate limits and quotas); exits 0 when valid, 1 when refused')
    .argument('<key>', 'the secret to check (kw_live_… / kw_test_…), or - to read it from standard input')
    .option('--scope <scope...>', 'scope the key must hold (repeatable; all are required)', collect)
    .option('--cost <n>', 'units taken from rate limits and REQUESTS quotas (default 1)', integer)
    .option('--ip <address>', "client address, checked against the key's IP allowlist")
    .option('--operation <name>', 'what is accessed, for usage breakdowns (e.g. "POST /v1/predict")')
    .option('--require-session', 'refuse unless the organization has an active session')
    .action(async (key: string, options: VerifyOptions) => {
      const secret = key === '-' ? (await (io.readStdin ?? (() => readAll(process.stdin)))()).trim() : key;
      const result = await connect(context, options).verifyKey({
        key: secret,
        requiredScopes: options.scope,
        cost: options.cost,
        ip: options.ip,
        operation: options.operation,
        requireSession: options.requireSession,
      });
      if (!result.valid) context.exitCode = 1;
      if (options.json) return printJson(io, result);
      if (!result.valid) {
        io.out(`Refused: ${result.code}`);
        return;
      }
      io.out(`Valid: ${result.code}`);
      io.out('');
      printFields(io, [
        ['Key', formatValue(result.keyId)],
        ['Organization', formatValue(result.organizationId)],
        ['Environment', formatValue(result.environment)],
        ['Scopes', formatList(result.scopes)],
        ['Expires', result.expiresAt ? formatDate(result.expiresAt) : 'never'],
        ['Session', result.session ? `${result.session.id} (${result.session.tokensRemaining} tokens left)` : undefined],
      ]);
      if (result.rateLimits.length > 0) {
        io.out('');
        io.out('Rate limits:');
        printTable(io, ['name', 'limit', 'remaining', 'window s', 'resets at'], result.rateLimits.map((limit) => [limit.name, String(limit.limit), String(limit.remaining), String(limit.windowSeconds), formatDate(limit.resetAt)]), '');
      }
    });
}
