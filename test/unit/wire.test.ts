import {
  ErrorCode,
  HTTP_STATUS,
  isErrorCode,
  keyFromConnectionParams,
  keyFromHeaders,
  REFUSAL_ERROR,
  retryAfterSeconds,
  tightest,
  VerifyCode,
} from '@keyward/client/wire';
import * as serverErrors from '../../src/errors';
import * as serverVerifyCodes from '../../src/auth/verify-code';

const KEY = 'kw_live_0123456789abcdefghijABCDEFGHIJ0123';

describe('the wire contract', () => {
  it('is the table the server answers with: same error codes, statuses, verify codes and refusal errors', () => {
    expect(serverErrors.ErrorCode).toBe(ErrorCode);
    expect(serverErrors.HTTP_STATUS).toBe(HTTP_STATUS);
    expect(serverVerifyCodes.VerifyCode).toBe(VerifyCode);
    expect(serverVerifyCodes.REFUSAL_ERROR).toBe(REFUSAL_ERROR);
  });

  it('gives every error code an HTTP status and every refusal an error code', () => {
    expect(Object.keys(HTTP_STATUS).sort()).toEqual(Object.values(ErrorCode).sort());
    for (const status of Object.values(HTTP_STATUS)) expect(status >= 400 && status <= 599).toBe(true);
    const refusals = Object.values(VerifyCode).filter((code) => code !== VerifyCode.VALID);
    expect(Object.keys(REFUSAL_ERROR).sort()).toEqual(refusals.sort());
    for (const code of Object.values(REFUSAL_ERROR)) expect(isErrorCode(code)).toBe(true);
  });

  it('knows its own codes only, not properties every object has', () => {
    expect(isErrorCode('RATE_LIMITED')).toBe(true);
    expect(isErrorCode('rate_limited')).toBe(false);
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode(429)).toBe(false);
  });
});

describe('keyFromHeaders', () => {
  it('reads "Authorization: Bearer <key>" with any case of Bearer and surrounding spaces', () => {
    expect(keyFromHeaders({ authorization: `Bearer ${KEY}` })).toEqual({ kind: 'key', key: KEY });
    expect(keyFromHeaders({ authorization: `bearer \t${KEY}  ` })).toEqual({ kind: 'key', key: KEY });
  });

  it('reads X-API-Key, trimmed, the first value when repeated', () => {
    expect(keyFromHeaders({ apiKey: `  ${KEY} ` })).toEqual({ kind: 'key', key: KEY });
    expect(keyFromHeaders({ apiKey: [KEY, 'kw_live_other'] })).toEqual({ kind: 'key', key: KEY });
  });

  it('lets Authorization win over X-API-Key', () => {
    expect(keyFromHeaders({ authorization: 'Bearer from-authorization', apiKey: KEY })).toEqual({ kind: 'key', key: 'from-authorization' });
  });

  it('calls an Authorization that is not "Bearer <key>" not-bearer, without falling back to X-API-Key', () => {
    for (const authorization of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', `Bearer ${KEY} extra`, KEY]) {
      expect({ authorization, presented: keyFromHeaders({ authorization, apiKey: KEY }) }).toEqual({ authorization, presented: { kind: 'not-bearer' } });
    }
  });

  it('finds none in empty, blank or non-string values', () => {
    expect(keyFromHeaders({})).toEqual({ kind: 'none' });
    expect(keyFromHeaders({ authorization: '', apiKey: '   ' })).toEqual({ kind: 'none' });
    expect(keyFromHeaders({ authorization: 42, apiKey: { key: KEY } })).toEqual({ kind: 'none' });
    expect(keyFromHeaders({ apiKey: [] })).toEqual({ kind: 'none' });
  });
});

describe('keyFromConnectionParams', () => {
  it('reads { authorization: "Bearer <key>" } (or Authorization), else { apiKey } (or x-api-key)', () => {
    expect(keyFromConnectionParams({ authorization: `Bearer ${KEY}` })).toBe(KEY);
    expect(keyFromConnectionParams({ Authorization: `Bearer ${KEY}` })).toBe(KEY);
    expect(keyFromConnectionParams({ apiKey: ` ${KEY} ` })).toBe(KEY);
    expect(keyFromConnectionParams({ 'x-api-key': KEY })).toBe(KEY);
  });

  it('finds no key in missing params, a non-Bearer authorization or empty values', () => {
    expect(keyFromConnectionParams(undefined)).toBeNull();
    expect(keyFromConnectionParams(null)).toBeNull();
    expect(keyFromConnectionParams({})).toBeNull();
    expect(keyFromConnectionParams({ authorization: 'Basic dXNlcjpwYXNz', apiKey: KEY })).toBeNull();
    expect(keyFromConnectionParams({ apiKey: '  ' })).toBeNull();
  });
});

describe('tightest', () => {
  it('picks the window with the least left, the smaller limit on a tie, and null for no windows', () => {
    const minute = { name: 'minute', limit: 60, remaining: 10 };
    const hour = { name: 'hour', limit: 1000, remaining: 5 };
    const burst = { name: 'burst', limit: 20, remaining: 5 };
    expect(tightest([minute, hour])).toBe(hour);
    expect(tightest([hour, burst, minute])).toBe(burst);
    expect(tightest([])).toBeNull();
  });
});

describe('retryAfterSeconds', () => {
  it('rounds up to whole seconds and is at least 1, also for a reset already past', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(retryAfterSeconds(now + 1_001, now)).toBe(2);
    expect(retryAfterSeconds(now + 60_000, now)).toBe(60);
    expect(retryAfterSeconds(now + 1, now)).toBe(1);
    expect(retryAfterSeconds(now - 5_000, now)).toBe(1);
  });
});
