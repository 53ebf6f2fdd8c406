import { describe, expect, it } from 'vitest';
import { safeErrorMessage } from '../src/connection.js';

describe('safeErrorMessage', () => {
  it('cuts the reply ioredis quotes, which can carry channel names or data', () => {
    const error = new Error(
      'Command queue state error. If you can reproduce this, please report it. Last reply: sunsubscribe,patient:4711:vitals,0',
    );
    expect(safeErrorMessage(error)).toBe(
      'Command queue state error. If you can reproduce this, please report it',
    );
    expect(safeErrorMessage(new Error('x Last error: WRONGTYPE patient data'))).toBe('x');
  });

  it('keeps ordinary connection errors, bounded in length', () => {
    expect(safeErrorMessage(new Error('connect ECONNREFUSED 127.0.0.1:6379'))).toBe(
      'connect ECONNREFUSED 127.0.0.1:6379',
    );
    expect(safeErrorMessage(new Error('y'.repeat(500))).length).toBe(200);
  });
});
