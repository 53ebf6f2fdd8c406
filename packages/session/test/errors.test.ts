import { inspect } from 'node:util';
import { ReplyError } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { unavailable } from '../src/runner.js';

describe('errors', () => {
  it('keep no command arguments in their cause: a user index, a token hash or session data must not reach a log', () => {
    const reply = Object.assign(new ReplyError('OOM command not allowed when used memory > maxmemory.'), {
      command: {
        name: 'evalsha',
        args: ['0123abcd', 2, 'austa:session:u:{patient-42}', Buffer.from('diagnosis')],
      },
    });
    const error = unavailable(reply);
    expect(error.code).toBe('E_REDIS_UNAVAILABLE');
    expect((error.cause as { command?: unknown }).command).toEqual({ name: 'evalsha' });
    const logged = `${inspect(error, { depth: 10 })} ${JSON.stringify(error.cause)}`;
    expect(logged).toContain('OOM');
    for (const secret of ['patient-42', 'diagnosis']) expect(logged).not.toContain(secret);
  });
});
