import { Command } from 'commander';
import type { CliContext } from '../context';
import { describeDatabase, withDatabase } from '../direct';

/** `keyward init`: creates the platform organization and its '*' key directly in the database. */
export function initCommand(program: Command, context: CliContext): void {
  const { io } = context;
  program
    .command('init')
    .description("Create the platform organization and its '*' key; prints the secret once")
    .option('--json', 'print exactly one JSON line: {"organizationId","apiKeyId","secret"} (the database used goes to stderr)')
    .option('--org-name <name>', 'name of the platform organization (default: "Platform")')
    .addHelpText('after', [
      '',
      'Lost the secret? Make another key for the platform organization on the same database (audited as',
      'api_key.create by no key), then revoke the lost one with it:',
      "  npx keyward keys create --direct --name \"platform admin (recovered)\" --scope '*' --no-rate-limit",
    ].join('\n'))
    .action(async (options: { json?: boolean; orgName?: string }) => {
      const { AlreadyInitializedError, initPlatform } = await import('../../organizations/platform-bootstrap');
      await withDatabase(io, async (app, config) => {
        const database = describeDatabase(config);
        try {
          const created = await initPlatform(app, options.orgName);
          if (options.json) {
            io.out(JSON.stringify(created));
            io.err(`keyward: initialized ${database}`);
          } else {
            io.out(`Database:              ${database}`);
            io.out(`Platform organization: ${created.organizationId}`);
            io.out(`Admin key id:          ${created.apiKeyId}`);
            io.out(`Admin key secret:      ${created.secret}`);
            io.out('');
            io.out('Store the secret now: it is shown only this once. Use it as "Authorization: Bearer <secret>",');
            io.out('or sign in with it in the console (`npm start`, then http://localhost:4000/console with the default PORT).');
            io.out('Lost it later? `npx keyward keys create --direct --help` makes another one on this database.');
          }
        } catch (error) {
          if (!(error instanceof AlreadyInitializedError)) throw error;
          io.err(`${error.message} (${database})`);
          io.err('Lost the secret? `npx keyward keys create --direct --help` makes another key on this database.');
          context.exitCode = 1;
        }
      });
    });
}
