import 'reflect-metadata';
import { Command, CommanderError } from 'commander';
import { KeywardClientError } from '@keyward/client';
import { loadDotEnv } from '../config';
import { addConnectionOptions, CliContext, CliIo, DEFAULT_URL } from './context';
import { initCommand } from './commands/init';
import { migrateCommand } from './commands/migrate';
import { orgsCommand } from './commands/orgs';
import { keysCommand } from './commands/keys';
import { sessionsCommand } from './commands/sessions';
import { usageCommand } from './commands/usage';
import { verifyCommand } from './commands/verify';
import { listenCommand } from './commands/listen';

export type { CliIo };

const processIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
};

/** Exit code of a usage error (unknown command or option, missing or invalid argument). */
export const USAGE_ERROR_EXIT_CODE = 2;

/**
 * Runs the CLI with `argv` (without `node` and the script); resolves to the exit code:
 * 0 on success, 1 when keyward refused or failed (printed as `keyward: <message> (<CODE>)`),
 * 2 on a usage error.
 */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const context: CliContext = { io, exitCode: 0 };
  const program = new Command()
    .name('keyward')
    .description('keyward: API-key management server')
    .addHelpText(
      'after',
      [
        '',
        'init and migrate work on the database directly (DATABASE_URL, KEYWARD_DATA_DIR, KEYWARD_PEPPER).',
        'Every other command calls a running keyward through the typed client:',
        `  KEYWARD_URL      GraphQL endpoint (default ${DEFAULT_URL}), or --url`,
        '  KEYWARD_API_KEY  key to call with, or --api-key',
        'Each of them takes --json (one JSON document on stdout). Exit codes: 0 ok, 1 refused or failed',
        '(stderr: "keyward: <message> (<CODE>)"), 2 usage error. "keyward <command> --help" for details.',
      ].join('\n'),
    )
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ writeOut: (text) => io.out(text.trimEnd()), writeErr: (text) => io.err(text.trimEnd()) });

  initCommand(program, context);
  migrateCommand(program, context);
  orgsCommand(program, context);
  keysCommand(program, context);
  sessionsCommand(program, context);
  usageCommand(program, context);
  verifyCommand(program, context);
  listenCommand(program, context);
  addConnectionOptions(program);

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : USAGE_ERROR_EXIT_CODE;
    if (error instanceof KeywardClientError) io.err(`keyward: ${error.message} (${error.code})`);
    else io.err(`keyward: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  return context.exitCode;
}

if (require.main === module) {
  loadDotEnv();
  runCli(process.argv.slice(2)).then((code) => process.exit(code));
}
