import path from 'node:path';
import { ConfigError, parseConfig } from '../../src/config';

const PEPPER = 'test-pepper-0123456789abcdef';

function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    parseConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`expected parseConfig(${JSON.stringify(env)}) to throw a ConfigError`);
}

describe('parseConfig defaults', () => {
  const config = parseConfig({});

  it('listens on 0.0.0.0:4000', () => {
    expect(config.port).toBe(4000);
    expect(config.host).toBe('0.0.0.0');
  });

  it('keeps a SQLite database in ./data', () => {
    expect(config.dataDir).toBe(path.resolve('./data'));
    expect(config.database).toEqual({ kind: 'sqlite', path: path.join(path.resolve('./data'), 'keyward.sqlite') });
  });

  it('logs at info, trusts no proxy, prices a session at 1 USD and allows introspection', () => {
    expect(config.logLevel).toBe('info');
    expect(config.trustProxy).toBe(false);
    expect(config.sessionPriceUsd).toBe(1);
    expect(config.introspection).toBe(true);
  });

  it('has no Redis and no pepper (generated into the data dir later)', () => {
    expect(config.redisUrl).toBeNull();
    expect(config.pepper).toBeNull();
  });

  it('treats empty variables as unset', () => {
    expect(parseConfig({ PORT: '', LOG_LEVEL: '', DATABASE_URL: '', TRUST_PROXY: '', SESSION_PRICE_USD: '', INTROSPECTION: '', HOST: '' })).toEqual(config);
  });
});

describe('parseConfig reads valid values', () => {
  it('puts the SQLite file in KEYWARD_DATA_DIR', () => {
    const config = parseConfig({ KEYWARD_DATA_DIR: '/tmp/kw-data' });
    expect(config.dataDir).toBe('/tmp/kw-data');
    expect(config.database).toEqual({ kind: 'sqlite', path: '/tmp/kw-data/keyward.sqlite' });
  });

  it('reads PORT, HOST, LOG_LEVEL, SESSION_PRICE_USD and INTROSPECTION', () => {
    const config = parseConfig({ PORT: '8080', HOST: '127.0.0.1', LOG_LEVEL: 'DEBUG', SESSION_PRICE_USD: '2.5', INTROSPECTION: 'false' });
    expect(config).toMatchObject({ port: 8080, host: '127.0.0.1', logLevel: 'debug', sessionPriceUsd: 2.5, introspection: false });
  });

  it('accepts a session price of 0', () => {
    expect(parseConfig({ SESSION_PRICE_USD: '0' }).sessionPriceUsd).toBe(0);
  });

  it('reads a mysql:// DATABASE_URL with KEYWARD_PEPPER', () => {
    const config = parseConfig({ DATABASE_URL: 'mysql://user:pass@db.internal:3306/keyward', KEYWARD_PEPPER: PEPPER });
    expect(config.database).toEqual({ kind: 'mysql', url: 'mysql://user:pass@db.internal:3306/keyward' });
    expect(config.pepper).toBe(PEPPER);
  });

  it('reads a mariadb:// DATABASE_URL as mysql', () => {
    const config = parseConfig({ DATABASE_URL: 'mariadb://user:pass@db:3306/keyward', KEYWARD_PEPPER: PEPPER });
    expect(config.database).toEqual({ kind: 'mysql', url: 'mysql://user:pass@db:3306/keyward' });
  });

  it('reads a redis:// REDIS_URL', () => {
    expect(parseConfig({ REDIS_URL: 'redis://localhost:6379' }).redisUrl).toBe('redis://localhost:6379');
    expect(parseConfig({ REDIS_URL: 'rediss://cache:6380' }).redisUrl).toBe('rediss://cache:6380');
  });

  it('reads TRUST_PROXY=true as true', () => {
    expect(parseConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true);
  });

  it('reads TRUST_PROXY=false as false', () => {
    expect(parseConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false);
  });

  it('reads TRUST_PROXY=2 as a hop count', () => {
    expect(parseConfig({ TRUST_PROXY: '2' }).trustProxy).toBe(2);
  });

  it('reads TRUST_PROXY as a list of addresses and CIDR blocks', () => {
    expect(parseConfig({ TRUST_PROXY: '10.0.0.0/8,127.0.0.1' }).trustProxy).toEqual(['10.0.0.0/8', '127.0.0.1']);
    expect(parseConfig({ TRUST_PROXY: ' 10.0.0.0/8 , 127.0.0.1 ' }).trustProxy).toEqual(['10.0.0.0/8', '127.0.0.1']);
  });
});

