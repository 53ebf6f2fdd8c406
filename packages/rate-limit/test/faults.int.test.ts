import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createRedisClient, nodeRouter } from '@austa/redis-cluster';
import {
  type ClusterDescriptor,
  clientKill,
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
  restoreCluster,
  resumeNode,
  type StandaloneHandle,
  slotOwner,
  startRedisStandalone,
  uniquePrefix,
  waitForPromotion,
} from '@austa/test-env/vitest';
import { type Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createRateLimiter,
  type FailurePolicy,
  type RateLimiter,
  type RateLimitResult,
} from '../src/index.js';
import { eventually, houseClient, sleep, timed } from './support.js';

const TIMEOUT_MS = 300;
/**
 * What a check may take beyond its timeout on this shared 2-core machine (event loop and timer lag under load). Still
 * well below the client's own 2 s command timeout, so a pass proves the limiter's timer answered.
 */
const SLACK_MS = 700;
const POLICIES: FailurePolicy[] = ['fail-open', 'fail-closed', 'insurance'];
const config = { limit: 3, windowSeconds: 3600 };

function expectPolicyAnswer(policy: FailurePolicy, results: RateLimitResult[]) {
  expect(results.every((r) => r.fallback === policy)).toBe(true);
  const allowed = results.map((r) => r.allowed);
  if (policy === 'fail-open') expect(allowed.every(Boolean)).toBe(true);
  if (policy === 'fail-closed') {
    expect(allowed.some(Boolean)).toBe(false);
    expect(results.every((r) => r.retryAfterMs === 1000)).toBe(true);
  }
  // The insurance limiter applies the limit of 3 in memory.
  if (policy === 'insurance') expect(allowed).toEqual([true, true, true, false, false]);
}

