/**
 * Tests run on a real server over HTTP (test/helpers/server.ts), on SQLite by default and on
 * MySQL/MariaDB when DATABASE_URL=mysql://… is set (each server gets its own database).
 * Type checking is its own step (`npx tsc --noEmit`); ts-jest only transpiles (isolatedModules).
 * @type {import('jest').Config}
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }] },
  // The workspace package from its sources, as tsconfig's "paths" does for tsc (its build in
  // node_modules/@keyward/client is what the built server and CLI load).
  moduleNameMapper: {
    '^@keyward/client$': '<rootDir>/packages/client/src/index.ts',
    '^@keyward/client/(.*)$': '<rootDir>/packages/client/src/$1',
  },
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  setupFiles: ['reflect-metadata'],
  testTimeout: 30_000,
};
