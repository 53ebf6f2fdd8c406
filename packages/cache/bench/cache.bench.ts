import { type BenchCase, type BenchContext, defineBench, loadRival, type PreparedCase } from '@austa/bench';
// The built package, as users run it (and as the rivals run): `pnpm bench` builds first. Through tsx, the sources
// paid for helpers of its transform on every closure made per call.
import { type Cache, createCache } from '@austa/cache';
import type { Cluster, Redis } from 'ioredis';

/*
 * Each library gets the same ioredis client options (ioredis defaults, no auto-pipelining), writes its own 1,000
 * entries of the same 256-byte string before timing, and reads them with its own public API. cache-manager's
 * @keyv/redis store only works with node-redis (@redis/client), so it runs on that client with its defaults.
 */

const ioredis = await loadRival<typeof import('ioredis')>('ioredis');

function ioredisClient(context: BenchContext): Redis | Cluster {
  return context.target.topology === 'cluster'
    ? new ioredis.Cluster(context.target.nodes ?? [])
    : new ioredis.Redis(context.target.url ?? '');
}

async function ready(client: Redis | Cluster): Promise<void> {
  await client.ping();
}

const unique = () => Math.random().toString(36).slice(2, 10);
const keyOf = (context: BenchContext, i: number) => `k:${i % context.keys.length}`;

// The rivals' types live in tooling/bench's dependencies; these are the parts of their APIs used here.
interface BentoCacheApi {
  get(options: { key: string }): Promise<unknown>;
  set(options: { key: string; value: unknown }): Promise<unknown>;
  getOrSet(options: { key: string; factory: () => unknown }): Promise<unknown>;
  clear(): Promise<void>;
  disconnectAll(): Promise<void>;
  on(event: 'cache:hit', callback: (data: { layer?: string }) => void): unknown;
}
interface BentoStore {
  useL1Layer(driver: unknown): BentoStore;
  useL2Layer(driver: unknown): BentoStore;
  useBus(driver: unknown): BentoStore;
}
interface BentoModule {
  BentoCache: new (options: {
    default: string;
    stores: Record<string, BentoStore>;
    ttl: string;
  }) => BentoCacheApi;
  bentostore(): BentoStore;
}
interface CacheManagerApi {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown, ttlMs: number): Promise<unknown>;
  clear(): Promise<unknown>;
  disconnect(): Promise<unknown>;
}

// ---------------------------------------------------------------------------------------------------------------
// @austa/cache

interface AustaSetup {
  l1?: boolean;
  admission?: 'lru' | 'frequency';
  tags?: boolean;
  keys?: number;
  l1MaxEntries?: number;
}

