import { createMetrics } from '@austa/metrics';
import {
  clusterTopology,
  failover,
  keySlot,
  migrateSlot,
  pauseNode,
  redisTargets,
  restoreCluster,
  resumeNode,
  slotOwner,
  uniquePrefix,
  waitForPromotion,
} from '@austa/test-env/vitest';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedisClient, type Logger, type RedisClient, type RedisClientOptions } from '../src/index.js';
import { eventually, sample } from './support.js';

type Topology = 'standalone' | 'cluster';

function optionsFor(topology: Topology, extra: Partial<RedisClientOptions> = {}): RedisClientOptions {
  const targets = redisTargets();
  return topology === 'cluster'
    ? { cluster: { nodes: targets.cluster.nodes }, name: 'pubsub', ...extra }
    : { url: targets.standalone.url, name: 'pubsub', ...extra };
}

const silent: Logger = { warn: () => {}, error: () => {} };

/** Publishes until `received()` is true, so a subscription that is still moving gets time to arrive. */
async function publishUntil(publish: () => Promise<unknown>, received: () => boolean, timeoutMs: number) {
  return eventually(
    async () => {
      await publish().catch(() => 0);
      return received();
    },
    (ok) => ok,
    timeoutMs,
    200,
  );
}

describe.each<Topology>(['standalone', 'cluster'])('pub/sub on %s', (topology) => {
  const clients: RedisClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });

  function make(
    extra: Partial<RedisClientOptions> = {},
    logger: Logger = silent,
    logHandlerErrorMessages?: boolean,
  ) {
    const metrics = createMetrics();
    const client = createRedisClient(optionsFor(topology, extra), {
      metrics,
      logger,
      ...(logHandlerErrorMessages === undefined ? {} : { logHandlerErrorMessages }),
    });
    clients.push(client);
    return { client, metrics };
  }

  it('delivers binary payloads byte for byte to Buffer handlers of subscribe, psubscribe and ssubscribe', async () => {
    const { client } = make();
    const prefix = uniquePrefix(`bin-${topology}`);
    const payload = Buffer.from([0x00, 0xff, 0xfe, 0xc3, 0x28, 0x80, 0x41]);
    const got: Record<string, Buffer[]> = { message: [], pmessage: [], smessage: [] };
    await client.subscribe(`${prefix}:c`, (message) => void got.message?.push(message), { buffers: true });
    await client.psubscribe(`${prefix}:c*`, (message) => void got.pmessage?.push(message), { buffers: true });
    await client.ssubscribe(`${prefix}:c`, (message) => void got.smessage?.push(message), { buffers: true });
    await client.publish(`${prefix}:c`, payload);
    await client.spublish(`${prefix}:c`, payload);
    await eventually(
      async () => (got.message?.length ?? 0) + (got.pmessage?.length ?? 0) + (got.smessage?.length ?? 0),
      (n) => n >= 3,
      5000,
    );
    for (const kind of ['message', 'pmessage', 'smessage']) {
      expect(got[kind]?.length).toBe(1);
      expect(Buffer.isBuffer(got[kind]?.[0])).toBe(true);
      expect(got[kind]?.[0]?.equals(payload)).toBe(true);
    }
  });

  it('gives each subscription of the same handler its own unsubscribe', async () => {
    const { client } = make();
    const channel = `${uniquePrefix(`twice-${topology}`)}:c`;
    const received: string[] = [];
    const handler = (message: string) => void received.push(message);
    const first = await client.subscribe(channel, handler);
    const second = await client.subscribe(channel, handler);
    await client.publish(channel, 'a');
    await eventually(
      async () => received.length,
      (n) => n >= 2,
      5000,
    );
    expect(received).toEqual(['a', 'a']);
    await first();
    expect(client.stats().subscriber.channels).toBe(1);
    await client.publish(channel, 'b');
    await eventually(
      async () => received.length,
      (n) => n >= 3,
      5000,
    );
    expect(received).toEqual(['a', 'a', 'b']);
    await first();
    expect(client.stats().subscriber.channels).toBe(1);
    await second();
    expect(client.stats().subscriber.channels).toBe(0);
  });

  it('logs a failed handler by error name and code, never its message, unless asked to', async () => {
    const logged: Array<{ message: string; details?: Record<string, unknown> }> = [];
    const logger = {
      warn: () => {},
      error: (message: string, details?: Record<string, unknown>) => void logged.push({ message, details }),
    };
    const { client, metrics } = make({}, logger);
    const channel = `${uniquePrefix(`log-${topology}`)}:c`;
    await client.subscribe(channel, (message) => {
      JSON.parse(message);
    });
    await client.publish(channel, '{"patient":"Jane Doe", broken');
    await eventually(
      async () => logged.length,
      (n) => n >= 1,
      5000,
    );
    expect(logged).toHaveLength(1);
    expect(logged[0]?.details).toMatchObject({ kind: 'message', error: 'SyntaxError' });
    expect(JSON.stringify(logged)).not.toContain('Jane');
    expect(JSON.stringify(logged)).not.toContain(channel);
    expect(await sample(metrics, 'austa_redis_pubsub_handler_errors_total', { kind: 'message' })).toBe(1);

    const opted: typeof logged = [];
    const { client: verbose } = make(
      {},
      { warn: () => {}, error: (message, details) => void opted.push({ message, details }) },
      true,
    );
    await verbose.subscribe(channel, () => {
      throw Object.assign(new Error('visible detail'), { code: 'E_DEMO' });
    });
    await verbose.publish(channel, 'x');
    await eventually(
      async () => opted.length,
      (n) => n >= 1,
      5000,
    );
    expect(opted[0]?.details).toMatchObject({ error: 'Error', code: 'E_DEMO', message: 'visible detail' });
  });
});

