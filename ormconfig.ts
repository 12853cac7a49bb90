// Data source for the TypeORM CLI, e.g. `npx typeorm migration:show -d dist/ormconfig.js`.
// Reads the same environment (and .env) as the server.
import 'reflect-metadata';
import { loadDotEnv, parseConfig } from './src/config';
import { createDataSource } from './src/db/data-source';

loadDotEnv();
export default createDataSource(parseConfig().database);
