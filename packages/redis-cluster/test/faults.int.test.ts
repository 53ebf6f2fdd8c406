import { createMetrics } from '@austa/metrics';
import {
  clusterTopology,
  keySlot,
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
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedisClient, type RedisClient } from '../src/index.js';
import { eventually, measured, measuredAll, sample } from './support.js';

const COMMAND_TIMEOUT_MS = 2000;
/** The test cluster's cluster-node-timeout: a failover takes about this long plus an election. */
const NODE_TIMEOUT_MS = 2000;

function clusterClient(
  name: string,
  metrics = createMetrics(),
  extra: { commandTimeoutMs?: number; enableAutoPipelining?: boolean } = {},
) {
  const targets = redisTargets();
  const client = createRedisClient(
    {
      cluster: {
        nodes: targets.cluster.nodes,
        clusterNodeTimeoutMs: NODE_TIMEOUT_MS,
        retryDelayOnFailoverMs: 200,
        maxRedirections: 64,
      },
      name,
      commandTimeoutMs: extra.commandTimeoutMs ?? COMMAND_TIMEOUT_MS,
      // These tests check that no write runs twice across a failover: the mode for data where a duplicate matters.
      resendInFlightWrites: false,
      ...(extra.enableAutoPipelining ? { enableAutoPipelining: true } : {}),
    },
    { metrics, logger: { warn: () => {}, error: () => {} } },
  );
  return { client, metrics };
}

/** The client's connection to the master on `port`. */
function masterNode(client: RedisClient, port: number): Redis {
  const node = (client.client as import('ioredis').Cluster)
    .nodes('master')
    .find((candidate) => candidate.options.port === port);
  if (node === undefined) throw new Error(`no connection to master ${port}`);
  return node;
}

/** Waits until the replicas of the master on `port` have every write so far, so a failover loses nothing. */
async function replicated(client: RedisClient, port: number): Promise<void> {
  expect(await masterNode(client, port).call('WAIT', '1', '2000')).toBe(1);
}

/** Settles within `ms` or reports the command as hanging. */
function bounded<T>(promise: Promise<T>, ms: number): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<'hung'>((resolve) => {
      timer = setTimeout(() => resolve('hung'), ms);
    }),
  ]);
}