/** Five sequential checks, each of which must answer within the timeout plus slack. */
async function fiveChecks(limiter: RateLimiter, key: string): Promise<RateLimitResult[]> {
  const results: RateLimitResult[] = [];
  for (let i = 0; i < 5; i++) {
    const outcome = await timed(limiter.checkLimit(key, config, 'fixed-window'));
    expect(outcome.error).toBeUndefined();
    expect(outcome.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    results.push(outcome.value as RateLimitResult);
  }
  return results;
}

describe('failure policies on a standalone server', () => {
  let server: StandaloneHandle;
  let client: Redis;
  const prefix = uniquePrefix('rl-faults-standalone');
  const descriptor = () => ({
    nodes: [{ host: server.host, port: server.port }],
    owned: true,
    stateDir: server.stateDir,
  });

  async function restartServer() {
    // The server's own config file is the whole recipe (port, pidfile, no persistence); its pidfile lets the
    // handle's stop() find the new process.
    const child = spawn(
      'redis-server',
      [join(server.stateDir as string, `node-${server.port}`, 'redis.conf')],
      {
        stdio: 'ignore',
        detached: true,
      },
    );
    child.unref();
    const probe = new Redis(server.port, server.host, { lazyConnect: true, retryStrategy: () => 50 });
    probe.on('error', () => {});
    try {
      await eventually(
        () =>
          probe.ping().then(
            () => true,
            () => false,
          ),
        (ok) => ok,
        10_000,
      );
    } finally {
      probe.disconnect();
    }
  }

  beforeAll(async () => {
    server = await startRedisStandalone();
    client = new Redis(server.url, { maxRetriesPerRequest: 3 });
    client.on('error', () => {});
    await client.ping();
  });

  afterAll(async () => {
    client.disconnect();
    await server.stop();
  });

  it.each(POLICIES)('%s: answers within the timeout while Redis is paused, then recovers', async (policy) => {
    const limiter = createRateLimiter({
      redis: client,
      prefix,
      failurePolicy: policy,
      timeoutMs: TIMEOUT_MS,
    });
    const key = `paused-${policy}`;
    expect((await limiter.checkLimit(key, config, 'fixed-window')).fallback).toBeNull();
    await pauseNode(server);
    try {
      expectPolicyAnswer(policy, await fiveChecks(limiter, `${key}-outage`));
    } finally {
      await resumeNode(server);
    }
    const recovered = await eventually(
      () => limiter.checkLimit(key, config, 'fixed-window'),
      (result) => result.fallback === null,
      5000,
    );
    expect(recovered.fallback).toBeNull();
    await limiter.close();
  });

  it('cleanup() and reset() without a config fail within the timeout while Redis is paused, also on a client without commandTimeout', async () => {
    const limiter = createRateLimiter({ redis: client, prefix, timeoutMs: TIMEOUT_MS });
    await limiter.checkLimit('scan-paused', config, 'fixed-window');
    await pauseNode(server);
    let cleanup: Awaited<ReturnType<typeof timed>>;
    let reset: Awaited<ReturnType<typeof timed>>;
    try {
      [cleanup, reset] = await Promise.all([
        timed(limiter.cleanup()),
        timed(limiter.reset('scan-paused', 'fixed-window')),
      ]);
    } finally {
      await resumeNode(server);
    }
    for (const outcome of [cleanup, reset]) {
      expect(outcome.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
      expect(outcome.error).toMatchObject({ code: 'E_TIMEOUT' });
    }
    // Once Redis answers again, so do they.
    expect(await limiter.reset('scan-paused', 'fixed-window')).toBe(1);
    await limiter.close();
  });

  it('re-sends idempotent calls whose connection closed before the reply (E_MAYBE_APPLIED), and answers checks by the policy', async () => {
    const name = `maybe${process.pid}`;
    const house = createRedisClient(
      { url: server.url, name, commandTimeoutMs: 5000, resendInFlightWrites: false },
      { logger: { warn: () => {}, error: () => {} } },
    );
    const control = new Redis(server.url);
    const limiter = createRateLimiter({ redis: house.client, prefix, timeoutMs: 4000 });
    try {
      await limiter.checkLimit('maybe-check', config, 'fixed-window');
      /** Holds the writes of `calls` in CLIENT PAUSE WRITE, then closes the connection they were sent on. */
      async function lostInFlight<T>(calls: () => Promise<T>[]): Promise<PromiseSettledResult<T>[]> {
        await control.call('CLIENT', 'PAUSE', '1000', 'WRITE');
        const pending = Promise.allSettled(calls());
        await sleep(150);
        expect(await clientKill(descriptor(), { name: `austa:${name}` })).toBeGreaterThan(0);
        return pending;
      }
      const [blocked, status] = await lostInFlight<unknown>(() => [
        limiter.block('maybe-block', 60),
        limiter.getStatus('maybe-check', config, 'fixed-window'),
      ]);
      expect(blocked).toMatchObject({ status: 'fulfilled' });
      expect(status).toMatchObject({ status: 'fulfilled', value: { remaining: 2, fallback: null } });
      expect(await limiter.isBlocked('maybe-block')).toBe(true);
      const [unblocked] = await lostInFlight(() => [limiter.unblock('maybe-block')]);
      expect(unblocked).toMatchObject({ status: 'fulfilled' });
      expect(await limiter.isBlocked('maybe-block')).toBe(false);
      // A check is not idempotent: it is never sent twice. Its write may have happened; the policy answers it.
      const [checked] = await lostInFlight(() => [limiter.checkLimit('maybe-check', config, 'fixed-window')]);
      expect(checked).toMatchObject({ status: 'fulfilled', value: { fallback: 'insurance' } });
    } finally {
      await control.call('CLIENT', 'UNPAUSE');
      await limiter.close();
      await house.close();
      control.disconnect();
    }
  });

  it('records nothing for checks that reach Redis after the policy already answered them', async () => {
    const limiter = createRateLimiter({ redis: client, prefix, timeoutMs: TIMEOUT_MS });
    const key = 'late';
    await limiter.checkLimit(key, config, 'fixed-window');
    expect((await limiter.getStatus(key, config, 'fixed-window')).remaining).toBe(2);
    await pauseNode(server);
    let answered: RateLimitResult[];
    try {
      // Written to the socket before the pause took effect: Redis runs them when it resumes, past their deadline.
      answered = await Promise.all([0, 1, 2].map(() => limiter.checkLimit(key, config, 'fixed-window')));
    } finally {
      await resumeNode(server);
    }
    expect(answered.every((r) => r.fallback === 'insurance')).toBe(true);
    // Once Redis has run them, the count is unchanged: the late checks wrote nothing.
    await sleep(200);
    const status = await eventually(
      () => limiter.getStatus(key, config, 'fixed-window'),
      () => true,
      1000,
    );
    expect(status.remaining).toBe(2);
    await limiter.close();
  });

  it('answers a multi-limit check by the policy with each limit outcome, all or nothing', async () => {
    const limiter = createRateLimiter({ redis: client, prefix, timeoutMs: TIMEOUT_MS });
    const limits = [
      { limit: 2, windowSeconds: 60 },
      { limit: 5, windowSeconds: 3600, strategy: 'token-bucket' as const },
    ];
    await limiter.getStatus('multi-outage', limits, 'fixed-window');
    await pauseNode(server);
    const results: RateLimitResult[] = [];
    try {
      for (let i = 0; i < 3; i++)
        results.push(await limiter.checkLimit('multi-outage', limits, 'fixed-window'));
    } finally {
      await resumeNode(server);
    }
    expect(results.map((r) => [r.fallback, r.allowed])).toEqual([
      ['insurance', true],
      ['insurance', true],
      ['insurance', false],
    ]);
    // The rejection took nothing from the hourly limit, and says which limit decided.
    expect(results[2]?.limits?.map((l) => [l.allowed, l.remaining])).toEqual([
      [false, 0],
      [true, 3],
    ]);
    expect(results[2]?.limit).toBe(2);
    await limiter.close();
  });

  it.each(POLICIES)(
    '%s: answers within the timeout while Redis is stopped, then recovers after a restart',
    async (policy) => {
      const limiter = createRateLimiter({
        redis: client,
        prefix,
        failurePolicy: policy,
        timeoutMs: TIMEOUT_MS,
      });
      const key = `stopped-${policy}`;
      expect((await limiter.checkLimit(key, config, 'fixed-window')).fallback).toBeNull();
      await killNode(descriptor() as ClusterDescriptor, server.port);
      try {
        expectPolicyAnswer(policy, await fiveChecks(limiter, `${key}-outage`));
        // Admin calls fail fast with a typed error instead of hanging.
        const blocked = await timed(limiter.isBlocked(key));
        expect(blocked.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
        expect(blocked.error).toMatchObject({
          code: expect.stringMatching(/^E_(TIMEOUT|REDIS_UNAVAILABLE)$/),
        });
        await expect(limiter.getStatus(key, config, 'fixed-window')).rejects.toMatchObject({
          code: expect.stringMatching(/^E_(TIMEOUT|REDIS_UNAVAILABLE)$/),
        });
      } finally {
        await restartServer();
      }
      // A restarted server has an empty script cache: the script is sent again and checks come from Redis.
      const recovered = await eventually(
        () => limiter.checkLimit(key, config, 'fixed-window'),
        (result) => result.fallback === null,
        10_000,
      );
      expect(recovered.fallback).toBeNull();
      expect(recovered.allowed).toBe(true);
      await limiter.close();
    },
  );
});

describe('faults on a real cluster', () => {
  const cluster = () => redisTargets().cluster;
  const prefix = uniquePrefix('rl-faults-cluster');
  const clients: Array<{ close(): Promise<void> }> = [];

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await restoreCluster(cluster(), 60_000);
  });

  afterAll(async () => {
    const cleaner = createTestClient(redisTargets(), 'cluster');
    try {
      expect(await keysWithoutTtl(cleaner, `${prefix}:`)).toEqual([]);
      await deleteByPrefix(cleaner, `${prefix}:`);
    } finally {
      await cleaner.quit();
    }
  });

  /** The master serving the keys of `key` (they share one hash tag). */
  const ownerOf = (key: string) => slotOwner(cluster(), keySlot(key));

  it.each(POLICIES)(
    '%s: answers within the timeout while the master of the key is paused, then recovers',
    async (policy) => {
      const redis = houseClient('cluster');
      clients.push(redis);
      // Connected and holding the slot map first: the first check must be Redis' answer, not a slow start's.
      await redis.ready();
      const limiter = createRateLimiter({
        redis: redis.client,
        prefix,
        failurePolicy: policy,
        timeoutMs: TIMEOUT_MS,
      });
      const key = `paused-${policy}`;
      expect((await limiter.checkLimit(key, config, 'fixed-window')).fallback).toBeNull();
      const master = await ownerOf(key);
      await pauseNode(cluster(), master);
      try {
        // Short of the 2 s cluster-node-timeout: this is a stall, not a failover.
        expectPolicyAnswer(policy, await fiveChecks(limiter, key));
      } finally {
        await resumeNode(cluster(), master);
      }
      const recovered = await eventually(
        () => limiter.checkLimit(key, config, 'fixed-window'),
        (result) => result.fallback === null,
        5000,
      );
      expect(recovered.fallback).toBeNull();
      // The checks answered by the policy while the master stalled were not recorded when it resumed.
      expect(recovered.remaining).toBe(1);
      await limiter.close();
    },
  );

  it('keeps answering every check while a master is killed under load: by the policy, then by Redis', async () => {
    const redis = houseClient('cluster');
    clients.push(redis);
    // Connected before the first check: a cold client's first command also waits for the slot map.
    await redis.ready();
    const limiter = createRateLimiter({ redis: redis.client, prefix, timeoutMs: TIMEOUT_MS });
    const key = 'failover';
    const victim = await ownerOf(key);
    const big = { limit: 1_000_000, windowSeconds: 3600 };
    const outcomes: Array<{ at: number; ms: number; fallback: string | null; error?: unknown }> = [];
    let stop = false;
    const worker = async (id: number) => {
      for (let i = 0; !stop; i++) {
        // Half the load on the victim's slot, half spread over the other shards.
        const target = id % 2 === 0 ? key : `${key}-${id}-${i % 50}`;
        const outcome = await timed(
          limiter.checkLimit(target, big, id % 4 < 2 ? 'token-bucket' : 'leaky-bucket'),
        );
        outcomes.push({
          at: Date.now(),
          ms: outcome.ms,
          fallback: outcome.value?.fallback ?? null,
          error: outcome.error,
        });
        if (outcome.value?.fallback) await sleep(20);
      }
    };
    const workers = Array.from({ length: 8 }, (_, id) => worker(id));
    await sleep(500);
    const killedAt = Date.now();
    await killNode(cluster(), victim);
    await waitForPromotion(cluster(), victim, 30_000);
    const promotedAt = Date.now();
    const answeredByRedis = () =>
      outcomes.filter((o) => o.at > promotedAt + 1000 && o.fallback === null).length;
    await eventually(
      async () => answeredByRedis(),
      (n) => n >= 200,
      20_000,
    );
    stop = true;
    await Promise.all(workers);

    expect(outcomes.filter((o) => o.error !== undefined)).toEqual([]);
    const slowest = Math.max(...outcomes.map((o) => o.ms));
    expect(slowest).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    expect(outcomes.filter((o) => o.at < killedAt && o.fallback === null).length).toBeGreaterThan(50);
    // During the outage the insurance limiter answered for the dead shard.
    expect(
      outcomes.filter((o) => o.at > killedAt && o.at < promotedAt && o.fallback === 'insurance').length,
    ).toBeGreaterThan(0);
    // After the promotion the script runs on the new master (which never had it loaded).
    expect(answeredByRedis()).toBeGreaterThanOrEqual(200);
    await limiter.close();
  });

  it('answers every check while a master hangs long enough to be failed over, then is resumed', async () => {
    const redis = houseClient('cluster');
    clients.push(redis);
    // Connected before the first check: a cold client's first command also waits for the slot map.
    await redis.ready();
    const limiter = createRateLimiter({ redis: redis.client, prefix, timeoutMs: TIMEOUT_MS });
    const key = 'hung-master';
    const limit = { limit: 1_000_000, windowSeconds: 3600 };
    await limiter.checkLimit(key, limit, 'fixed-window');
    const master = await ownerOf(key);
    const outcomes: Array<{ ms: number; fallback: string | null; error?: unknown }> = [];
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const outcome = await timed(limiter.checkLimit(key, limit, 'fixed-window'));
        outcomes.push({ ms: outcome.ms, fallback: outcome.value?.fallback ?? null, error: outcome.error });
        if (outcome.value?.fallback) await sleep(20);
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    await sleep(300);
    // A hung VM: the sockets stay open, nothing answers, and the cluster promotes the replica.
    await pauseNode(cluster(), master);
    try {
      await waitForPromotion(cluster(), master, 30_000);
      const promotedAt = outcomes.length;
      await eventually(
        async () => outcomes.slice(promotedAt).filter((o) => o.fallback === null).length,
        (n) => n >= 50,
        20_000,
      );
    } finally {
      await resumeNode(cluster(), master);
    }
    // The old master comes back as a replica of the new one; checks keep coming from Redis.
    const resumedAt = outcomes.length;
    await sleep(1000);
    stop = true;
    await Promise.all(workers);
    expect(outcomes.filter((o) => o.error !== undefined)).toEqual([]);
    expect(Math.max(...outcomes.map((o) => o.ms))).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    expect(outcomes.filter((o) => o.fallback === 'insurance').length).toBeGreaterThan(0);
    expect(outcomes.slice(resumedAt).filter((o) => o.fallback === null).length).toBeGreaterThan(0);
    await limiter.close();
  });

  it('lets operations of a key through once its slot map moves, even with its node batch stuck on a hung master', async () => {
    // A plain client that refreshes its slot map on its own, so the map moves while the old master still hangs.
    const redis = createTestClient(redisTargets(), 'cluster', {}, { slotsRefreshInterval: 300 });
    try {
      await redis.ping();
      await Promise.all(redis.nodes('master').map((node) => node.ping()));
      const limiter = createRateLimiter({
        redis,
        prefix,
        timeoutMs: TIMEOUT_MS,
        failurePolicy: 'fail-closed',
      });
      const key = 'stuck-batch';
      const router = nodeRouter(redis);
      let companion = '';
      for (let i = 0; !companion; i++) {
        if (router.nodeOf(`{${key}-${i}}`) === router.nodeOf(`{${key}}`)) companion = `${key}-${i}`;
      }
      await limiter.getStatus(key, config, 'fixed-window');
      await limiter.checkLimit(key, config, 'fixed-window');
      const master = await ownerOf(key);
      const before = router.nodeOf(`{${key}}`);
      await pauseNode(cluster(), master);
      try {
        // Two checks of one master: a node batch, written to the hung master and never answered.
        void limiter.checkLimit(key, config, 'fixed-window');
        void limiter.checkLimit(companion, config, 'fixed-window');
        await waitForPromotion(cluster(), master, 30_000);
        await eventually(
          async () => router.nodeOf(`{${key}}`),
          (node) => node !== undefined && node !== before,
          10_000,
        );
        const movedAt = performance.now();
        // Answered by the new master, without waiting for the stuck batch (held only until its checks' deadline).
        const status = await eventually(
          () => limiter.getStatus(key, config, 'fixed-window').catch(() => undefined),
          (result) => result !== undefined,
          10_000,
        );
        expect(status?.fallback).toBeNull();
        expect(performance.now() - movedAt).toBeLessThan(1500);
      } finally {
        await resumeNode(cluster(), master);
      }
      await limiter.close();
    } finally {
      redis.disconnect();
    }
  });

  it('cleanup() and reset() fail with E_INCOMPLETE_SCAN, never a partial answer, while a shard is down', async () => {
    const redis = houseClient('cluster');
    clients.push(redis);
    // Connected before the first check: a cold client's first command also waits for the slot map.
    await redis.ready();
    const limiter = createRateLimiter({ redis: redis.client, prefix, timeoutMs: TIMEOUT_MS });
    const key = 'shard-down';
    await limiter.checkLimit(key, config, 'token-bucket');
    const master = await ownerOf(key);
    const replicas =
      (await clusterTopology(cluster())).masters.find((m) => m.port === master)?.replicaPorts ?? [];
    // Master and replica gone: those slots have no node at all.
    for (const port of [master, ...replicas]) await killNode(cluster(), port);
    await expect(limiter.cleanup()).rejects.toMatchObject({ code: 'E_INCOMPLETE_SCAN' });
    await expect(limiter.reset(key, 'token-bucket')).rejects.toMatchObject({ code: 'E_INCOMPLETE_SCAN' });
    // Checks of that shard's keys are still answered, by the policy.
    const outcome = await timed(limiter.checkLimit(key, config, 'token-bucket'));
    expect(outcome.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    expect(outcome.value?.fallback).toBe('insurance');
    await limiter.close();
  });

  it('keeps counts exact across a slot migration (MOVED), and answers while the slot is half-migrated (ASK)', async () => {
    const redis = houseClient('cluster');
    clients.push(redis);
    // Connected before the first check: a cold client's first command also waits for the slot map.
    await redis.ready();
    const limiter = createRateLimiter({ redis: redis.client, prefix, timeoutMs: 1000 });
    const limit = { limit: 100, windowSeconds: 3600 };
    const burst = (key: string, count: number) =>
      Promise.all(Array.from({ length: count }, () => limiter.checkLimit(key, limit, 'sliding-window')));
    const otherMaster = async (from: number) =>
      (await clusterTopology(cluster())).masters.map((m) => m.port).find((port) => port !== from) as number;

    // A finished migration: ioredis follows MOVED, and the count moved with the keys.
    expect((await burst('migrate-moved', 60)).filter((r) => r.allowed)).toHaveLength(60);
    let slot = keySlot('{migrate-moved}');
    let from = await slotOwner(cluster(), slot);
    await migrateSlot(cluster(), slot, from, await otherMaster(from));
    const moved = await burst('migrate-moved', 60);
    expect(moved.filter((r) => r.fallback !== null)).toEqual([]);
    expect(moved.filter((r) => r.allowed)).toHaveLength(40);

    // A slot left half-migrated: Redis answers TRYAGAIN to a script whose keys are not all on one side (the block
    // marker does not exist), so checks are answered by the policy, within the timeout, until it completes.
    expect((await burst('migrate-ask', 60)).filter((r) => r.allowed)).toHaveLength(60);
    slot = keySlot('{migrate-ask}');
    from = await slotOwner(cluster(), slot);
    await migrateSlot(cluster(), slot, from, await otherMaster(from), { stopAfter: 'importing' });
    const during: RateLimitResult[] = [];
    for (let i = 0; i < 5; i++) {
      const outcome = await timed(limiter.checkLimit('migrate-ask', limit, 'sliding-window'));
      expect(outcome.ms).toBeLessThan(1000 + SLACK_MS);
      during.push(outcome.value as RateLimitResult);
    }
    const recordedDuring = during.filter((r) => r.fallback === null && r.allowed).length;
    await restoreCluster(cluster(), 60_000);
    // Once the migration is finished the count is exact: nothing answered by the policy was recorded late.
    await eventually(
      () =>
        limiter.getStatus('migrate-ask', limit, 'sliding-window').then(
          () => true,
          () => false,
        ),
      (ok) => ok,
      10_000,
    );
    const after = await burst('migrate-ask', 60);
    expect(after.filter((r) => r.fallback !== null)).toEqual([]);
    expect(after.filter((r) => r.allowed)).toHaveLength(40 - recordedDuring);
    await limiter.close();
  });

  it('keeps a check ahead of a getStatus, block or reset issued after it when a master refuses its batch (slot moved)', async () => {
    const redis = houseClient('cluster');
    clients.push(redis);
    await redis.ready();
    const limiter = createRateLimiter({ redis: redis.client, prefix, timeoutMs: 5000 });
    const config = { limit: 5, windowSeconds: 60 };
    const keys = ['moved-status', 'moved-block', 'moved-reset'];
    // Scripts loaded and every count at 4 left, one key at a time (a first call is NOSCRIPT and sent again later).
    for (const key of keys) {
      await limiter.getStatus(key, config, 'fixed-window');
      await limiter.checkLimit(key, config, 'fixed-window');
    }
    // Each key's slot moves to another master; the client's slot map still sends the batches to the old one.
    const masters = (await clusterTopology(cluster())).masters.map((m) => m.port);
    for (const key of keys) {
      const from = await ownerOf(key);
      await migrateSlot(cluster(), keySlot(key), from, masters.find((port) => port !== from) as number);
    }
    // In one tick: two checks of each key (a batch the old master refuses), then the operation.
    const [, , status, ...rest] = await Promise.all([
      limiter.checkLimit('moved-status', config, 'fixed-window'),
      limiter.checkLimit('moved-status', config, 'fixed-window'),
      limiter.getStatus('moved-status', config, 'fixed-window'),
      limiter.checkLimit('moved-block', config, 'fixed-window'),
      limiter.checkLimit('moved-block', config, 'fixed-window'),
      limiter.block('moved-block', 60),
      limiter.checkLimit('moved-reset', config, 'fixed-window'),
      limiter.checkLimit('moved-reset', config, 'fixed-window'),
      limiter.reset('moved-reset', 'fixed-window', config),
    ]);
    expect(status).toMatchObject({ remaining: 2, fallback: null });
    const blockChecks = rest.slice(0, 2) as RateLimitResult[];
    expect(blockChecks.map((r) => [r.allowed, r.blocked, r.fallback])).toEqual([
      [true, false, null],
      [true, false, null],
    ]);
    expect(rest[5]).toBe(1);
    expect((await limiter.getStatus('moved-reset', config, 'fixed-window')).remaining).toBe(5);
    await limiter.close();
  });

  it('runs the script on a replica promoted by a manual failover after SCRIPT FLUSH everywhere', async () => {
    const redis = houseClient('cluster');
    clients.push(redis);
    // Connected before the first check: a cold client's first command also waits for the slot map.
    await redis.ready();
    const limiter = createRateLimiter({ redis: redis.client, prefix, timeoutMs: 5000 });
    const key = 'manual-failover';
    await limiter.checkLimit(key, config, 'leaky-bucket');
    const master = await ownerOf(key);
    const topology = await clusterTopology(cluster());
    const replica = topology.masters.find((m) => m.port === master)?.replicaPorts[0];
    expect(replica).toBeDefined();
    // WAIT for the replica so the failover keeps the count, then flush every script cache.
    await (redis.client as Cluster)
      .nodes('master')
      .find((node) => node.options.port === master)
      ?.call('WAIT', '1', '2000');
    for (const node of redisTargets().cluster.nodes) {
      const direct = new Redis(node.port, node.host);
      await direct.script('FLUSH').finally(() => direct.disconnect());
    }
    await failover(cluster(), replica as number);
    const result = await eventually(
      () => limiter.checkLimit(key, config, 'leaky-bucket'),
      (r) => r.fallback === null,
      10_000,
    );
    expect(result).toMatchObject({ fallback: null, allowed: true, remaining: 1 });
    await limiter.close();
  });
});
