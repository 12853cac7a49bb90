import { probeServices } from './services';

/**
 * Once per jest run: the CLI tests spawn the built `bin/keyward.js`, so dist/ is made to match
 * the sources; and the services some suites need (Redis, MariaDB) are probed (see services.ts).
 */
export default async function globalSetup(): Promise<void> {
  require('../../scripts/build-if-stale.js');
  await probeServices();
}
