import { createMetrics } from '@austa/metrics';
import { createRedisClient } from '@austa/redis-cluster';
import {
  clusterTopology,
  createTestClient,
  deleteByPrefix,
  failover,
  keySlot,
  keysWithoutTtl,
  killNode,
  migrateSlot,
  pauseNode,
  redisTargets,
  restartNode,
  restoreCluster,
  resumeNode,
  slotOwner,
  uniquePrefix,
  waitForPromotion,
} from '@austa/test-env/vitest';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
// The loopback proxy of the redis-cluster suite: a real disconnect and reconnect against a real server.
import { startProxy } from '../../redis-cluster/test/support.js';
import { type Cache, type CacheOptions, createCache } from '../src/index.js';
import { bounded, codeOf, eventually, silent, sleep } from './support.js';

const TIMEOUT_MS = 300;
/** Headroom for a loaded 2-core machine on top of a bound the cache promises. */
const SLACK_MS = 1500;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

describe('standalone Redis stopped, paused and back', () => {
  const prefix = uniquePrefix('cache-faults');
  const direct = createTestClient(redisTargets(), 'standalone');
  afterAll(async () => {
    expect(await keysWithoutTtl(direct, prefix)).toEqual([]);
    await deleteByPrefix(direct, prefix);
    await direct.quit();
  });

  async function behindProxy() {
    const target = redisTargets().standalone;
    const proxy = await startProxy({ host: target.host, port: target.port });
    const client = new Redis({ host: '127.0.0.1', port: proxy.port, lazyConnect: false });
    client.on('error', () => {});
    cleanups.push(async () => {
      client.disconnect();
      await proxy.close();
    });
    return { proxy, client };
  }

  function cacheOn(redis: Redis, extra: Partial<CacheOptions> = {}) {
    const cache = createCache({
      redis,
      prefix,
      namespace: 'down',
      defaultTtlSeconds: 60,
      timeoutMs: TIMEOUT_MS,
      circuitBreaker: { failureThreshold: 3, openMs: 500 },
      logger: silent,
      ...extra,
    });
    cleanups.push(() => cache.close());
    return cache;
  }

  it('answers within the timeout while Redis is unreachable, opens the breaker, never sends a timed-out write later, and recovers', async () => {
    const { proxy, client } = await behindProxy();
    const metrics = createMetrics();
    const cache = cacheOn(client, { metrics, name: 'down' });
    await cache.set('k', 'v');
    await proxy.down();
    // The first write meets a dead connection: ioredis queues it, our deadline rejects it and defuses it.
    const started = performance.now();
    expect(await codeOf(cache.set('late-write', 'stale'))).toBe('E_REDIS_UNAVAILABLE');
    expect(performance.now() - started).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    const timings: number[] = [];
    for (let i = 0; i < 6; i++) {
      const begin = performance.now();
      expect(await bounded(cache.get('k'), TIMEOUT_MS + SLACK_MS)).toBeUndefined();
      timings.push(performance.now() - begin);
    }
    // Past the threshold the breaker answers without waiting for a timeout.
    expect(Math.min(...timings.slice(3))).toBeLessThan(TIMEOUT_MS);
    expect(cache.getStats().circuitBreakersOpen).toBe(1);
    let calls = 0;
    expect(
      await bounded(
        cache.getOrSet('k', () => {
          calls++;
          return 'from-db';
        }),
        TIMEOUT_MS + SLACK_MS,
      ),
    ).toBe('from-db');
    expect(calls).toBe(1);
    expect(await codeOf(cache.invalidateByTags(['t']))).toBe('E_REDIS_UNAVAILABLE');
    expect(cache.getStats().degraded).toBeGreaterThanOrEqual(7);
    expect(await metrics.text()).toMatch(
      /austa_cache_degraded_total\{cache="down",operation="get",reason="(timeout|circuit_open)"\} [1-9]/,
    );
    await proxy.up();
    expect(
      await eventually(
        () => cache.get('k'),
        (value) => value === 'v',
        10_000,
        100,
      ),
    ).toBe('v');
    // ioredis flushed its offline queue on reconnect: the write our deadline rejected arrived as a PING.
    await sleep(200);
    expect(await direct.exists(`${prefix}:down:e:late-write`)).toBe(0);
    await cache.set('k', 'v2');
    expect(await cache.get('k')).toBe('v2');
  });

  it("a write whose reply and invalidation were lost still evicts the other instances' L1 once Redis is back", async () => {
    const { proxy, client } = await behindProxy();
    // A roomier timeout than the suite's: only the swallowed write may time out on a loaded machine.
    const timeoutMs = 1000;
    const writer = cacheOn(client, { l1: true, timeoutMs });
    const readerClient = createTestClient(redisTargets(), 'standalone');
    cleanups.push(() => readerClient.quit());
    // Long L1 lifetime: only the invalidation can end the reader's copy within this test.
    const reader = cacheOn(readerClient, { l1: { maxTtlSeconds: 600 }, timeoutMs });
    await sleep(300);
    await writer.set('record', 'v1');
    // Once the reader's bus is confirmed, its L1 keeps what it reads.
    await eventually(
      async () => (await reader.get('record')) === 'v1' && reader.getStats().l1.hits > 0,
      (held) => held,
      5000,
      50,
    );
    // The SET reaches Redis but its reply does not come back; then the connection goes, so the invalidation that
    // follows the failed write cannot be published either.
    proxy.swallowReplies = true;
    const write = codeOf(writer.set('record', 'v2'));
    await sleep(50);
    await proxy.down();
    proxy.swallowReplies = false;
    expect(await write).toBe('E_REDIS_UNAVAILABLE');
    expect(await direct.get(`${prefix}:down:e:record`)).not.toBeNull();
    // Long enough for the writer's invalidation to time out too.
    await sleep(timeoutMs * 2.5);
    expect(await reader.get('record')).toBe('v1');
    await proxy.up();
    // Redis holds v2 (or the write's fate is unknown): the reader must stop serving v1 soon after the writer is back.
    expect(
      await eventually(
        () => reader.get('record'),
        (value) => value !== 'v1',
        5000,
        50,
      ),
    ).toBe('v2');
  });

  it('a write the connection lost after sending (E_MAYBE_APPLIED from @austa/redis-cluster) fails loudly and still invalidates other L1s', async () => {
    const target = redisTargets().standalone;
    const proxy = await startProxy({ host: target.host, port: target.port });
    const built = createRedisClient(
      { host: '127.0.0.1', port: proxy.port, commandTimeoutMs: 5000, resendInFlightWrites: false },
      { logger: { warn: () => {}, error: () => {} } },
    );
    cleanups.push(async () => {
      await built.close().catch(() => undefined);
      await proxy.close();
    });
    const writer = cacheOn(built.client as Redis, { l1: true, timeoutMs: 2000 });
    const readerClient = createTestClient(redisTargets(), 'standalone');
    cleanups.push(() => readerClient.quit());
    const reader = cacheOn(readerClient, { l1: { maxTtlSeconds: 600 }, timeoutMs: 2000 });
    await writer.set('chart', 'v1');
    await eventually(
      async () => (await reader.get('chart')) === 'v1' && reader.getStats().l1.hits > 0,
      (held) => held,
      5000,
      50,
    );
    proxy.swallowReplies = true;
    const write = writer.set('chart', 'v2').catch((error: unknown) => error);
    await sleep(100);
    // The connection resets with the SET sent and unanswered: the client may not send it again.
    proxy.dropAll();
    proxy.swallowReplies = false;
    const error = (await write) as { code?: string; cause?: { code?: string } };
    expect(error.code).toBe('E_REDIS_UNAVAILABLE');
    expect(error.cause?.code).toBe('E_MAYBE_APPLIED');
    expect(await direct.get(`${prefix}:down:e:chart`)).not.toBeNull();
    // The SET did run: the reader must not keep serving v1.
    expect(
      await eventually(
        () => reader.get('chart'),
        (value) => value !== 'v1',
        5000,
        50,
      ),
    ).toBe('v2');
  });

  it('serves L1 entries only until busToleranceMs after the bus stopped confirming, then misses, and forgets them when the bus is back', async () => {
    const { proxy, client } = await behindProxy();
    const busToleranceMs = 800;
    const reader = cacheOn(client, { l1: { busToleranceMs, heartbeatIntervalMs: 200 } });
    const writer = cacheOn(direct);
    await sleep(300);
    await writer.set('shared', 'v1');
    // The writer announces its set on the bus too: let that land before the reader fills its L1.
    await sleep(50);
    expect(await reader.get('shared')).toBe('v1');
    await sleep(50);
    expect(await reader.get('shared')).toBe('v1');
    expect(reader.getStats().l1.hits).toBeGreaterThanOrEqual(1);
    await proxy.down();
    const downAt = performance.now();
    // The reader cannot hear this invalidation.
    await writer.set('shared', 'v2');
    const stopped = await eventually(
      () => reader.get('shared'),
      (value) => value !== 'v1',
      busToleranceMs + SLACK_MS,
    );
    const servedFor = performance.now() - downAt;
    expect(stopped).toBeUndefined();
    expect(servedFor).toBeLessThan(busToleranceMs + TIMEOUT_MS + SLACK_MS);
    await proxy.up();
    // The old entry never comes back from L1: the first answers after recovery are misses or v2.
    const seen = new Set<unknown>();
    await eventually(
      async () => {
        const value = await reader.get('shared');
        seen.add(value);
        return value;
      },
      (value) => value === 'v2',
      10_000,
      50,
    );
    expect(seen.has('v1')).toBe(false);
  });

  it('a paused server gives bounded degraded answers, and everything recovers on resume', async () => {
    const target = redisTargets().standalone;
    const client = new Redis(target.url);
    client.on('error', () => {});
    cleanups.push(async () => client.disconnect());
    const cache = cacheOn(client, { namespace: 'paused' });
    await cache.set('k', 'v');
    await pauseNode(target);
    cleanups.push(() => resumeNode(target));
    try {
      const outcomes = await Promise.all([
        bounded(cache.get('k'), TIMEOUT_MS + SLACK_MS),
        bounded(
          cache.getOrSet('other', () => 'computed'),
          TIMEOUT_MS + SLACK_MS,
        ),
        bounded(codeOf(cache.set('x', 1)), TIMEOUT_MS + SLACK_MS),
        bounded(codeOf(cache.delete('k')), TIMEOUT_MS + SLACK_MS),
        // A scan first checks every master answers: a page gets twice timeoutMs, never more.
        bounded(codeOf(cache.clear()), 2 * TIMEOUT_MS + SLACK_MS),
        bounded(codeOf(cache.deletePattern('k*')), 2 * TIMEOUT_MS + SLACK_MS),
      ]);
      expect(outcomes).toEqual([
        undefined,
        'computed',
        'E_REDIS_UNAVAILABLE',
        'E_REDIS_UNAVAILABLE',
        'E_REDIS_UNAVAILABLE',
        'E_REDIS_UNAVAILABLE',
      ]);
      // The breaker is open after those failures: a clear now fails at once instead of waiting for the scan.
      for (let i = 0; i < 5; i++) await cache.get('k');
      const startedAt = performance.now();
      expect(await codeOf(cache.clear())).toBe('E_REDIS_UNAVAILABLE');
      expect(performance.now() - startedAt).toBeLessThan(TIMEOUT_MS);
    } finally {
      await resumeNode(target);
    }
    await eventually(
      async () =>
        (await cache.set('back', 1).then(
          () => cache.get('back'),
          () => null,
        )) ?? null,
      (value) => value === 1,
      10_000,
      100,
    );
    expect(await cache.get('back')).toBe(1);
  });
});

