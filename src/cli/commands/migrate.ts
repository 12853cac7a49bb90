import { Command } from 'commander';
import type { CliContext } from '../context';

/** `keyward migrate`: applies pending migrations directly on the configured database. */
export function migrateCommand(program: Command, context: CliContext): void {
  const { io } = context;
  program
    .command('migrate')
    .description('Apply pending database migrations (start and init do this too)')
    .action(async () => {
      const { parseConfig } = await import('../../config');
      const { openDatabase } = await import('../../db/data-source');
      const dataSource = await openDatabase(parseConfig(io.env).database);
      await dataSource.destroy();
      io.out('migrations applied');
    });
}
