import type { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestClient,
  deleteByPrefix,
  escapeGlob,
  keySlot,
  keysWithoutTtl,
  type RedisTopology,
  redisTargets,
  uniquePrefix,
} from '../src/vitest.js';

describe('uniquePrefix() and escapeGlob()', () => {
  it('uniquePrefix() gives t:<label>:<8 hex> with only safe characters', () => {
    expect(uniquePrefix('cache')).toMatch(/^t:cache:[0-9a-f]{8}$/);
    expect(uniquePrefix('we*ird {tag} [x]?')).toMatch(/^t:we-ird-tag-x-:[0-9a-f]{8}$/);
    expect(uniquePrefix('cache')).not.toBe(uniquePrefix('cache'));
  });

  it('escapeGlob() escapes every MATCH metacharacter', () => {
    expect(escapeGlob('a*b?c[d]e\\f')).toBe('a\\*b\\?c\\[d\\]e\\\\f');
  });
});

describe.each<RedisTopology>(['standalone', 'cluster'])('isolation helpers on %s', (topology) => {
  let client: Redis | Cluster;

  beforeAll(() => {
    client = createTestClient(redisTargets(), topology);
  });

  afterAll(async () => {
    await client.quit();
  });

  it('deleteByPrefix() removes every key under the prefix, on every master, and nothing else', async () => {
    const prefix = uniquePrefix('delete');
    const neighbour = uniquePrefix('delete');
    const keys = Array.from({ length: 200 }, (_, index) => `${prefix}:k:${index}`);
    await Promise.all(keys.map((key) => client.set(key, 'v', 'EX', 60)));
    await client.set(`${neighbour}:k`, 'v', 'EX', 60);
    if (topology === 'cluster') {
      // The keys really are spread over the cluster, so a single-node scan would miss some.
      expect(new Set(keys.map(keySlot)).size).toBeGreaterThan(100);
    }

    expect(await deleteByPrefix(client, prefix)).toBe(200);

    expect(await Promise.all(keys.map((key) => client.exists(key)))).toEqual(keys.map(() => 0));
    expect(await client.get(`${neighbour}:k`)).toBe('v');
    expect(await deleteByPrefix(client, neighbour)).toBe(1);
  });

  it('deleteByPrefix() treats glob characters in the prefix literally', async () => {
    const base = uniquePrefix('glob');
    await client.set(`${base}:a*:1`, 'v', 'EX', 60);
    await client.set(`${base}:ab:1`, 'v', 'EX', 60);

    expect(await deleteByPrefix(client, `${base}:a*`)).toBe(1);

    expect(await client.exists(`${base}:a*:1`)).toBe(0);
    expect(await client.get(`${base}:ab:1`)).toBe('v');
    await deleteByPrefix(client, base);
  });

  it('keysWithoutTtl() lists exactly the keys under the prefix that never expire', async () => {
    const prefix = uniquePrefix('ttl');
    await client.set(`${prefix}:expiring`, 'v', 'EX', 60);
    await client.set(`${prefix}:forever:1`, 'v');
    await client.hset(`${prefix}:forever:2`, 'field', 'v');
    await client.set(`${uniquePrefix('ttl')}:elsewhere`, 'v', 'EX', 5);

    expect(await keysWithoutTtl(client, prefix)).toEqual([`${prefix}:forever:1`, `${prefix}:forever:2`]);

    await deleteByPrefix(client, prefix);
    expect(await keysWithoutTtl(client, prefix)).toEqual([]);
  });
});
