import { describe, expect, it } from 'vitest';
import { errorType, writeReplyErrorType } from '../src/error-type.js';

describe('errorType', () => {
  it.each([
    [
      Object.assign(new Error('x'), { name: 'MongoServerError', codeName: 'DuplicateKey', code: 11000 }),
      'DuplicateKey',
    ],
    [Object.assign(new Error('x'), { name: 'MongoServerError', code: 11000 }), 'DuplicateKey'],
    [Object.assign(new Error('x'), { name: 'MongoServerError', code: 424242 }), 'code_424242'],
    [Object.assign(new Error('x'), { name: 'MongoNetworkTimeoutError' }), 'network_timeout'],
    [Object.assign(new Error('x'), { name: 'MongoServerSelectionError' }), 'server_selection'],
    [Object.assign(new Error('x'), { name: 'MongoPoolClearedError' }), 'pool_cleared'],
    [new TypeError('x'), 'TypeError'],
    [new Error('x'), 'client_error'],
    [Object.assign(new Error('x'), { name: 'has spaces and "quotes"' }), 'client_error'],
    [Object.assign(new Error('x'), { codeName: '"; DROP' }), 'client_error'],
    ['a string', 'unknown'],
    [null, 'unknown'],
  ])('maps %s to %s', (error, expected) => {
    expect(errorType(error)).toBe(expected);
  });
});

describe('writeReplyErrorType', () => {
  it('reads write errors and write concern errors of ok:1 replies', () => {
    expect(writeReplyErrorType({ ok: 1, n: 1 })).toBe('');
    expect(writeReplyErrorType({ ok: 1, writeErrors: [{ code: 11000 }] })).toBe('DuplicateKey');
    expect(
      writeReplyErrorType({ ok: 1, writeErrors: [{ code: 121, codeName: 'DocumentValidationFailure' }] }),
    ).toBe('DocumentValidationFailure');
    expect(writeReplyErrorType({ ok: 1, writeErrors: [{}] })).toBe('WriteError');
    expect(
      writeReplyErrorType({ ok: 1, writeConcernError: { code: 64, codeName: 'WriteConcernFailed' } }),
    ).toBe('WriteConcernFailed');
    expect(writeReplyErrorType(undefined)).toBe('');
  });
});