describe('sharded pub/sub on a cluster under slot moves', () => {
  const clients: RedisClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await restoreCluster(redisTargets().cluster, 60_000);
  });

  it('follows a channel whose slot migrates to another master', async () => {
    const cluster = redisTargets().cluster;
    const client = createRedisClient(optionsFor('cluster', { name: 'smigrate' }), { logger: silent });
    clients.push(client);
    const channel = `${uniquePrefix('smigrate')}:{room}`;
    const received: string[] = [];
    await client.ssubscribe(channel, (message) => void received.push(message));
    await client.spublish(channel, 'before');
    await eventually(
      async () => received.length,
      (n) => n >= 1,
      5000,
    );
    const slot = keySlot(channel);
    const from = await slotOwner(cluster, slot);
    const to = (await clusterTopology(cluster)).masters
      .map((master) => master.port)
      .find((port) => port !== from);
    await migrateSlot(cluster, slot, from, to as number);
    const started = Date.now();
    const back = await publishUntil(
      () => client.spublish(channel, 'after'),
      () => received.includes('after'),
      10_000,
    );
    expect(back).toBe(true);
    // Within a few reconcile rounds, not the 10+ s of silence seen before.
    expect(Date.now() - started).toBeLessThan(5000);
    expect(client.stats().subscriber.shardChannels).toBe(1);
  });

  it('follows a channel whose master is failed over to its replica', async () => {
    const cluster = redisTargets().cluster;
    const client = createRedisClient(optionsFor('cluster', { name: 'sfailover' }), { logger: silent });
    clients.push(client);
    const channel = `${uniquePrefix('sfailover')}:{room}`;
    const received: string[] = [];
    await client.ssubscribe(channel, (message) => void received.push(message));
    const owner = await slotOwner(cluster, keySlot(channel));
    const replica = (await clusterTopology(cluster)).masters.find((master) => master.port === owner)
      ?.replicaPorts[0];
    if (replica === undefined) throw new Error('no replica');
    await failover(cluster, replica);
    const back = await publishUntil(
      () => client.spublish(channel, 'after'),
      () => received.includes('after'),
      15_000,
    );
    expect(back).toBe(true);
  });

  it('moves sharded and classic subscriptions off a master that hangs and is replaced by its replica', async () => {
    const cluster = redisTargets().cluster;
    const client = createRedisClient(optionsFor('cluster', { name: 'shang', commandTimeoutMs: 1000 }), {
      logger: silent,
    });
    clients.push(client);
    const channel = `${uniquePrefix('shang')}:{ward}`;
    const sharded: string[] = [];
    const classic: string[] = [];
    await client.ssubscribe(channel, (message) => void sharded.push(message));
    await client.subscribe(channel, (message) => void classic.push(message));
    const owner = await slotOwner(cluster, keySlot(channel));
    // The classic subscriber may sit on any node; hang the one the sharded channel lives on.
    await pauseNode(cluster, owner);
    try {
      await waitForPromotion(cluster, owner, 30_000);
      const back = await publishUntil(
        async () => {
          await client.spublish(channel, 'after');
          await client.publish(channel, 'after');
        },
        () => sharded.includes('after') && classic.includes('after'),
        20_000,
      );
      expect({ sharded: sharded.includes('after'), classic: classic.includes('after') }).toEqual({
        sharded: true,
        classic: true,
      });
      expect(back).toBe(true);
    } finally {
      await resumeNode(cluster, owner);
    }
  });

  it('moves the classic subscriber of a cluster off a replica that hangs, which no failover would ever replace', async () => {
    const cluster = redisTargets().cluster;
    const { Redis: Direct } = await import('ioredis');
    const channel = `${uniquePrefix('subhang')}:c`;
    const received: string[] = [];
    // ioredis puts the subscriber on a node of its choosing: try until it sits on a replica.
    let port: number | undefined;
    let client: RedisClient | undefined;
    for (let attempt = 0; attempt < 20 && port === undefined; attempt++) {
      const name = `subhang${attempt}`;
      const candidate = createRedisClient(optionsFor('cluster', { name, commandTimeoutMs: 1000 }), {
        logger: silent,
      });
      clients.push(candidate);
      await candidate.subscribe(channel, (message) => void received.push(message));
      for (const node of cluster.nodes) {
        const direct = new Direct({ host: node.host, port: node.port });
        const list = (await direct.call('CLIENT', 'LIST')) as string;
        const role = (await direct.info('replication')).includes('role:slave');
        direct.disconnect();
        if (role && list.includes(`name=ioredis-cluster(subscriber):austa:${name}:sub`)) {
          port = node.port;
          client = candidate;
        }
      }
    }
    if (port === undefined || client === undefined) throw new Error('the subscriber never sat on a replica');
    const subscriber = client;
    await pauseNode(cluster, port);
    try {
      // Each replacement can land on the hung node again (ioredis picks at random), costing a liveness round of about
      // 3 × commandTimeoutMs before the next pick: the bound allows several such picks on a loaded machine.
      const back = await publishUntil(
        () => subscriber.publish(channel, 'after'),
        () => received.includes('after'),
        30_000,
      );
      expect(back).toBe(true);
    } finally {
      await resumeNode(cluster, port);
    }
  });
});