describe('cluster faults', () => {
  const prefix = uniquePrefix('cache-cluster-faults');
  const caches: Cache[] = [];
  const clients: Array<import('ioredis').Cluster> = [];
  function make(namespace: string, extra: Record<string, unknown> = {}) {
    const client = createTestClient(redisTargets(), 'cluster', {}, { retryDelayOnFailover: 100 });
    client.on('error', () => {});
    clients.push(client);
    const cache = createCache({
      redis: client,
      prefix,
      namespace,
      defaultTtlSeconds: 120,
      timeoutMs: 500,
      circuitBreaker: { failureThreshold: 5, openMs: 300 },
      logger: silent,
      ...extra,
    });
    caches.push(cache);
    return { cache, client };
  }
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((cache) => cache.close()));
    await restoreCluster(redisTargets().cluster, 60_000);
    await Promise.all(clients.splice(0).map((client) => client.quit().catch(() => undefined)));
  });
  afterAll(async () => {
    const client = createTestClient(redisTargets(), 'cluster');
    expect(await keysWithoutTtl(client, prefix)).toEqual([]);
    await deleteByPrefix(client, prefix);
    await client.quit();
  });

  it('keeps answering correctly through a master failover during a getOrSet loop, and nothing hangs', async () => {
    const { cache } = make('failover');
    const cluster = redisTargets().cluster;
    const keys = Array.from({ length: 120 }, (_, i) => `item:${i}`);
    const expected = (key: string) => `value-of-${key}`;
    await cache.setMany(keys.map((key) => ({ key, value: expected(key) })));
    const victim = await slotOwner(cluster, keySlot(`${prefix}:failover:e:${keys[0]}`));
    const outcomes: Array<{ at: number; outcome: 'ok' | 'wrong' | 'error' | 'hung' }> = [];
    let stop = false;
    const worker = async (id: number) => {
      for (let i = id; !stop; i += 5) {
        const key = keys[i % keys.length] as string;
        const result = await bounded(
          cache
            .getOrSet(key, () => expected(key), { hardTimeoutMs: 2000 })
            .then(
              (value) => (value === expected(key) ? ('ok' as const) : ('wrong' as const)),
              () => 'error' as const,
            ),
          2000 + 500 + SLACK_MS,
        );
        outcomes.push({ at: Date.now(), outcome: result });
        if (result !== 'ok') await sleep(20);
      }
    };
    const workers = Array.from({ length: 5 }, (_, id) => worker(id));
    await sleep(300);
    await killNode(cluster, victim);
    await waitForPromotion(cluster, victim, 30_000);
    const promotedAt = Date.now();
    await eventually(
      async () => outcomes.filter((o) => o.at > promotedAt && o.outcome === 'ok').length,
      (count) => count >= 200,
      20_000,
    );
    stop = true;
    await Promise.all(workers);
    expect(
      outcomes.filter((o) => o.outcome === 'hung' || o.outcome === 'wrong' || o.outcome === 'error'),
    ).toEqual([]);
    expect(outcomes.filter((o) => o.at > promotedAt).length).toBeGreaterThanOrEqual(200);
    // After the failover the entries on the surviving replica are served from Redis again, not recomputed.
    expect(cache.getStats().l2.hits).toBeGreaterThan(0);
    await restartNode(cluster, victim);
  });

  it('setMany and warmUp right after a failover follow the MOVED replies of their pipelines', async () => {
    const { cache: first } = make('moved');
    const { cache: second } = make('moved');
    const cluster = redisTargets().cluster;
    const keys = Array.from({ length: 60 }, (_, i) => `m:${i}`);
    await first.setMany(keys.map((key) => ({ key, value: 'v0' })));
    expect(await second.getMany(keys)).toEqual(keys.map(() => 'v0'));
    // A clean failover: both clients' slot maps still name the old masters, which now answer MOVED.
    const { masters } = await clusterTopology(cluster);
    for (const master of masters) {
      const replica = master.replicaPorts[0];
      if (replica !== undefined) await failover(cluster, replica, 'default');
    }
    await first.setMany(keys.map((key) => ({ key, value: 'v1' })));
    expect(await first.getMany(keys)).toEqual(keys.map(() => 'v1'));
    expect(await second.warmUp(keys.map((key) => ({ key, value: 'v2' })))).toEqual({
      written: keys.length,
      failed: 0,
    });
    expect(await second.getMany(keys)).toEqual(keys.map(() => 'v2'));
  });

  it('a paused master only degrades the keys it serves, within the timeout', async () => {
    const { cache } = make('paused');
    const cluster = redisTargets().cluster;
    const { masters } = await clusterTopology(cluster);
    const keys = Array.from({ length: 60 }, (_, i) => `p:${i}`);
    await cache.setMany(keys.map((key) => ({ key, value: key })));
    const paused = masters[0]?.port as number;
    const owner = async (key: string) => slotOwner(cluster, keySlot(`${prefix}:paused:e:${key}`));
    const owners = await Promise.all(keys.map(owner));
    await pauseNode(cluster, paused);
    try {
      const answers = await Promise.all(keys.map((key) => bounded(cache.get(key), 500 + SLACK_MS)));
      keys.forEach((key, i) => {
        expect(answers[i]).toBe(owners[i] === paused ? undefined : key);
      });
      // A clear that cannot reach every slot says so instead of reporting a partial result.
      const clear = await bounded(codeOf(cache.clear()), 3 * 1000 + 500 + SLACK_MS);
      expect(clear).toBe('E_INCOMPLETE_SCAN');
    } finally {
      await resumeNode(cluster, paused);
    }
    const back = await eventually(
      () => cache.getMany(keys),
      (values) => values.every((value, i) => value === keys[i]),
      10_000,
      100,
    );
    expect(back).toEqual(keys);
  });

  it('an L1 whose subscriber connections are killed stops serving a value it missed the invalidation of', async () => {
    const busToleranceMs = 800;
    const { cache: reader } = make('bus', { l1: { busToleranceMs, heartbeatIntervalMs: 200 } });
    const { cache: writer } = make('bus');
    const cluster = redisTargets().cluster;
    await sleep(400);
    await writer.set('doc', 'v1');
    expect(
      await eventually(
        () => reader.get('doc'),
        (value) => value === 'v1',
        2000,
      ),
    ).toBe('v1');
    await sleep(50);
    await reader.get('doc');
    const hits = reader.getStats().l1.hits;
    expect(await reader.get('doc')).toBe('v1');
    expect(reader.getStats().l1.hits).toBe(hits + 1);
    // Every pub/sub connection of every node goes: the reader's subscriber moves to another node.
    await Promise.all(
      cluster.nodes.map(async (node) => {
        const direct = new Redis(node.port, node.host);
        try {
          await direct.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
        } finally {
          direct.disconnect();
        }
      }),
    );
    const killedAt = performance.now();
    await writer.set('doc', 'v2');
    const seen = await eventually(
      () => reader.get('doc'),
      (value) => value === 'v2',
      busToleranceMs + SLACK_MS,
    );
    expect(seen).toBe('v2');
    expect(performance.now() - killedAt).toBeLessThan(busToleranceMs + 200 + SLACK_MS);
  });

  it('the sweep reclaims thousands of entries of one tag in the background', async () => {
    const { cache, client } = make('bulk-sweep', { timeoutMs: 2000 });
    const keys = Array.from({ length: 3000 }, (_, i) => `e${i}`);
    await cache.setMany(keys.map((key) => ({ key, value: 1, tags: ['big'] })));
    expect(await client.scard(`${prefix}:bulk-sweep:t:{big}:k`)).toBe(3000);
    await cache.invalidateByTags(['big']);
    expect(await cache.get('e1')).toBeUndefined();
    const left = await eventually(
      async () => client.scard(`${prefix}:bulk-sweep:t:{big}:k`),
      (count) => count === 0,
      30_000,
      200,
    );
    expect(left).toBe(0);
    expect(cache.getStats().swept).toBe(3000);
  });

  it('follows a slot migration: reads, writes and tag invalidations stay correct', async () => {
    const { cache } = make('migrate', { l1: true });
    const cluster = redisTargets().cluster;
    await sleep(300);
    const key = 'moving';
    const redisKey = `${prefix}:migrate:e:${key}`;
    await cache.set(key, 'before', { tags: ['m'] });
    const slot = keySlot(redisKey);
    const from = await slotOwner(cluster, slot);
    const to = (await clusterTopology(cluster)).masters.find((master) => master.port !== from)
      ?.port as number;
    await migrateSlot(cluster, slot, from, to, { stopAfter: 'importing' });
    expect(await cache.get(key)).toBe('before');
    await cache.set(key, 'during', { tags: ['m'] });
    expect(await cache.get(key)).toBe('during');
    await migrateSlot(cluster, slot, from, to).catch(() => undefined);
    await restoreCluster(cluster, 30_000);
    expect(await cache.get(key)).toBe('during');
    await cache.invalidateByTags(['m']);
    expect(await cache.get(key)).toBeUndefined();
  });
});
