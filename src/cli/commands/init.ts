import { Command } from 'commander';
import type { CliContext } from '../context';

/** `keyward init`: creates the platform organization and its '*' key directly in the database. */
export function initCommand(program: Command, context: CliContext): void {
  const { io } = context;
  program
    .command('init')
    .description("Create the platform organization and its '*' key; prints the secret once")
    .option('--json', 'print exactly one JSON line: {"organizationId","apiKeyId","secret"}')
    .option('--org-name <name>', 'name of the platform organization (default: "Platform")')
    .action(async (options: { json?: boolean; orgName?: string }) => {
      // Loaded here so that the commands talking to a server do not load the server.
      const { parseConfig } = await import('../../config');
      const { createLogger } = await import('../../logger');
      const { createApp } = await import('../../app');
      const { AlreadyInitializedError, initPlatform } = await import('../../organizations/platform-bootstrap');
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
        context.exitCode = 1;
      } finally {
        await app.close();
      }
    });
}
