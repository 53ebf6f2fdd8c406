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
import { afterEach, describe, expect, it } from 'vitest';
import { createRedisClient, type RedisClient } from '../src/index.js';
import { eventually, measured, sample } from './support.js';

const COMMAND_TIMEOUT_MS = 2000;

function clusterClient(name: string, metrics = createMetrics()) {
  const targets = redisTargets();
  const client = createRedisClient(
    {
      cluster: {
        nodes: targets.cluster.nodes,
        // The test cluster fails over after cluster-node-timeout 2000 ms.
        clusterNodeTimeoutMs: 2000,
        retryDelayOnFailoverMs: 200,
        maxRedirections: 32,
      },
      name,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
    },
    { metrics, logger: { warn: () => {}, error: () => {} } },
  );
  return { client, metrics };
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
