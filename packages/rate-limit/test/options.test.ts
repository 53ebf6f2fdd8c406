import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimiterOptions } from '../src/index.js';

// Never connects: createRateLimiter only defines scripts on the client.
const redis = new Redis({ lazyConnect: true });

afterAll(() => {
  redis.disconnect();
});

describe('createRateLimiter() options', () => {
  const bad: Array<[string, unknown]> = [
    ['no options', undefined],
    ['no client', {}],
    ['a URL instead of a client', { redis: 'redis://127.0.0.1:6379' }],
    ['a name with capitals', { redis, name: 'API' }],
    ['a name with an id in it', { redis, name: 'user:42' }],
    ['a prefix with a hash tag', { redis, prefix: 'rl:{x}' }],
    ['a prefix with a glob character', { redis, prefix: 'rl*' }],
    ['an unknown failure policy', { redis, failurePolicy: 'retry' }],
    ['a zero timeout', { redis, timeoutMs: 0 }],
    ['a fractional timeout', { redis, timeoutMs: 1.5 }],
    ['a timeout past the cap', { redis, timeoutMs: 3_600_000 }],
    ['an insurance fraction of 0', { redis, insurance: { limitFraction: 0 } }],
    ['an insurance fraction above 1', { redis, insurance: { limitFraction: 2 } }],
    ['an insurance key cap of 0', { redis, insurance: { maxKeys: 0 } }],
    ['a block cache key cap of -1', { redis, blockCache: { maxKeys: -1 } }],
    ['a clock that is not a function', { redis, now: 5 }],
    ['a clock that returns NaN', { redis, now: () => Number.NaN }],
  ];

  it.each(bad)('refuses %s with E_INVALID_CONFIG', (_, options) => {
    expect(() => createRateLimiter(options as RateLimiterOptions)).toThrow(
      expect.objectContaining({ code: 'E_INVALID_CONFIG' }),
    );
  });

  it('adds nothing to the client it is given and connects nothing', async () => {
    const before = Object.keys(redis).sort();
    const first = createRateLimiter({ redis });
    const second = createRateLimiter({ redis, name: 'other' });
    // Scripts go out as EVALSHA: no defineCommand methods (ioredis mis-groups those in a cluster's auto-pipeline).
    expect(Object.keys(redis).sort()).toEqual(before);
    expect(redis.status).toBe('wait');
    expect(first.failurePolicy).toBe('insurance');
    await first.close();
    await second.close();
    await expect(first.checkLimit('k', { limit: 1, windowSeconds: 1 }, 'fixed-window')).rejects.toMatchObject(
      {
        code: 'E_CLOSED',
      },
    );
    await expect(first.cleanup()).rejects.toMatchObject({ code: 'E_CLOSED' });
  });
});
