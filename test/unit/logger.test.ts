import { Writable } from 'node:stream';
import { createLogger } from '../../src/logger';
import { errorText } from '../../src/outage-log';

/** The lines a logger wrote, parsed. */
function capture() {
  const lines: Record<string, any>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger('info', sink), lines };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('logged errors', () => {
  it('carry their type, message, code and stack, not an empty object, with secrets masked', async () => {
    const { logger, lines } = capture();
    const reset = Object.assign(new Error('read ECONNRESET near kw_live_abcdefghijklmnopqrstuvwxyz012345'), { code: 'ECONNRESET' });
    logger.warn({ err: reset }, 'redis connection error');
    await flush();
    expect(lines[0].err).toMatchObject({ type: 'Error', code: 'ECONNRESET' });
    expect(lines[0].err.message).toMatch(/^read ECONNRESET near /);
    expect(lines[0].err.stack).toMatch(/logger\.test/);
    expect(JSON.stringify(lines[0])).not.toContain('kw_live_abcdefghijklmnopqrstuvwxyz012345');
  });

  it('name what an AggregateError without a message aggregates', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
    expect(errorText(new AggregateError([refused, new Error('connect ECONNREFUSED ::1:6379')]))).toBe('connect ECONNREFUSED 127.0.0.1:6379; connect ECONNREFUSED ::1:6379');
    expect(errorText(Object.assign(new Error(''), { code: 'ETIMEDOUT' }))).toBe('ETIMEDOUT');
  });
});