describe('fault tolerance on a real cluster', () => {
  const clients: RedisClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await restoreCluster(redisTargets().cluster, 60_000);
  });

  it('resumes writes after a master is killed and its replica promoted, leaving nothing hanging', async () => {
    const { client } = clusterClient('failover');
    clients.push(client);
    await client.ready();
    const prefix = uniquePrefix('failover');
    const key = `${prefix}:{hot}`;
    const cluster = redisTargets().cluster;
    const victim = await slotOwner(cluster, keySlot(key));
    const outcomes: Array<{ at: number; outcome: 'ok' | 'error' | 'hung' }> = [];
    let stop = false;
    let killedAt = Number.POSITIVE_INFINITY;
    let promotedAt = Number.POSITIVE_INFINITY;
    const writer = async (id: number) => {
      for (let i = 0; !stop; i++) {
        const result = await bounded(
          client.client.set(`${key}:${id}:${i}`, 'v', 'EX', 120).then(
            () => 'ok' as const,
            () => 'error' as const,
          ),
          COMMAND_TIMEOUT_MS + 3000,
        );
        outcomes.push({ at: Date.now(), outcome: result });
        if (result !== 'ok') await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    const writers = Array.from({ length: 5 }, (_, id) => writer(id));
    await new Promise((resolve) => setTimeout(resolve, 500));
    killedAt = Date.now();
    await killNode(cluster, victim);
    await waitForPromotion(cluster, victim, 30_000);
    promotedAt = Date.now();
    await eventually(
      async () => outcomes.filter((o) => o.at > promotedAt && o.outcome === 'ok').length,
      (n) => n >= 50,
      15_000,
    );
    stop = true;
    await Promise.all(writers);
    expect(outcomes.filter((o) => o.outcome === 'hung')).toEqual([]);
    expect(outcomes.filter((o) => o.at < killedAt && o.outcome === 'ok').length).toBeGreaterThan(0);
    expect(outcomes.filter((o) => o.at > promotedAt && o.outcome === 'ok').length).toBeGreaterThanOrEqual(50);
    await restartNode(cluster, victim);
  });

  it('never sends a command after its caller was told it timed out, even when the cluster retries it after a failover', async () => {
    const { client, metrics } = clusterClient('late-retry', createMetrics(), { commandTimeoutMs: 600 });
    clients.push(client);
    await client.ready();
    const cluster = redisTargets().cluster;
    const key = `${uniquePrefix('late-retry')}:{counter}`;
    await client.client.set(key, '0', 'EX', 120);
    const victim = await slotOwner(cluster, keySlot(key));
    await replicated(client, victim);
    await killNode(cluster, victim);
    // The INCR meets a closed connection and waits in the cluster's retry queue: it times out there, or, when it was
    // written to the dying master first, fails as possibly applied instead of being sent again.
    const started = Date.now();
    const failure = await client.client.incr(key).then(
      () => undefined,
      (error: Error) => error,
    );
    expect(failure?.message).toMatch(/timed out|may or may not have run/);
    expect(Date.now() - started).toBeLessThan(600 + 1000);
    await waitForPromotion(cluster, victim, 30_000);
    // The retry queue fires every 200 ms: give it many chances to send the INCR it still holds.
    const value = await eventually(
      () => client.client.get(key),
      (current) => current !== '0',
      2000,
      200,
    );
    expect(value).toBe('0');
    expect(
      (await measured(metrics, 'incr', 'timeout')) + (await measured(metrics, 'incr', 'maybe_applied')),
    ).toBe(1);
    expect(await measured(metrics, 'incr')).toBe(0);
    expect(
      await sample(metrics, 'austa_redis_cluster_retries_total', {
        client: 'late-retry',
        reason: 'connection_closed',
      }),
    ).toBeGreaterThanOrEqual(1);
    await restartNode(cluster, victim);
  });

  it('during a failover, fails commands to the lost shard at commandTimeoutMs and keeps serving the others', async () => {
    const { client } = clusterClient('shard-loss', createMetrics(), { commandTimeoutMs: 500 });
    clients.push(client);
    await client.ready();
    const cluster = redisTargets().cluster;
    const prefix = uniquePrefix('shard-loss');
    let lost = 0;
    while ((await slotOwner(cluster, keySlot(`l${lost}`))) !== (await slotOwner(cluster, 0))) lost++;
    let kept = 0;
    while ((await slotOwner(cluster, keySlot(`k${kept}`))) === (await slotOwner(cluster, 0))) kept++;
    const lostKey = `${prefix}:{l${lost}}`;
    const keptKey = `${prefix}:{k${kept}}`;
    const victim = await slotOwner(cluster, 0);
    await killNode(cluster, victim);
    const lostStarted = Date.now();
    const lostResult = await client.client.set(lostKey, 'v', 'EX', 60).catch((error: Error) => error);
    const lostElapsed = Date.now() - lostStarted;
    const keptResult = await client.client.set(keptKey, 'v', 'EX', 60);
    expect(lostResult).toBeInstanceOf(Error);
    // The client may write the SET before it notices the dead socket: then it was on the wire when the connection
    // closed and fails at once with E_MAYBE_APPLIED; otherwise it waits for the shard and times out.
    const lostError = lostResult as Error & { code?: string };
    if (lostError.code !== 'E_MAYBE_APPLIED') expect(lostError.message).toMatch(/timed out/);
    expect(lostElapsed).toBeLessThan(500 + 1000);
    expect(keptResult).toBe('OK');
    await waitForPromotion(cluster, victim, 30_000);
    const back = await eventually(
      () => client.client.set(lostKey, 'v', 'EX', 60).catch(() => 'error'),
      (result) => result === 'OK',
      10_000,
      200,
    );
    expect(back).toBe('OK');
    await restartNode(cluster, victim);
  });

  it('rides out a failover when commandTimeoutMs is longer than the failover', async () => {
    const { client } = clusterClient('ride-out', createMetrics(), { commandTimeoutMs: NODE_TIMEOUT_MS * 8 });
    clients.push(client);
    await client.ready();
    const cluster = redisTargets().cluster;
    const key = `${uniquePrefix('ride-out')}:{k}`;
    const victim = await slotOwner(cluster, keySlot(key));
    await client.client.get(key);
    await killNode(cluster, victim);
    // A write already on the wire when the master died fails with E_MAYBE_APPLIED (it may have run); one issued once
    // the client has seen the connection close waits for the promotion.
    await eventually(
      async () =>
        (client.client as import('ioredis').Cluster)
          .nodes('all')
          .find((candidate) => candidate.options.port === victim)?.status ?? 'end',
      (status) => status === 'end',
      5000,
      20,
    );
    const started = Date.now();
    expect(await client.client.set(key, 'v', 'EX', 60)).toBe('OK');
    // It waited for the promotion instead of failing.
    expect(Date.now() - started).toBeGreaterThan(NODE_TIMEOUT_MS / 2);
    await restartNode(cluster, victim);
  });

  it('records a pipeline cut off by a master failure once per command, with the outcome the caller got', async () => {
    const { client, metrics } = clusterClient('pipe-failover', createMetrics(), {
      commandTimeoutMs: NODE_TIMEOUT_MS * 8,
    });
    clients.push(client);
    await client.ready();
    const cluster = redisTargets().cluster;
    const tag = `${uniquePrefix('pipe-failover')}:{p}`;
    await client.client.set(`${tag}:a`, '1', 'EX', 120);
    await client.client.set(`${tag}:b`, '2', 'EX', 120);
    const victim = await slotOwner(cluster, keySlot('p'));
    await replicated(client, victim);
    const before = await measured(metrics, 'get');
    // Paused, the master holds the pipeline unanswered; killed, its connection closes under it.
    await pauseNode(cluster, victim);
    const pipeline = client.client.pipeline().get(`${tag}:a`).get(`${tag}:b`).exec();
    const transaction = client.client.multi().get(`${tag}:a`).exec();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await killNode(cluster, victim);
    expect(await pipeline).toEqual([
      [null, '1'],
      [null, '2'],
    ]);
    const multiOutcome = await transaction.then(
      (value) => value,
      (error: Error) => error,
    );
    // Three GETs were issued (two in the pipeline, one in MULTI): three observations, whatever the retries.
    expect((await measuredAll(metrics, 'get')) - before).toBe(3);
    expect(await measured(metrics, 'get', 'connection_closed')).toBe(0);
    expect(await measuredAll(metrics, 'multi')).toBe(1);
    expect(await measuredAll(metrics, 'exec')).toBe(1);
    if (!(multiOutcome instanceof Error)) expect(multiOutcome).toEqual([[null, '1']]);
    await waitForPromotion(cluster, victim, 30_000);
    await restartNode(cluster, victim);
  });

  it('records auto-pipelined commands answered with ASK mid-migration once each, as the caller saw them', async () => {
    const { client, metrics } = clusterClient('ap-ask', createMetrics(), { enableAutoPipelining: true });
    clients.push(client);
    await client.ready();
    const cluster = redisTargets().cluster;
    const tag = `${uniquePrefix('ap-ask')}:{asking}`;
    const keys = Array.from({ length: 10 }, (_, i) => `${tag}:${i}`);
    await Promise.all(keys.map((key) => client.client.set(key, '0', 'EX', 120)));
    const slot = keySlot('asking');
    const from = await slotOwner(cluster, slot);
    const to = (await clusterTopology(cluster)).masters
      .map((master) => master.port)
      .find((port) => port !== from);
    await migrateSlot(cluster, slot, from, to as number, { stopAfter: 'importing', keys: keys.slice(0, 5) });
    const outcomes = await Promise.all(
      keys.map((key) =>
        client.client.incr(key).then(
          () => '',
          (error: Error) => error.message.split(' ')[0] ?? 'error',
        ),
      ),
    );
    const byType = new Map<string, number>();
    for (const outcome of outcomes) byType.set(outcome, (byType.get(outcome) ?? 0) + 1);
    for (const [type, count] of byType) expect(await measured(metrics, 'incr', type)).toBe(count);
    const observed = (await measured(metrics, 'incr')) + (await measured(metrics, 'incr', 'ASK'));
    expect(observed).toBe(keys.length);
    expect(
      await sample(metrics, 'austa_redis_redirections_total', { client: 'ap-ask', type: 'ask' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('records a MULTI retried after MOVED once per command', async () => {
    const { client, metrics } = clusterClient('multi-moved');
    clients.push(client);
    await client.ready();
    const cluster = redisTargets().cluster;
    const tag = `${uniquePrefix('multi-moved')}:{tx}`;
    await client.client.set(`${tag}:a`, '1', 'EX', 120);
    const slot = keySlot('tx');
    const from = await slotOwner(cluster, slot);
    const to = (await clusterTopology(cluster)).masters
      .map((master) => master.port)
      .find((port) => port !== from);
    await migrateSlot(cluster, slot, from, to as number);
    const result = await client.client.multi().set(`${tag}:a`, '2', 'EX', 120).get(`${tag}:a`).exec();
    expect(result).toEqual([
      [null, 'OK'],
      [null, '2'],
    ]);
    expect(await measured(metrics, 'multi')).toBe(1);
    expect(await measured(metrics, 'set')).toBe(2);
    expect(await measured(metrics, 'exec')).toBe(1);
    expect(await measured(metrics, 'multi', 'MOVED')).toBe(0);
    expect(
      await sample(metrics, 'austa_redis_redirections_total', { client: 'multi-moved', type: 'moved' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('follows a slot migration: the redirected command succeeds, is measured once and the redirection counted', async () => {
    const { client, metrics } = clusterClient('migrate');
    clients.push(client);
    await client.ready();
    const cluster = redisTargets().cluster;
    const key = `${uniquePrefix('migrate')}:{moving}`;
    await client.client.set(key, 'value', 'EX', 120);
    const slot = keySlot(key);
    const from = await slotOwner(cluster, slot);
    const { masters } = await clusterTopology(cluster);
    const target = masters.map((master) => master.port).find((port) => port !== from);
    expect(target).toBeDefined();
    await migrateSlot(cluster, slot, from, target as number);
    const before = await measured(metrics, 'get');
    expect(await client.client.get(key)).toBe('value');
    expect((await measured(metrics, 'get')) - before).toBe(1);
    expect(
      await sample(metrics, 'austa_redis_redirections_total', { client: 'migrate', type: 'moved' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('follows an ASK redirection mid-migration, measured once and counted', async () => {
    const { client, metrics } = clusterClient('ask');
    clients.push(client);
    await client.ready();
    const cluster = redisTargets().cluster;
    const key = `${uniquePrefix('ask')}:{asking}`;
    await client.client.set(key, 'value', 'EX', 120);
    const slot = keySlot(key);
    const from = await slotOwner(cluster, slot);
    const to = (await clusterTopology(cluster)).masters
      .map((master) => master.port)
      .find((port) => port !== from);
    const result = await migrateSlot(cluster, slot, from, to as number, { stopAfter: 'importing' });
    expect(result.state).toBe('open');
    const before = await measured(metrics, 'get');
    expect(await client.client.get(key)).toBe('value');
    expect((await measured(metrics, 'get')) - before).toBe(1);
    expect(
      await sample(metrics, 'austa_redis_redirections_total', { client: 'ask', type: 'ask' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('measures a redirected pipeline once per command', async () => {
    const { client, metrics } = clusterClient('pipemove');
    clients.push(client);
    await client.ready();
    const cluster = redisTargets().cluster;
    const tag = `${uniquePrefix('pipemove')}:{pipe}`;
    await client.client.set(`${tag}:a`, '1', 'EX', 120);
    const slot = keySlot(tag.slice(tag.indexOf('{') + 1, tag.indexOf('}')));
    const from = await slotOwner(cluster, slot);
    const to = (await clusterTopology(cluster)).masters
      .map((master) => master.port)
      .find((port) => port !== from);
    await migrateSlot(cluster, slot, from, to as number);
    const results = await client.client.pipeline().get(`${tag}:a`).get(`${tag}:a`).exec();
    expect(results).toEqual([
      [null, '1'],
      [null, '1'],
    ]);
    expect(await measured(metrics, 'get')).toBe(2);
    expect(await measured(metrics, 'get', 'MOVED')).toBe(0);
  });

  it('keeps subscribe and ssubscribe handlers working after the master they listen on dies', async () => {
    const { client } = clusterClient('subfail');
    clients.push(client);
    await client.ready();
    const cluster = redisTargets().cluster;
    const channel = `${uniquePrefix('subfail')}:{room}`;
    const classic: string[] = [];
    const sharded: string[] = [];
    await client.subscribe(channel, (message) => void classic.push(message));
    await client.ssubscribe(channel, (message) => void sharded.push(message));
    await client.publish(channel, 'before');
    await client.spublish(channel, 'before');
    await eventually(
      async () => classic.length + sharded.length,
      (n) => n >= 2,
      5000,
    );
    // The shard channel lives on the master of its slot; kill that master so the sharded subscriber must move.
    const victim = await slotOwner(cluster, keySlot(channel));
    await killNode(cluster, victim);
    await waitForPromotion(cluster, victim, 30_000);
    const recovered = await eventually(
      async () => {
        await client.publish(channel, 'after').catch(() => 0);
        await client.spublish(channel, 'after').catch(() => 0);
        return classic.includes('after') && sharded.includes('after');
      },
      (ok) => ok,
      30_000,
      250,
    );
    expect({ classic: classic.includes('after'), sharded: sharded.includes('after') }).toEqual({
      classic: true,
      sharded: true,
    });
    expect(recovered).toBe(true);
    await restartNode(cluster, victim);
  });

  it('health() reports unhealthy while a master is down with no replica, then recovers', async () => {
    const { client } = clusterClient('health');
    clients.push(client);
    await client.ready();
    expect((await client.health()).healthy).toBe(true);
    const cluster = redisTargets().cluster;
    const master = await slotOwner(cluster, 0);
    const replica = (await clusterTopology(cluster)).masters.find((entry) => entry.port === master)
      ?.replicaPorts[0];
    if (replica === undefined) throw new Error(`master ${master} has no replica to kill`);
    await killNode(cluster, replica);
    await killNode(cluster, master);
    const unhealthy = await eventually(
      () => client.health({ timeoutMs: 500 }),
      (h) => !h.healthy,
      15_000,
      250,
    );
    expect(unhealthy.healthy).toBe(false);
    expect(unhealthy.problems.length).toBeGreaterThan(0);
    await restartNode(cluster, master);
    await restartNode(cluster, replica);
    await restoreCluster(cluster, 60_000);
    const healthy = await eventually(
      () => client.health(),
      (h) => h.healthy,
      30_000,
      250,
    );
    expect(healthy).toMatchObject({ healthy: true, clusterState: 'ok', slotsOk: 16384 });
  });

  it('fails paused-node commands within the command timeout instead of hanging', async () => {
    const { client, metrics } = clusterClient('paused');
    clients.push(client);
    await client.ready();
    const cluster = redisTargets().cluster;
    const key = `${uniquePrefix('paused')}:{p}`;
    const owner = await slotOwner(cluster, keySlot(key));
    await pauseNode(cluster, owner);
    try {
      const started = Date.now();
      const result = await bounded(
        client.client.set(key, 'v', 'EX', 60).catch((error: Error) => error),
        10_000,
      );
      expect(result).toBeInstanceOf(Error);
      expect((result as Error).message).toMatch(/timed out/);
      expect(Date.now() - started).toBeLessThan(COMMAND_TIMEOUT_MS + 2000);
      expect(await measured(metrics, 'set', 'timeout')).toBe(1);
    } finally {
      await resumeNode(cluster, owner);
    }
  });
});
