import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createCodec } from '@austa/codec';
import { createMetrics } from '@austa/metrics';
import {
  clusterTopology,
  deleteByPrefix,
  keySlot,
  keysWithoutTtl,
  redisTargets,
  uniquePrefix,
} from '@austa/test-env/vitest';
import { afterAll, describe, expect, it } from 'vitest';
import { AustaCacheError, type Cache } from '../src/index.js';
import { codeOf, eventually, heldGetOrSet, keysUnder, sleep, suiteFor } from './support.js';

describe.each(['standalone', 'cluster'] as const)('cache on %s', (topology) => {
  const suite = suiteFor(topology);
  const { client } = suite;
  const prefix = uniquePrefix(`cache-${topology}`);
  let n = 0;
  /** A cache in a fresh namespace of this suite's prefix. */
  const fresh = (options: Parameters<typeof suite.make>[0] extends infer O ? Partial<O> : never = {}) =>
    suite.make({ prefix, namespace: `ns${++n}`, ...options });

  afterAll(async () => {
    await suite.close();
    expect(await keysWithoutTtl(client, prefix)).toEqual([]);
    await deleteByPrefix(client, prefix);
    await client.quit();
  });

  it('set and get round-trip Dates, Maps, Sets and BigInts, and a cached null is not a miss', async () => {
    const cache = fresh();
    const value = {
      at: new Date('2025-01-02T03:04:05Z'),
      tags: new Set(['a']),
      byId: new Map([[1, 'x']]),
      n: 12n,
    };
    await cache.set('patient:1', value);
    expect(await cache.get('patient:1')).toEqual(value);
    await cache.set('nothing', null);
    expect(await cache.get('nothing')).toBeNull();
    expect(await cache.get('absent')).toBeUndefined();
    expect(await cache.exists('nothing')).toBe(true);
    expect(await cache.exists('absent')).toBe(false);
  });

  it('stores keys with braces, percent signs and unicode as distinct entries outside any hash tag', async () => {
    const cache = fresh();
    const keys = ['{a}', '%7Ba%7D', 'a{b}c', 'ü:{x}', 'plain'];
    await Promise.all(keys.map((key) => cache.set(key, key)));
    for (const key of keys) expect(await cache.get(key)).toBe(key);
    const stored = await keysUnder(client, `${prefix}:ns${n}:e:`);
    expect(stored).toHaveLength(keys.length);
    expect(stored.every((key) => !key.slice(`${prefix}:ns${n}:e:`.length).includes('{'))).toBe(true);
  });

  it('getTTL and extendTTL are exact to the millisecond through PTTL and PEXPIRE', async () => {
    const cache = fresh();
    await cache.set('k', 1, { ttlSeconds: 30 });
    const ttl = (await cache.getTTL('k')) as number;
    expect(ttl).toBeLessThanOrEqual(30_000);
    expect(ttl).toBeGreaterThan(25_000);
    expect(await cache.extendTTL('k', 500)).toBe(true);
    const extended = (await cache.getTTL('k')) as number;
    expect(extended).toBeGreaterThan(495_000);
    expect(extended).toBeLessThanOrEqual(500_000);
    expect(await client.pttl(`${prefix}:ns${n}:e:k`)).toBeGreaterThan(495_000);
    expect(await cache.extendTTL('missing', 10)).toBe(false);
    expect(await cache.getTTL('missing')).toBeUndefined();
  });

  it('extendTTL also extends the tag keys the entry depends on', async () => {
    const cache = fresh();
    await cache.set('k', 1, { ttlSeconds: 10, tags: ['t'] });
    expect(await cache.extendTTL('k', 3600)).toBe(true);
    expect(await client.pttl(`${prefix}:ns${n}:t:{t}:v`)).toBeGreaterThan(3600_000);
  });

  it('delete, getMany, setMany and deleteMany work across slots', async () => {
    const cache = fresh();
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    await cache.setMany(keys.map((key, i) => ({ key, value: i, tags: i % 2 ? ['odd'] : undefined })));
    expect(await cache.getMany([...keys, 'none'])).toEqual([...keys.map((_, i) => i), undefined]);
    expect(await cache.delete('k0')).toBe(true);
    expect(await cache.delete('k0')).toBe(false);
    expect(await cache.deleteMany(keys)).toBe(49);
    expect(await cache.getMany(keys.slice(0, 3))).toEqual([undefined, undefined, undefined]);
  });

  it('invalidateByTags turns every entry of a tag into a miss at once and leaves others alone', async () => {
    const cache = fresh();
    await cache.set('a', 1, { tags: ['clinic:1'] });
    await cache.set('b', 2, { tags: ['clinic:1', 'doctor:7'] });
    await cache.set('c', 3, { tags: ['doctor:7'] });
    await cache.set('d', 4);
    await cache.invalidateByTags(['clinic:1']);
    expect(await cache.getMany(['a', 'b', 'c', 'd'])).toEqual([undefined, undefined, 3, 4]);
    await cache.set('a', 10, { tags: ['clinic:1'] });
    expect(await cache.get('a')).toBe(10);
  });

  it('a tag key outlives every entry written under it', async () => {
    const cache = fresh();
    await cache.set('short', 1, { ttlSeconds: 5, tags: ['t'] });
    await cache.set('long', 1, { ttlSeconds: 3000, tags: ['t'] });
    await cache.set('short2', 1, { ttlSeconds: 5, tags: ['t'] });
    const entry = await client.pttl(`${prefix}:ns${n}:e:long`);
    expect(await client.pttl(`${prefix}:ns${n}:t:{t}:v`)).toBeGreaterThan(entry);
    expect(await client.pttl(`${prefix}:ns${n}:t:{t}:k`)).toBeGreaterThan(entry);
  });

  it('a missing tag key reads as invalidated, and a recreated one never revives old entries', async () => {
    const cache = fresh();
    await cache.set('a', 1, { tags: ['t'] });
    await client.del(`${prefix}:ns${n}:t:{t}:v`);
    expect(await cache.get('a')).toBeUndefined();
    await cache.set('b', 2, { tags: ['t'] });
    expect(await cache.get('b')).toBe(2);
    expect(await cache.get('a')).toBeUndefined();
  });

  it('the background sweep deletes invalidated entries and keeps rewritten ones', async () => {
    const cache = fresh();
    const keys = Array.from({ length: 40 }, (_, i) => `s${i}`);
    await Promise.all(keys.map((key) => cache.set(key, key, { tags: ['sweep'] })));
    await cache.invalidateByTags(['sweep']);
    await cache.set('s0', 'new', { tags: ['sweep'] });
    const left = await eventually(
      async () => (await keysUnder(client, `${prefix}:ns${n}:e:`)).length,
      (count) => count === 1,
      10_000,
    );
    expect(left).toBe(1);
    expect(await cache.get('s0')).toBe('new');
    expect(cache.getStats().swept).toBeGreaterThanOrEqual(39);
  });

  it('concurrent invalidations of one tag are never lost', async () => {
    const cache = fresh();
    await cache.set('a', 1, { tags: ['hot'] });
    const before = BigInt((await client.get(`${prefix}:ns${n}:t:{hot}:v`)) as string);
    await Promise.all(Array.from({ length: 25 }, () => cache.invalidateByTags(['hot'])));
    const after = BigInt((await client.get(`${prefix}:ns${n}:t:{hot}:v`)) as string);
    expect(after - before).toBe(25n);
  });

  it('under concurrent writes and invalidations, no read after an invalidation sees data older than it', async () => {
    const cache = fresh();
    let database = 0;
    /** The newest database version whose invalidation has completed. */
    let invalidated = 0;
    const keys = Array.from({ length: 10 }, (_, i) => `doc${i}`);
    const violations: string[] = [];
    let stop = false;
    const reader = async () => {
      while (!stop) {
        const key = keys[Math.floor(Math.random() * keys.length)] as string;
        const floor = invalidated;
        const value = await cache.getOrSet(
          key,
          async () => {
            const read = database;
            await sleep(Math.random() * 5);
            return read;
          },
          { tags: ['docs'] },
        );
        if (value < floor) violations.push(`${key}: read ${value} after invalidation ${floor}`);
      }
    };
    const readers = Array.from({ length: 8 }, reader);
    for (let i = 0; i < 30; i++) {
      database++;
      await cache.invalidateByTags(['docs']);
      invalidated = database;
      await sleep(5);
    }
    stop = true;
    await Promise.all(readers);
    expect(violations).toEqual([]);
    for (const key of keys)
      expect(await cache.getOrSet(key, () => database, { tags: ['docs'] })).toBe(database);
  });

  it('getOrSet calls the factory once for 100 concurrent misses', async () => {
    const cache = fresh();
    let calls = 0;
    const values = await Promise.all(
      Array.from({ length: 100 }, () =>
        cache.getOrSet('hot', async () => {
          calls++;
          await sleep(30);
          return { v: 1 };
        }),
      ),
    );
    expect(calls).toBe(1);
    expect(values.every((value) => value.v === 1)).toBe(true);
    // Callers get their own copies.
    expect(values[0]).not.toBe(values[1]);
    expect(await cache.get('hot')).toEqual({ v: 1 });
  });

  it('a slow getOrSet never overwrites a newer set() of the same key, here or in another process', async () => {
    const namespace = `ns${++n}`;
    const cache = suite.make({ prefix, namespace });
    const other = suite.make({ prefix, namespace }, suite.otherClient());
    for (const writer of [cache, other]) {
      const { result: slow, release } = await heldGetOrSet(cache, `race-${writer === cache}`);
      await writer.set(`race-${writer === cache}`, 'new');
      release('old');
      expect(await slow).toBe('old');
      expect(await cache.get(`race-${writer === cache}`)).toBe('new');
    }
  });

  it('a getOrSet already computing does not store its result over a delete or clear from another instance', async () => {
    const namespace = `ns${++n}`;
    // Neither has an L1: the bus still carries the other instance's invalidation to the running factory.
    const cache = suite.make({ prefix, namespace });
    const other = suite.make({ prefix, namespace }, suite.otherClient());
    await sleep(100);
    for (const invalidate of [
      (key: string) => other.delete(key),
      (key: string) => other.deleteMany([key]),
      () => other.clear(),
      (key: string) => other.deletePattern(`${key}*`),
    ]) {
      const key = `remote-${++n}`;
      await cache.set(key, 'old');
      await cache.delete(key);
      const { result: slow, release } = await heldGetOrSet(cache, key);
      // The factory read the record; another instance changes it and invalidates the key.
      await invalidate(key);
      await sleep(100);
      release('old');
      expect(await slow).toBe('old');
      expect(await other.get(key)).toBeUndefined();
      expect(await cache.get(key)).toBeUndefined();
    }
  });

  it('an instance without an L1 still evicts its changes from the L1 of the others', async () => {
    const namespace = `ns${++n}`;
    const reader = suite.make({ prefix, namespace, l1: { maxTtlSeconds: 60 } });
    const writer = suite.make({ prefix, namespace }, suite.otherClient());
    await sleep(100);
    await writer.set('rec', 'v1', { tags: ['consent'] });
    expect(await reader.get('rec')).toBe('v1');
    expect(await reader.get('rec')).toBe('v1');
    await writer.set('rec', 'v2', { tags: ['consent'] });
    expect(
      await eventually(
        () => reader.get('rec'),
        (value) => value === 'v2',
        1000,
        5,
      ),
    ).toBe('v2');
    await writer.invalidateByTags(['consent']);
    expect(
      await eventually(
        () => reader.get('rec'),
        (value) => value === undefined,
        1000,
        5,
      ),
    ).toBeUndefined();
  });

  it('with the distributed lock, two processes make one factory call', async () => {
    const namespace = `ns${++n}`;
    const first = suite.make({ prefix, namespace, lock: true });
    const second = suite.make({ prefix, namespace, lock: true }, suite.otherClient());
    let calls = 0;
    const factory = async () => {
      calls++;
      await sleep(150);
      return 'computed';
    };
    const results = await Promise.all([
      ...Array.from({ length: 20 }, () => first.getOrSet('report', factory)),
      ...Array.from({ length: 20 }, () => second.getOrSet('report', factory)),
    ]);
    expect(calls).toBe(1);
    expect(new Set(results)).toEqual(new Set(['computed']));
    // The holder releases its lock right after writing (not awaited by the callers).
    expect(
      await eventually(
        () => client.exists(`${prefix}:${namespace}:l:report`),
        (n) => n === 0,
        2000,
      ),
    ).toBe(0);
  });

  it('getOrSet caches null for negativeTtlSeconds and does not cache undefined', async () => {
    const cache = fresh({ negativeTtlSeconds: 5 });
    let calls = 0;
    expect(
      await cache.getOrSet('gone', () => {
        calls++;
        return null;
      }),
    ).toBeNull();
    expect(
      await cache.getOrSet('gone', () => {
        calls++;
        return 'x';
      }),
    ).toBeNull();
    expect(calls).toBe(1);
    expect(await client.pttl(`${prefix}:ns${n}:e:gone`)).toBeLessThanOrEqual(5000);
    expect(
      await cache.getOrSet('undef', () => {
        calls++;
        return undefined;
      }),
    ).toBeUndefined();
    expect(await cache.exists('undef')).toBe(false);
  });

  it('getOrSet shortens TTLs by a random jitter, never lengthens them', async () => {
    const cache = fresh({ ttlJitter: 0.5 });
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => cache.getOrSet(`j${i}`, () => i, { ttlSeconds: 100 })),
    );
    const ttls = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.pttl(`${prefix}:ns${n}:e:j${i}`)),
    );
    expect(Math.max(...ttls)).toBeLessThanOrEqual(100_000);
    expect(Math.min(...ttls)).toBeGreaterThan(49_000);
    expect(new Set(ttls.map((ttl) => Math.round(ttl / 1000))).size).toBeGreaterThan(3);
  });

  it('serves a stale value at once while one refresh runs (grace period)', async () => {
    const cache = fresh({ graceSeconds: 60 });
    await cache.getOrSet('swr', () => 'v1', { ttlSeconds: 0.2 });
    await eventually(
      () => cache.getTTL('swr'),
      (ttl) => ttl === undefined,
      5000,
    );
    let calls = 0;
    const refresh = async () => {
      calls++;
      await sleep(200);
      return 'v2';
    };
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => cache.getOrSet('swr', refresh, { ttlSeconds: 60 })),
    );
    expect(Date.now() - started).toBeLessThan(200);
    expect(answers).toEqual(Array(10).fill('v1'));
    expect(
      await eventually(
        () => cache.get('swr'),
        (value) => value === 'v2',
        5000,
      ),
    ).toBe('v2');
    expect(calls).toBe(1);
    expect(cache.getStats().l2.staleHits).toBeGreaterThanOrEqual(1);
  });

  it('a factory that never settles holds its key only until its hard timeout: the next caller computes anew', async () => {
    const cache = fresh();
    let lateResolve: (value: string) => void = () => {};
    const hung = codeOf(
      cache.getOrSet('hung', () => new Promise<string>((resolve) => (lateResolve = resolve)), {
        hardTimeoutMs: 100,
      }),
    );
    // A caller that joins while the first factory is still within its bound waits with it.
    expect(await codeOf(cache.getOrSet('hung', () => 'joined', { hardTimeoutMs: 100 }))).toBe(
      'E_FACTORY_TIMEOUT',
    );
    expect(await hung).toBe('E_FACTORY_TIMEOUT');
    let calls = 0;
    const healthy = () => {
      calls++;
      return 'fresh';
    };
    expect(await cache.getOrSet('hung', healthy, { hardTimeoutMs: 100 })).toBe('fresh');
    expect(calls).toBe(1);
    expect(await cache.get('hung')).toBe('fresh');
    // The overdue factory finally answers, after a delete: its result is from before the delete and is not stored.
    await cache.delete('hung');
    lateResolve('stale');
    await sleep(50);
    expect(await cache.get('hung')).toBeUndefined();
  });

  it('soft timeout serves the stale value, hard timeout fails with E_FACTORY_TIMEOUT and aborts the signal', async () => {
    const cache = fresh({ graceSeconds: 60 });
    await cache.set('slow', 'old', { ttlSeconds: 0.1 });
    await eventually(
      () => cache.getTTL('slow'),
      (ttl) => ttl === undefined,
      5000,
    );
    expect(
      await cache.getOrSet('slow', () => sleep(300).then(() => 'new'), { softTimeoutMs: 50, ttlSeconds: 60 }),
    ).toBe('old');
    let aborted = false;
    const error = await codeOf(
      cache.getOrSet(
        'never',
        ({ signal }) => {
          signal.addEventListener('abort', () => {
            aborted = true;
          });
          return new Promise<string>(() => {});
        },
        { hardTimeoutMs: 100 },
      ),
    );
    expect(error).toBe('E_FACTORY_TIMEOUT');
    expect(
      await eventually(
        () => aborted,
        (value) => value,
        2000,
      ),
    ).toBe(true);
    expect(
      await eventually(
        () => cache.get('slow'),
        (value) => value === 'new',
        5000,
      ),
    ).toBe('new');
  });

  it('a factory error reaches the caller and nothing is cached; with a stale value, the stale value is served', async () => {
    const cache = fresh({ graceSeconds: 60 });
    await expect(cache.getOrSet('boom', () => Promise.reject(new Error('db down')))).rejects.toThrow(
      'db down',
    );
    expect(await cache.exists('boom')).toBe(false);
    await cache.set('boom', 'kept', { ttlSeconds: 0.1 });
    await eventually(
      () => cache.getTTL('boom'),
      (ttl) => ttl === undefined,
      5000,
    );
    expect(
      await cache.getOrSet('boom', () => Promise.reject(new Error('db down')), { softTimeoutMs: 1000 }),
    ).toBe('kept');
  });

  it('deletePattern and clear remove keys on every master, only in their namespace', async () => {
    const namespace = `ns${++n}`;
    const cache = suite.make({ prefix, namespace });
    const neighbour = fresh();
    const keys = Array.from({ length: 300 }, (_, i) => `user:${i}:${randomBytes(3).toString('hex')}`);
    await cache.setMany(keys.map((key) => ({ key, value: 1 })));
    await cache.setMany(['other:1', 'user', 'users:1', 'a*', 'ab'].map((key) => ({ key, value: 1 })));
    await neighbour.set('user:1', 1);
    if (topology === 'cluster') {
      const { masters } = await clusterTopology(redisTargets().cluster);
      const owners = new Set(
        keys.map((key) => {
          const slot = keySlot(`${prefix}:${namespace}:e:${key}`);
          return masters.find((master) => master.slots.some(([from, to]) => slot >= from && slot <= to))
            ?.port;
        }),
      );
      expect(owners.size).toBe(masters.length);
    }
    expect(await cache.deletePattern('user:*')).toBe(300);
    expect(await cache.getMany(['other:1', 'user', 'users:1', 'a*'])).toEqual([1, 1, 1, 1]);
    expect(await cache.deletePattern('a\\*')).toBe(1);
    expect(await cache.get('ab')).toBe(1);
    await cache.set('tagged', 1, { tags: ['t'] });
    const removed = await cache.clear();
    expect(removed).toBeGreaterThanOrEqual(5);
    expect(await keysUnder(client, `${prefix}:${namespace}:`)).toEqual([]);
    expect(await neighbour.get('user:1')).toBe(1);
  });

  it('deletePattern matches ? and [...] against characters of keys, also %, { and } (stored encoded)', async () => {
    const namespace = `ns${++n}`;
    const cache = suite.make({ prefix, namespace });
    const keys = ['x%', 'x{', 'x}', 'xa', 'x', 'xab', 'y{}%', 'yabc', 'z{1}', 'z[1]'];
    await cache.setMany(keys.map((key) => ({ key, value: key })));
    expect(await cache.deletePattern('x???')).toBe(0);
    expect(await cache.deletePattern('x?')).toBe(4);
    expect(await cache.getMany(['x', 'xab'])).toEqual(['x', 'xab']);
    expect(await cache.deletePattern('y[{b]??')).toBe(1);
    expect(await cache.get('y{}%')).toBeUndefined();
    expect(await cache.get('yabc')).toBe('yabc');
    expect(await cache.deletePattern('z[^[]1?')).toBe(1);
    expect(await cache.getMany(['z{1}', 'z[1]'])).toEqual([undefined, 'z[1]']);
  });

  it('rejects bad input with a typed error and writes nothing', async () => {
    const namespace = `ns${++n}`;
    const cache = suite.make({ prefix, namespace, maxValueBytes: 1024 });
    const bad: Array<[string, () => Promise<unknown>]> = [
      ['E_INVALID_KEY', () => cache.set('', 1)],
      ['E_INVALID_KEY', () => cache.set('x'.repeat(2000), 1)],
      ['E_INVALID_KEY', () => cache.set('a\nb', 1)],
      ['E_INVALID_KEY', () => cache.set(42 as unknown as string, 1)],
      ['E_INVALID_KEY', () => cache.get('\u0000')],
      ['E_INVALID_KEY', () => cache.getOrSet('', () => 1)],
      ['E_INVALID_KEY', () => cache.delete('')],
      [
        'E_INVALID_KEY',
        () =>
          cache.setMany([
            { key: 'ok', value: 1 },
            { key: 'a\tb', value: 1 },
          ]),
      ],
      ['E_UNSERIALIZABLE', () => cache.set('fn', () => 1)],
      ['E_UNSERIALIZABLE', () => cache.set('sym', { s: Symbol('x') }, { tags: ['t'] })],
      ['E_UNSERIALIZABLE', () => cache.getOrSet<unknown>('fnf', () => () => 1, { tags: ['t'] })],
      ['E_VALUE_TOO_LARGE', () => cache.set('big', 'x'.repeat(2000))],
      ['E_VALUE_TOO_LARGE', () => cache.set('bigt', 'x'.repeat(2000), { tags: ['t'] })],
      [
        'E_VALUE_TOO_LARGE',
        () =>
          cache.setMany<unknown>([
            { key: 'ok', value: 1 },
            { key: 'big', value: 'x'.repeat(2000) },
          ]),
      ],
      ['E_INVALID_TTL', () => cache.set('ttl0', 1, { ttlSeconds: 0 })],
      ['E_INVALID_TTL', () => cache.set('ttlneg', 1, { ttlSeconds: -1 })],
      ['E_INVALID_TTL', () => cache.set('ttlnan', 1, { ttlSeconds: Number.NaN })],
      ['E_INVALID_TTL', () => cache.extendTTL('k', 0)],
      ['E_INVALID_TTL', () => cache.getOrSet('g', () => 1, { ttlSeconds: 0 })],
      ['E_INVALID_TAG', () => cache.invalidateByTags([])],
      ['E_INVALID_TAG', () => cache.invalidateByTags(['ok', ''])],
      ['E_INVALID_TAG', () => cache.set('k', 1, { tags: ['a\u0007'] })],
      ['E_INVALID_ARGUMENT', () => cache.set('undef', undefined)],
      ['E_INVALID_ARGUMENT', () => cache.getOrSet('nofactory', 5 as unknown as () => number)],
      ['E_INVALID_PATTERN', () => cache.deletePattern('')],
      ['E_INVALID_PATTERN', () => cache.deletePattern('[{')],
    ];
    for (const [code, call] of bad) expect(`${code}: ${await codeOf(call)}`).toBe(`${code}: ${code}`);
    expect(await keysUnder(client, `${prefix}:${namespace}:`)).toEqual([]);
    const error = await cache.set('', 1).catch((caught: unknown) => caught);
    expect(AustaCacheError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/non-empty/);
  });

  it('encrypts values at rest when given an encrypting codec, bound to their key', async () => {
    const codec = createCodec({ encryption: { currentKeyId: 'k1', keys: { k1: randomBytes(32) } } });
    const cache = fresh({ codec });
    await cache.set('phi', { name: 'Maria Silva' }, { tags: ['p'] });
    const stored = (await client.getBuffer(`${prefix}:ns${n}:e:phi`)) as Buffer;
    expect(stored.includes('Maria')).toBe(false);
    expect(await cache.get('phi')).toEqual({ name: 'Maria Silva' });
    // A ciphertext copied under another key does not decrypt: a miss, not the value.
    await client.set(`${prefix}:ns${n}:e:copy`, stored, 'PX', 60_000);
    expect(await cache.get('copy')).toBeUndefined();
  });

  it('reports per-tier stats and the requests metric', async () => {
    const metrics = createMetrics();
    const cache = fresh({ metrics, name: 'stats', l1: true });
    await cache.set('a', 1);
    await cache.get('a');
    await cache.get('missing');
    const stats = cache.getStats();
    expect(stats.l2.hits + stats.l1.hits).toBeGreaterThanOrEqual(1);
    expect(stats.l2.misses).toBeGreaterThanOrEqual(1);
    const text = await metrics.text();
    expect(text).toMatch(/austa_cache_requests_total\{cache="stats",tier="l2",result="miss"\} [1-9]/);
    expect(text).toMatch(/austa_cache_operation_duration_seconds_count\{cache="stats",operation="get"\} 2/);
    expect(text).toMatch(
      /db_client_operation_duration_seconds_count\{db_system_name="redis",db_operation_name="set"/,
    );
  });

  it('invalidates the L1 of another instance on set, delete, tag invalidation and clear', async () => {
    const namespace = `ns${++n}`;
    const reader = suite.make({ prefix, namespace, l1: true });
    const writer = suite.make({ prefix, namespace, l1: true }, suite.otherClient());
    await sleep(100);
    const delays: number[] = [];
    for (let round = 0; round < 20; round++) {
      await writer.set('shared', round, { tags: ['grp'] });
      expect(
        await eventually(
          () => reader.get('shared'),
          (v) => v === round,
          2000,
        ),
      ).toBe(round);
      // The writer's message may still be on its way and evict what that read stored: let it land, read again.
      await sleep(30);
      await reader.get('shared');
      // Served from memory now.
      const hitsBefore = reader.getStats().l1.hits;
      expect(await reader.get('shared')).toBe(round);
      expect(reader.getStats().l1.hits).toBe(hitsBefore + 1);
      const started = performance.now();
      await writer.set('shared', round + 0.5, { tags: ['grp'] });
      await eventually(
        () => reader.get('shared'),
        (v) => v === round + 0.5,
        2000,
        1,
      );
      delays.push(performance.now() - started);
    }
    expect(await reader.get('shared')).toBe(19.5);
    await writer.invalidateByTags(['grp']);
    expect(
      await eventually(
        () => reader.get('shared'),
        (v) => v === undefined,
        2000,
      ),
    ).toBeUndefined();
    await writer.set('d', 1);
    expect(
      await eventually(
        () => reader.get('d'),
        (v) => v === 1,
        2000,
      ),
    ).toBe(1);
    await writer.delete('d');
    expect(
      await eventually(
        () => reader.get('d'),
        (v) => v === undefined,
        2000,
      ),
    ).toBeUndefined();
    await writer.set('c', 1);
    expect(
      await eventually(
        () => reader.get('c'),
        (v) => v === 1,
        2000,
      ),
    ).toBe(1);
    await writer.clear();
    expect(
      await eventually(
        () => reader.get('c'),
        (v) => v === undefined,
        2000,
      ),
    ).toBeUndefined();
    delays.sort((a, b) => a - b);
    console.log(
      `[cache ${topology}] L1 invalidation seen by the other instance: p50 ${delays[10]?.toFixed(1)} ms, max ${delays[19]?.toFixed(1)} ms (20 rounds, incl. a polling read)`,
    );
    expect(reader.getStats().invalidations.received).toBeGreaterThan(0);
  });

  it('L1 hits hand each caller its own copy of an object, so a mutation never leaks to the next caller', async () => {
    const cache = fresh({ l1: true });
    await sleep(100);
    await cache.set('obj', { roles: ['nurse'] });
    const first = (await cache.get('obj')) as { roles: string[] };
    first.roles.push('admin');
    const second = (await cache.get('obj')) as { roles: string[] };
    expect(second.roles).toEqual(['nurse']);
    expect(cache.getStats().l1.hits).toBeGreaterThanOrEqual(1);
  });

  it('a value in L1 is never kept past its Redis TTL', async () => {
    const cache = fresh({ l1: true });
    await sleep(100);
    await cache.set('brief', 1, { ttlSeconds: 0.3 });
    expect(await cache.get('brief')).toBe(1);
    expect(
      await eventually(
        () => cache.get('brief'),
        (v) => v === undefined,
        3000,
      ),
    ).toBeUndefined();
  });

  it('a process that quits its client without cache.close() still exits: the bus holds nothing open', async () => {
    const targets = redisTargets();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('./fixtures/exit-without-close.ts', import.meta.url))],
      {
        env: {
          ...process.env,
          PREFIX: prefix,
          ...(topology === 'cluster'
            ? { CLUSTER_NODES: targets.cluster.nodes.map((node) => node.port).join(',') }
            : { REDIS_URL: targets.standalone.url }),
        },
        stdio: 'ignore',
      },
    );
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await exit;
    clearTimeout(timer);
    expect(code).toBe(0);
  }, 30_000);

  it('close() never quits the client it was given, and later calls fail with E_CACHE_CLOSED', async () => {
    const cache = fresh({ l1: true });
    await cache.close();
    expect(await codeOf(cache.get('x'))).toBe('E_CACHE_CLOSED');
    expect(await client.ping()).toBe('PONG');
  });

  it('warmUp writes thousands of entries pipelined per node and reports the count', async () => {
    const cache = fresh();
    const entries = Array.from({ length: 2000 }, (_, i) => ({
      key: `w${i}`,
      value: { i },
      tags: i < 10 ? ['w'] : undefined,
    }));
    const result = await cache.warmUp(entries, { batchSize: 100, concurrency: 4 });
    expect(result).toEqual({ written: 2000, failed: 0 });
    expect(await cache.getMany(['w0', 'w1999'])).toEqual([{ i: 0 }, { i: 1999 }]);
    expect(await codeOf(cache.warmUp([{ key: '', value: 1 }]))).toBe('E_INVALID_KEY');
  });

  it('refuses a client with a keyPrefix and bad options with E_INVALID_CONFIG', async () => {
    const prefixed = suite.otherClient({ keyPrefix: 'x:' });
    expect(await codeOf(async () => fresh({ redis: prefixed } as never))).toBe('E_INVALID_CONFIG');
    expect(await codeOf(async () => suite.make({ prefix, namespace: 'a*b' }))).toBe('E_INVALID_CONFIG');
    expect(await codeOf(async () => fresh({ defaultTtlSeconds: 0 }))).toBe('E_INVALID_CONFIG');
    expect(await codeOf(async () => fresh({ l1: { heartbeatIntervalMs: 2000 } }))).toBe('E_INVALID_CONFIG');
    expect(await codeOf(async () => fresh({ l1: true, bus: false }))).toBe('E_INVALID_CONFIG');
    expect(await codeOf(async () => fresh({ bus: 'yes' as never }))).toBe('E_INVALID_CONFIG');
  });
});

// A cache used after its suite must not leave the test process with open handles; this also keeps `Cache` typed.
export type { Cache };
