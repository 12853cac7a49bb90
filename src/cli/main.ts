import 'reflect-metadata';
import { Command, CommanderError } from 'commander';
import { loadDotEnv, parseConfig } from '../config';
import { createLogger } from '../logger';
import { createApp } from '../app';
import { openDatabase } from '../db/data-source';
import { AlreadyInitializedError, DEFAULT_PLATFORM_NAME, initPlatform } from '../organizations/platform-bootstrap';

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
}

const processIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
};

/** Runs the CLI with `argv` (without `node` and the script); resolves to the exit code. */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  let exitCode = 0;
  const program = new Command()
    .name('keyward')
    .description('keyward: API-key management server')
    .exitOverride()
    .configureOutput({ writeOut: (text) => io.out(text.trimEnd()), writeErr: (text) => io.err(text.trimEnd()) });

  program
    .command('init')
    .description("Create the platform organization and its '*' key; prints the secret once")
    .option('--json', 'print exactly one JSON line: {"organizationId","apiKeyId","secret"}')
    .option('--org-name <name>', 'name of the platform organization', DEFAULT_PLATFORM_NAME)
    .action(async (options: { json?: boolean; orgName: string }) => {
      const config = parseConfig(io.env);
      const app = await createApp(config, createLogger('silent'));
      try {
        const created = await initPlatform(app, options.orgName);
        if (options.json) {
          io.out(JSON.stringify(created));
        } else {
          io.out(`Platform organization: ${created.organizationId}`);
          io.out(`Admin key id:          ${created.apiKeyId}`);
          io.out(`Admin key secret:      ${created.secret}`);
          io.out('');
          io.out('Store the secret now: it is shown only this once. Use it as "Authorization: Bearer <secret>".');
        }
      } catch (error) {
        if (!(error instanceof AlreadyInitializedError)) throw error;
        io.err(error.message);
        exitCode = 1;
      } finally {
        await app.close();
      }
    });

  program
    .command('migrate')
    .description('Apply pending database migrations (start and init do this too)')
    .action(async () => {
      const dataSource = await openDatabase(parseConfig(io.env).database);
      await dataSource.destroy();
      io.out('migrations applied');
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    io.err(`keyward: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  return exitCode;
}

if (require.main === module) {
  loadDotEnv();
  runCli(process.argv.slice(2)).then((code) => process.exit(code));
}
