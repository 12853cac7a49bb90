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
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  setupFiles: ['reflect-metadata'],
  testTimeout: 30_000,
};