describe('parseConfig refuses bad values with a ConfigError naming the variable', () => {
  it.each([
    ['PORT=abc', { PORT: 'abc' }, 'PORT'],
    ['PORT=70000', { PORT: '70000' }, 'PORT'],
    ['PORT=-1', { PORT: '-1' }, 'PORT'],
    ['PORT=80.5', { PORT: '80.5' }, 'PORT'],
    ['LOG_LEVEL=loud', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    ['DATABASE_URL=postgres://x', { DATABASE_URL: 'postgres://x' }, 'DATABASE_URL'],
    ['a mysql DATABASE_URL without a database name', { DATABASE_URL: 'mysql://user:pass@db:3306', KEYWARD_PEPPER: PEPPER }, 'DATABASE_URL'],
    ['a mysql DATABASE_URL without KEYWARD_PEPPER', { DATABASE_URL: 'mysql://user:pass@db:3306/keyward' }, 'KEYWARD_PEPPER'],
    ['KEYWARD_PEPPER shorter than 16 characters', { KEYWARD_PEPPER: 'short-pepper' }, 'KEYWARD_PEPPER'],
    ['REDIS_URL=http://x', { REDIS_URL: 'http://x' }, 'REDIS_URL'],
    ['SESSION_PRICE_USD=-1', { SESSION_PRICE_USD: '-1' }, 'SESSION_PRICE_USD'],
    ['SESSION_PRICE_USD=free', { SESSION_PRICE_USD: 'free' }, 'SESSION_PRICE_USD'],
    ['INTROSPECTION=maybe', { INTROSPECTION: 'maybe' }, 'INTROSPECTION'],
    ['WEBHOOK_RETRY_SCHEDULE=5x', { WEBHOOK_RETRY_SCHEDULE: '5x' }, 'WEBHOOK_RETRY_SCHEDULE'],
    ['WEBHOOK_RETRY_SCHEDULE=0s', { WEBHOOK_RETRY_SCHEDULE: '0s' }, 'WEBHOOK_RETRY_SCHEDULE'],
    ['WEBHOOK_RETRY_SCHEDULE=1.5m', { WEBHOOK_RETRY_SCHEDULE: '1.5m' }, 'WEBHOOK_RETRY_SCHEDULE'],
    ['WEBHOOK_RETRY_SCHEDULE=5s,,5m', { WEBHOOK_RETRY_SCHEDULE: '5s,,5m' }, 'WEBHOOK_RETRY_SCHEDULE'],
    ['WEBHOOK_RETRY_SCHEDULE=169h (more than a week)', { WEBHOOK_RETRY_SCHEDULE: '169h' }, 'WEBHOOK_RETRY_SCHEDULE'],
    ['WEBHOOK_RETRY_SCHEDULE with 21 retries', { WEBHOOK_RETRY_SCHEDULE: Array(21).fill('1s').join(',') }, 'WEBHOOK_RETRY_SCHEDULE'],
    ['WEBHOOK_ALLOW_PRIVATE=sometimes', { WEBHOOK_ALLOW_PRIVATE: 'sometimes' }, 'WEBHOOK_ALLOW_PRIVATE'],
  ])('%s', (_what, env, variable) => {
    const error = configError(env as NodeJS.ProcessEnv);
    expect(error.name).toBe('ConfigError');
    expect(error.message).toContain(variable);
  });

  it('quotes the bad value so the operator sees what was read', () => {
    expect(configError({ PORT: 'abc' }).message).toContain('"abc"');
    expect(configError({ LOG_LEVEL: 'loud' }).message).toContain('"loud"');
  });

  it('does not put the pepper in the message', () => {
    const error = configError({ KEYWARD_PEPPER: 'tiny-secret' });
    expect(error.message).not.toContain('tiny-secret');
  });
});

describe('webhook settings', () => {
  it('retries after 5 s, 5 min, 30 min, 2 h, 5 h and 10 h, and delivers to public addresses only, by default', () => {
    const config = parseConfig({});
    expect(config.webhookRetrySchedule).toEqual([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000]);
    expect(config.webhookAllowPrivate).toBe(false);
  });

  it('reads WEBHOOK_RETRY_SCHEDULE as comma-separated waits in s, m or h (spaces allowed) and WEBHOOK_ALLOW_PRIVATE', () => {
    expect(parseConfig({ WEBHOOK_RETRY_SCHEDULE: '1s,1s,1s' }).webhookRetrySchedule).toEqual([1000, 1000, 1000]);
    expect(parseConfig({ WEBHOOK_RETRY_SCHEDULE: ' 10s, 2m ,1h ' }).webhookRetrySchedule).toEqual([10_000, 120_000, 3_600_000]);
    expect(parseConfig({ WEBHOOK_RETRY_SCHEDULE: '' }).webhookRetrySchedule).toHaveLength(6);
    expect(parseConfig({ WEBHOOK_ALLOW_PRIVATE: 'true' }).webhookAllowPrivate).toBe(true);
  });
});