async function austa(context: BenchContext, setup: AustaSetup = {}) {
  const redis = ioredisClient(context);
  await ready(redis);
  const cache = createCache({
    redis,
    namespace: `b${unique()}`,
    prefix: context.prefix,
    defaultTtlSeconds: 900,
    // Setup writes 1,000 entries on a machine other engineers load too: a generous bound keeps it from failing there.
    // Hit paths never wait for it.
    timeoutMs: 5000,
    // The L1 keeps entries as long as the entries live (15 minutes), as bentocache's memory tier does with the same
    // TTL: with the default cap of 60 s, the slow Zipf runs measured expiries, not the admission policy.
    ...(setup.l1
      ? {
          l1: {
            maxEntries: setup.l1MaxEntries ?? 10_000,
            admission: setup.admission ?? 'lru',
            maxTtlSeconds: 900,
          },
        }
      : {}),
  });
  if (setup.l1) await new Promise((resolve) => setTimeout(resolve, 200));
  const count = setup.keys ?? context.keys.length;
  if (count === context.keys.length) {
    await cache.setMany(
      Array.from({ length: count }, (_, i) => ({
        key: `k:${i}`,
        value: context.value,
        tags: setup.tags ? [`t:${i % 10}`] : undefined,
      })),
    );
  }
  return {
    cache,
    async teardown() {
      await cache.clear();
      await cache.close();
      await redis.quit();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// bentocache

async function bento(context: BenchContext, withL1: boolean, maxItems = 10_000) {
  const { BentoCache, bentostore } = await loadRival<BentoModule>('bentocache');
  const { redisDriver, redisBusDriver } = await loadRival<{
    redisDriver(options: { connection: unknown; prefix: string }): unknown;
    redisBusDriver(options: { connection: unknown }): unknown;
  }>('bentocache/drivers/redis');
  const { memoryDriver } = await loadRival<{ memoryDriver(options: { maxItems: number }): unknown }>(
    'bentocache/drivers/memory',
  );
  const redis = ioredisClient(context);
  await ready(redis);
  const busConnection = withL1 ? ioredisClient(context) : undefined;
  let store = bentostore();
  if (withL1) store = store.useL1Layer(memoryDriver({ maxItems }));
  store = store.useL2Layer(redisDriver({ connection: redis, prefix: `${context.prefix}:bento:${unique()}` }));
  if (busConnection) store = store.useBus(redisBusDriver({ connection: busConnection }));
  const cache = new BentoCache({ default: 'cache', stores: { cache: store }, ttl: '15m' });
  return {
    cache,
    async fill(count: number) {
      for (let pass = 0; pass < 5; pass++) {
        const missing: number[] = [];
        for (let i = 0; i < count; i++) {
          if (pass === 0 || (await cache.get({ key: `k:${i}` })) !== context.value) missing.push(i);
        }
        if (missing.length === 0) break;
        for (let i = 0; i < missing.length; i += 100) {
          await Promise.all(
            missing.slice(i, i + 100).map((n) => cache.set({ key: `k:${n}`, value: context.value })),
          );
        }
      }
    },
    async teardown() {
      await cache.clear();
      await cache.disconnectAll();
      busConnection?.disconnect();
      redis.disconnect();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// cache-manager v7 + @keyv/redis

async function cacheManager(context: BenchContext) {
  const { createCache: createManager } = await loadRival<{
    createCache(options: { stores: unknown[] }): CacheManagerApi;
  }>('cache-manager');
  const { Keyv } = await loadRival<{
    Keyv: new (options: { store: unknown; namespace: string; useKeyPrefix: boolean }) => unknown;
  }>('keyv');
  const keyvRedis = await loadRival<{
    default: new (connection: unknown) => unknown;
    createCluster(options: { rootNodes: Array<{ url: string }> }): unknown;
  }>('@keyv/redis');
  const KeyvRedis = keyvRedis.default;
  const connection =
    context.target.topology === 'cluster'
      ? keyvRedis.createCluster({
          rootNodes: (context.target.nodes ?? []).map((node) => ({
            url: `redis://${node.host}:${node.port}`,
          })),
        })
      : (context.target.url ?? '');
  const store = new KeyvRedis(connection);
  const keyv = new Keyv({ store, namespace: `${context.prefix}:cm:${unique()}`, useKeyPrefix: true });
  const cache = createManager({ stores: [keyv] });
  // cache-manager swallows store errors: a write during the cluster client's first connection can be lost without a
  // word. Fill, then read every key back and write the missing ones again, so the run measures hits.
  for (let pass = 0; pass < 5; pass++) {
    const missing: number[] = [];
    for (let i = 0; i < context.keys.length; i++) {
      if (pass === 0 || (await cache.get(`k:${i}`)) !== context.value) missing.push(i);
    }
    if (missing.length === 0) break;
    for (let i = 0; i < missing.length; i += 100) {
      await Promise.all(missing.slice(i, i + 100).map((n) => cache.set(`k:${n}`, context.value, 900_000)));
    }
  }
  return {
    cache,
    async teardown() {
      await cache.clear().catch(() => undefined);
      await cache.disconnect().catch(() => undefined);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Cases

/**
 * Answers that were not the stored value (a library swallowed an error under load, say). Counted, not thrown: one
 * failed read must not end the run, and the count is printed at teardown, so a case that did not really hit shows.
 */
let wrongAnswers = 0;
function check(value: unknown, context: BenchContext): void {
  if (value !== context.value) wrongAnswers++;
}
function reportWrongAnswers(lib: string, op: string, topology: string): void {
  if (wrongAnswers === 0) return;
  process.stdout.write(`${JSON.stringify({ package: 'cache', op, lib, topology, wrongAnswers })}\n`);
  wrongAnswers = 0;
}

const cmGet = (lib: string, vs?: string): BenchCase => ({
  op: 'get:hit:l2',
  lib,
  ...(vs ? { vs } : {}),
  async setup(context): Promise<PreparedCase> {
    const { cache, teardown } = await cacheManager(context);
    return {
      run: async (i) => check(await cache.get(keyOf(context, i)), context),
      async teardown() {
        reportWrongAnswers(lib, 'get:hit:l2', context.target.topology);
        await teardown();
      },
    };
  },
});

const bentoGet = (op: string, lib: string, withL1: boolean, getOrSet: boolean, vs?: string): BenchCase => ({
  op,
  lib,
  ...(vs ? { vs } : {}),
  async setup(context): Promise<PreparedCase> {
    const bc = await bento(context, withL1);
    await bc.fill(context.keys.length);
    const factory = () => context.value;
    return {
      run: getOrSet
        ? async (i) => check(await bc.cache.getOrSet({ key: keyOf(context, i), factory }), context)
        : async (i) => check(await bc.cache.get({ key: keyOf(context, i) }), context),
      async teardown() {
        reportWrongAnswers(lib, op, context.target.topology);
        await bc.teardown();
      },
    };
  },
});

const austaCase = (op: string, lib: string, vs: string, setup: AustaSetup, getOrSet: boolean): BenchCase => ({
  op,
  lib,
  vs,
  async setup(context): Promise<PreparedCase> {
    const { cache, teardown } = await austa(context, setup);
    const factory = () => context.value;
    // The tags each entry was written under (as a caller of getOrSet would pass them).
    const tagOptions = Array.from({ length: 10 }, (_, t) => ({ tags: [`t:${t}`] }));
    return {
      run: getOrSet
        ? async (i) =>
            check(
              await cache.getOrSet(
                keyOf(context, i),
                factory,
                setup.tags ? tagOptions[(i % context.keys.length) % 10] : undefined,
              ),
              context,
            )
        : async (i) => check(await cache.get(keyOf(context, i)), context),
      async teardown() {
        reportWrongAnswers(lib, op, context.target.topology);
        await teardown();
      },
    };
  },
});

// ---------------------------------------------------------------------------------------------------------------
// L1 hits of an object value: both libraries copy it per hit (bentocache serializes its L1 by default; our L1 keeps
// immutable values as they are, so the string cases above cost us no copy at all).

const objectValue = (context: BenchContext) => ({
  id: 'patient-000123',
  name: context.value.slice(0, 160),
  visits: 12,
  flags: ['a', 'b', 'c'],
  address: { city: 'São Paulo', zip: '01000-000' },
});

const objectL1: BenchCase[] = [
  {
    op: 'getOrSet:hit:l1+l2:object',
    lib: 'bentocache (L1+L2)',
    async setup(context): Promise<PreparedCase> {
      const bc = await bento(context, true);
      const value = objectValue(context);
      const factory = () => value;
      for (let i = 0; i < context.keys.length; i++) await bc.cache.getOrSet({ key: `o:${i}`, factory });
      return {
        run: (i) => bc.cache.getOrSet({ key: `o:${i % context.keys.length}`, factory }),
        teardown: bc.teardown,
      };
    },
  },
  {
    op: 'getOrSet:hit:l1+l2:object',
    lib: '@austa/cache',
    vs: 'bentocache (L1+L2)',
    async setup(context): Promise<PreparedCase> {
      const { cache, teardown } = await austa(context, { l1: true });
      const value = objectValue(context);
      const factory = () => value;
      for (let i = 0; i < context.keys.length; i++) await cache.getOrSet(`o:${i}`, factory);
      return { run: (i) => cache.getOrSet(`o:${i % context.keys.length}`, factory), teardown };
    },
  },
];

// ---------------------------------------------------------------------------------------------------------------
// Zipf(1.0) over 100,000 keys, L1 sized to 10%: hit rates printed as a JSON line at teardown.

const ZIPF_KEYS = 100_000;
const MISS_PENALTY_MS = 1;
/**
 * Lookups made in setup, before any timed run: hit rates are of a warm L1 (steady state), as cache policies are
 * compared. From cold, 264k lookups (12 default rounds) are too few for any policy to tell the rare keys at the edge
 * of the L1 apart: over their second half an exact-count policy holds 78%; after 1M, 80.5% (the best possible for a
 * policy that knows frequencies is 81%). Every library gets the same warm-up trace through its own getOrSet.
 */
const ZIPF_WARM_LOOKUPS = 1_000_000;
const ZIPF_TRACE = 1 << 21;

/** Key indexes drawn from Zipf(1.0) by inverse CDF, ranks shuffled over the key space (hot keys on every slot). */
function zipfSequence(length: number, seed = 42): Uint32Array {
  let state = seed;
  const random = () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const cdf = new Float64Array(ZIPF_KEYS);
  let sum = 0;
  for (let rank = 0; rank < ZIPF_KEYS; rank++) {
    sum += 1 / (rank + 1);
    cdf[rank] = sum;
  }
  const permutation = Uint32Array.from({ length: ZIPF_KEYS }, (_, i) => i);
  for (let i = ZIPF_KEYS - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [permutation[i], permutation[j]] = [permutation[j] as number, permutation[i] as number];
  }
  const out = new Uint32Array(length);
  for (let n = 0; n < length; n++) {
    const target = random() * sum;
    let low = 0;
    let high = ZIPF_KEYS - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((cdf[middle] as number) < target) low = middle + 1;
      else high = middle;
    }
    out[n] = permutation[low] as number;
  }
  return out;
}

const penalty = (value: string) =>
  new Promise<string>((resolve) => setTimeout(resolve, MISS_PENALTY_MS, value));

/** Counts per timed run; the report covers the second half of the runs (warm caches), and all of them. */
class HitCounter {
  lookups = 0;
  l1Hits = 0;
  factoryCalls = 0;
  private readonly marks: Array<{ lookups: number; l1Hits: number; factoryCalls: number }> = [];
  private warm = { lookups: 0, l1Hits: 0 };

  /** Runs the warm-up trace through `lookup`, 100 callers in flight; the counts of the timed runs start after it. */
  async warmUp(lookup: (n: number) => Promise<void>): Promise<void> {
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        while (this.lookups < ZIPF_WARM_LOOKUPS) await lookup(this.lookups++);
      }),
    );
    this.warm = { lookups: this.lookups, l1Hits: this.l1Hits };
  }

  /** Called at the start of each run (i === 0). */
  mark(): void {
    this.marks.push({ lookups: this.lookups, l1Hits: this.l1Hits, factoryCalls: this.factoryCalls });
  }

  report(lib: string, topology: string): void {
    const from = this.marks[Math.floor(this.marks.length / 2)] ?? { ...this.warm, factoryCalls: 0 };
    const lookups = this.lookups - from.lookups;
    const rate = (n: number, d: number) => Math.round((n / Math.max(1, d)) * 1000) / 1000;
    process.stdout.write(
      `${JSON.stringify({
        package: 'cache',
        op: 'getOrSet:zipf1.0-100k-l1-10pct',
        lib,
        topology,
        warmLookups: ZIPF_WARM_LOOKUPS,
        window: 'second half of the runs, after the warm-up',
        lookups,
        l1HitRate: rate(this.l1Hits - from.l1Hits, lookups),
        hitRate: rate(lookups - (this.factoryCalls - from.factoryCalls), lookups),
        l1HitRateAllRuns: rate(this.l1Hits - this.warm.l1Hits, this.lookups - this.warm.lookups),
        missPenaltyMs: MISS_PENALTY_MS,
      })}\n`,
    );
  }
}

const zipfAusta = (admission: 'lru' | 'frequency'): BenchCase => ({
  op: 'getOrSet:zipf1.0-100k-l1-10pct',
  lib: admission === 'lru' ? '@austa/cache' : '@austa/cache (frequency admission)',
  vs: 'bentocache (L1+L2)',
  async setup(context): Promise<PreparedCase> {
    const { cache, teardown } = await austa(context, {
      l1: true,
      keys: ZIPF_KEYS,
      l1MaxEntries: ZIPF_KEYS / 10,
      admission,
    });
    const sequence = zipfSequence(ZIPF_TRACE);
    const counter = new HitCounter();
    const factory = () => {
      counter.factoryCalls++;
      return penalty(context.value);
    };
    const lookup = async (n: number) => {
      check(await cache.getOrSet(`z:${sequence[n & (ZIPF_TRACE - 1)]}`, factory), context);
      counter.l1Hits = cache.getStats().l1.hits;
    };
    await counter.warmUp(lookup);
    return {
      run: (i) => {
        if (i === 0) counter.mark();
        return lookup(counter.lookups++);
      },
      async teardown() {
        counter.report(
          admission === 'lru' ? '@austa/cache' : '@austa/cache (frequency admission)',
          context.target.topology,
        );
        await teardown();
      },
    };
  },
});

const zipfBento: BenchCase = {
  op: 'getOrSet:zipf1.0-100k-l1-10pct',
  lib: 'bentocache (L1+L2)',
  async setup(context): Promise<PreparedCase> {
    const bc = await bento(context, true, ZIPF_KEYS / 10);
    const sequence = zipfSequence(ZIPF_TRACE);
    const counter = new HitCounter();
    bc.cache.on('cache:hit', ({ layer }) => {
      if (layer === 'l1') counter.l1Hits++;
    });
    const factory = () => {
      counter.factoryCalls++;
      return penalty(context.value);
    };
    const lookup = async (n: number) => {
      check(await bc.cache.getOrSet({ key: `z:${sequence[n & (ZIPF_TRACE - 1)]}`, factory }), context);
    };
    await counter.warmUp(lookup);
    return {
      run: (i) => {
        if (i === 0) counter.mark();
        return lookup(counter.lookups++);
      },
      async teardown() {
        counter.report('bentocache (L1+L2)', context.target.topology);
        await bc.teardown();
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------------------------
// L1 invalidation delay across two instances: p50/p99 printed at teardown.

const invalidation: BenchCase = {
  op: 'l1-invalidation:two-instances (1% probes)',
  lib: '@austa/cache',
  async setup(context): Promise<PreparedCase> {
    const namespace = `inv${unique()}`;
    const clients = [ioredisClient(context), ioredisClient(context)];
    await Promise.all(clients.map(ready));
    const [reader, writer] = clients.map((redis) =>
      createCache({
        redis,
        namespace,
        prefix: context.prefix,
        defaultTtlSeconds: 900,
        timeoutMs: 5000,
        l1: true,
      }),
    ) as [Cache, Cache];
    await new Promise((resolve) => setTimeout(resolve, 300));
    const delays: number[] = [];
    let version = 0;
    // One probe at a time: this measures the delay of one invalidation, not a queue of 100 concurrent probes.
    let queue: Promise<unknown> = Promise.resolve();
    const probe = async (key: string) => {
      const value = ++version;
      await reader.get(key);
      // A write that fails on this loaded machine gives no sample, rather than ending the run.
      if (
        !(await writer.set(key, value).then(
          () => true,
          () => false,
        ))
      )
        return;
      const started = performance.now();
      while ((await reader.get(key)) !== value) await new Promise((resolve) => setImmediate(resolve));
      delays.push(performance.now() - started);
    };
    return {
      // Every 100th operation is a probe; the others are L1 reads, so a full run stays a few seconds long.
      run: (i) => {
        if (i % 100 !== 0) return reader.get(keyOf(context, i));
        queue = queue.then(() => probe(keyOf(context, i)));
        return queue;
      },
      async teardown() {
        delays.sort((a, b) => a - b);
        const at = (q: number) =>
          Math.round((delays[Math.floor(q * (delays.length - 1))] ?? Number.NaN) * 1000) / 1000;
        process.stdout.write(
          `${JSON.stringify({ package: 'cache', op: 'l1-invalidation:delay-after-set', lib: '@austa/cache', topology: context.target.topology, samples: delays.length, p50Ms: at(0.5), p99Ms: at(0.99), p999Ms: at(0.999) })}\n`,
        );
        await writer.clear();
        await Promise.all([reader.close(), writer.close()]);
        await Promise.all(clients.map((client) => client.quit()));
      },
    };
  },
};

export default defineBench({
  package: 'cache',
  cases: [
    // get hit, Redis tier only.
    cmGet('cache-manager+@keyv/redis'),
    cmGet('cache-manager+@keyv/redis (control)', 'cache-manager+@keyv/redis'),
    bentoGet('get:hit:l2', 'bentocache (L2)', false, false, 'cache-manager+@keyv/redis'),
    austaCase('get:hit:l2', '@austa/cache', 'cache-manager+@keyv/redis', {}, false),
    austaCase('get:hit:l2', '@austa/cache (vs bentocache)', 'bentocache (L2)', {}, false),
    austaCase('get:hit:l2', '@austa/cache (tagged entries)', 'bentocache (L2)', { tags: true }, false),
    // getOrSet hit, Redis tier only.
    bentoGet('getOrSet:hit:l2', 'bentocache (L2)', false, true),
    bentoGet('getOrSet:hit:l2', 'bentocache (L2) (control)', false, true, 'bentocache (L2)'),
    austaCase('getOrSet:hit:l2', '@austa/cache', 'bentocache (L2)', {}, true),
    austaCase('getOrSet:hit:l2', '@austa/cache (tagged entries)', 'bentocache (L2)', { tags: true }, true),
    // getOrSet hit with L1.
    bentoGet('getOrSet:hit:l1+l2', 'bentocache (L1+L2)', true, true),
    bentoGet('getOrSet:hit:l1+l2', 'bentocache (L1+L2) (control)', true, true, 'bentocache (L1+L2)'),
    austaCase('getOrSet:hit:l1+l2', '@austa/cache', 'bentocache (L1+L2)', { l1: true }, true),
    ...objectL1,
    // Zipf hit rate and invalidation delay.
    zipfBento,
    zipfAusta('lru'),
    zipfAusta('frequency'),
    invalidation,
  ],
});
