import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { createMetrics, type Metrics } from '@austa/metrics';
import {
  clientKill,
  deleteByPrefix,
  keySlot,
  keysWithoutTtl,
  killNode,
  pauseNode,
  redisTarget,
  redisTargets,
  restartNode,
  restoreCluster,
  resumeNode,
  slotOwner,
  uniquePrefix,
  waitForPromotion,
} from '@austa/test-env/vitest';
import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, escapeGlob, type RedisClient, type RedisClientOptions } from '../src/index.js';
import { eventually, measured, sample, startProxy } from './support.js';

type Topology = 'standalone' | 'cluster';

function optionsFor(topology: Topology, extra: Partial<RedisClientOptions> = {}): RedisClientOptions {
  const targets = redisTargets();
  return topology === 'cluster'
    ? { cluster: { nodes: targets.cluster.nodes }, name: 'itest', ...extra }
    : { url: targets.standalone.url, name: 'itest', ...extra };
}

describe.each<Topology>(['standalone', 'cluster'])('createRedisClient on %s', (topology) => {
  let metrics: Metrics;
  let redis: RedisClient;
  let prefix: string;
  const extraClients: RedisClient[] = [];

  beforeAll(async () => {
    prefix = uniquePrefix(`rc-${topology}`);
    metrics = createMetrics();
    redis = createRedisClient(optionsFor(topology), { metrics });
    await redis.ready();
  });

  afterEach(async () => {
    await Promise.all(extraClients.splice(0).map((client) => client.close()));
  });

  afterAll(async () => {
    const cleaner = createRedisClient(optionsFor(topology, { name: 'cleaner' }));
    await cleaner.ready();
    try {
      // Every key the suite wrote carries a TTL; anything without one is a bug in what we wrote.
      expect(await keysWithoutTtl(cleaner.client, 't:')).toEqual([]);
      await deleteByPrefix(cleaner.client, 't:');
    } finally {
      await cleaner.close();
      await redis.close();
    }
  });

  function key(part: string): string {
    return `${prefix}:${part}`;
  }

  it('measures each command once, with its name and error type', async () => {
    const local = createMetrics();
    const client = createRedisClient(optionsFor(topology), { metrics: local });
    extraClients.push(client);
    await client.ready();
    await client.client.set(key('a'), '1', 'EX', 60);
    await client.client.get(key('a'));
    await client.client.get(key('a'));
    await client.client.set(key('list'), 'x', 'EX', 60);
    await expect(client.client.lpush(key('list'), 'y')).rejects.toThrow(/WRONGTYPE/);
    expect(await measured(local, 'set')).toBe(2);
    expect(await measured(local, 'get')).toBe(2);
    expect(await measured(local, 'lpush', 'WRONGTYPE')).toBe(1);
    expect(await measured(local, 'lpush')).toBe(0);
  });

  it('measures pipelines, MULTI and scripts command by command', async () => {
    const local = createMetrics();
    const client = createRedisClient(optionsFor(topology), { metrics: local });
    extraClients.push(client);
    await client.ready();
    const tagged = key('{p}');
    await client.client
      .pipeline()
      .set(`${tagged}:1`, 'a', 'EX', 60)
      .set(`${tagged}:2`, 'b', 'EX', 60)
      .get(`${tagged}:1`)
      .exec();
    await client.client.multi().incr(`${tagged}:n`).expire(`${tagged}:n`, 60).exec();
    client.client.defineCommand('austaEcho', { numberOfKeys: 1, lua: 'return ARGV[1]' });
    const echo = (client.client as unknown as { austaEcho(k: string, v: string): Promise<string> }).austaEcho;
    for (let i = 0; i < 3; i++) {
      expect(await echo.call(client.client, tagged, `v${i}`)).toBe(`v${i}`);
    }
    expect(await measured(local, 'set')).toBe(2);
    expect(await measured(local, 'get')).toBe(1);
    expect(await measured(local, 'multi')).toBe(1);
    expect(await measured(local, 'incr')).toBe(1);
    expect(await measured(local, 'exec')).toBe(1);
    // ioredis sends EVAL the first time a connection runs a script (renaming the command), EVALSHA after.
    expect((await measured(local, 'evalsha')) + (await measured(local, 'eval'))).toBe(3);
    expect(await measured(local, 'evalsha', 'NOSCRIPT')).toBe(0);
  });

  it('measures auto-pipelined commands once each', async () => {
    const local = createMetrics();
    const client = createRedisClient(optionsFor(topology, { enableAutoPipelining: true }), {
      metrics: local,
    });
    extraClients.push(client);
    await client.ready();
    await Promise.all(Array.from({ length: 50 }, (_, i) => client.client.set(key(`ap:${i}`), 'v', 'EX', 60)));
    await Promise.all(Array.from({ length: 50 }, (_, i) => client.client.get(key(`ap:${i}`))));
    expect(await measured(local, 'set')).toBe(50);
    expect(await measured(local, 'get')).toBe(50);
  });

  it('sends the commands of one tick in one write per connection, each answered on its own', async () => {
    const client = createRedisClient(optionsFor(topology));
    extraClients.push(client);
    await client.ready();
    const sockets = (): Array<{ writableCorked: number }> =>
      client.client instanceof Cluster
        ? client.client
            .nodes('master')
            .map((node) => (node as unknown as { stream: { writableCorked: number } }).stream)
        : [(client.client as unknown as { stream: { writableCorked: number } }).stream];
    // Open every master's connection first: only a ready connection is corked.
    await Promise.all(Array.from({ length: 30 }, (_, i) => client.client.get(key(`warm:${i}`))));
    const keys = Array.from({ length: 200 }, (_, i) => key(`tick:${i}`));
    const replies = keys.map((k, i) => client.client.set(k, String(i), 'EX', 60));
    // Still corked within the tick: nothing issued above has reached a socket yet.
    expect(sockets().some((socket) => socket.writableCorked > 0)).toBe(true);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(sockets().every((socket) => socket.writableCorked === 0)).toBe(true);
    expect(await Promise.all(replies)).toEqual(keys.map(() => 'OK'));
    expect(await client.client.get(keys[199] as string)).toBe('199');
    // Turned off, nothing is held.
    const uncorked = createRedisClient(optionsFor(topology, { name: 'uncorked', corkWrites: false }));
    extraClients.push(uncorked);
    await uncorked.ready();
    const reply = uncorked.client.get(keys[0] as string);
    const own =
      uncorked.client instanceof Cluster
        ? uncorked.client
            .nodes('master')
            .map((node) => (node as unknown as { stream?: { writableCorked: number } }).stream)
        : [(uncorked.client as unknown as { stream: { writableCorked: number } }).stream];
    expect(own.every((socket) => (socket?.writableCorked ?? 0) === 0)).toBe(true);
    expect(await reply).toBe('0');
  });

  it('costs nothing when no metrics are given and still works', async () => {
    const client = createRedisClient(optionsFor(topology));
    extraClients.push(client);
    await client.ready();
    expect(await client.client.set(key('plain'), 'v', 'EX', 60)).toBe('OK');
  });

  it('delivers published messages to subscribe, psubscribe and ssubscribe handlers', async () => {
    const channel = key('chan');
    const received: string[] = [];
    const patterned: string[] = [];
    const sharded: string[] = [];
    const off1 = await redis.subscribe(channel, (message) => void received.push(message));
    const off2 = await redis.psubscribe(
      `${escapeGlob(prefix)}:ch*`,
      (message, from) => void patterned.push(`${from}=${message}`),
    );
    const off3 = await redis.ssubscribe(`${channel}:s`, (message) => void sharded.push(message));
    await redis.publish(channel, 'hello');
    await redis.spublish(`${channel}:s`, 'shard-hello');
    await eventually(
      async () => received.length + patterned.length + sharded.length,
      (n) => n >= 3,
      5000,
    );
    expect(received).toEqual(['hello']);
    expect(patterned).toEqual([`${channel}=hello`]);
    expect(sharded).toEqual(['shard-hello']);
    await off1();
    await off2();
    await off3();
    await redis.publish(channel, 'after');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(received).toEqual(['hello']);
    expect(redis.stats().subscriber).toMatchObject({ channels: 0, patterns: 0, shardChannels: 0 });
    expect(
      await sample(metrics, 'austa_redis_pubsub_messages_total', {
        kind: 'message',
        direction: 'received',
        channel: '',
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      await sample(metrics, 'austa_redis_pubsub_messages_total', {
        kind: 'smessage',
        direction: 'published',
      }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('keeps a subscription alive when its handler throws, and counts the error', async () => {
    const logged: unknown[] = [];
    const local = createMetrics();
    const client = createRedisClient(optionsFor(topology), {
      metrics: local,
      logger: { warn: () => {}, error: (message, details) => void logged.push({ message, details }) },
    });
    extraClients.push(client);
    const channel = key('throws');
    const seen: string[] = [];
    await client.subscribe(channel, (message) => {
      seen.push(message);
      if (message === 'boom') throw new Error('handler failed');
    });
    await client.subscribe(channel, async (message) => {
      if (message === 'boom') throw new Error('async handler failed');
    });
    await client.publish(channel, 'boom');
    // A cluster may route two PUBLISHes through different nodes, which do not keep their order: 'fine' goes out
    // only once 'boom' (the throwing one) has been handled, so what follows shows the subscription survived it.
    await eventually(
      async () => seen.length,
      (n) => n >= 1,
      5000,
    );
    await client.publish(channel, 'fine');
    await eventually(
      async () => seen.length,
      (n) => n >= 2,
      5000,
    );
    expect(seen).toEqual(['boom', 'fine']);
    await eventually(
      async () => logged.length,
      (n) => n >= 2,
      2000,
    );
    expect(await sample(local, 'austa_redis_pubsub_handler_errors_total', { kind: 'message' })).toBe(2);
    expect(JSON.stringify(logged)).not.toContain(channel);
  });

  it('re-subscribes after CLIENT KILL of the subscriber connection', async () => {
    const local = createMetrics();
    const client = createRedisClient(optionsFor(topology, { name: 'subkill' }), {
      metrics: local,
      logger: { warn: () => {}, error: () => {} },
    });
    extraClients.push(client);
    const channel = key('subkill');
    const received: string[] = [];
    await client.subscribe(channel, (message) => void received.push(message));
    await client.publish(channel, 'before');
    await eventually(
      async () => received.length,
      (n) => n >= 1,
      5000,
    );
    // ioredis names a cluster's subscriber connection after the component, then ours.
    const name =
      topology === 'cluster' ? 'ioredis-cluster(subscriber):austa:subkill:sub' : 'austa:subkill:sub';
    expect(await clientKill(redisTarget(topology), { name })).toBe(1);
    const back = await eventually(
      async () => {
        await client.publish(channel, 'after');
        return received.includes('after');
      },
      (ok) => ok,
      15_000,
      250,
    );
    expect(back).toBe(true);
    expect(received[0]).toBe('before');
    expect(client.stats().subscriber.channels).toBe(1);
    if (topology === 'standalone') {
      expect(
        await sample(local, 'austa_redis_reconnects_total', { scope: 'subscriber' }),
      ).toBeGreaterThanOrEqual(1);
    }
  });

  it('counts reconnects of the client connection, and of a cluster node connection', async () => {
    const local = createMetrics();
    const client = createRedisClient(optionsFor(topology, { name: 'rekill' }), {
      metrics: local,
      logger: { warn: () => {}, error: () => {} },
    });
    extraClients.push(client);
    await client.ready();
    await client.client.set(key('{rk}:a'), 'v', 'EX', 60);
    expect(await clientKill(redisTarget(topology), { name: 'austa:rekill' })).toBeGreaterThanOrEqual(1);
    await eventually(
      () => client.client.get(key('{rk}:a')).catch(() => null),
      (value) => value === 'v',
      10_000,
    );
    const scope = topology === 'cluster' ? 'node' : 'client';
    const counted = await eventually(
      () => sample(local, 'austa_redis_reconnects_total', { client: 'rekill', scope }),
      (count) => count >= 1,
      10_000,
    );
    expect(counted).toBeGreaterThanOrEqual(1);
  });

  it('returns INFO parsed per node', async () => {
    const info = await redis.info('server');
    const nodes = Object.entries(info);
    expect(nodes.length).toBe(topology === 'cluster' ? 6 : 1);
    for (const [address, node] of nodes) {
      expect(address).toMatch(/^[\w.:-]+:\d+$/);
      expect(node.ok).toBe(true);
      if (node.ok) expect(node.sections.server?.redis_version).toMatch(/^\d+\.\d+/);
    }
  });

  it('reports stats for every node with its role and reports healthy', async () => {
    const stats = redis.stats();
    expect(stats).toMatchObject({ name: 'itest', topology, status: 'ready', closed: false });
    const roles = stats.nodes.map((node) => node.role).sort();
    expect(roles).toEqual(
      topology === 'cluster'
        ? ['master', 'master', 'master', 'replica', 'replica', 'replica']
        : ['standalone'],
    );
    for (const node of stats.nodes) {
      expect(node.address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(node.status).toBe('ready');
      expect({ command: node.commandQueueLength, offline: node.offlineQueueLength }).toEqual({
        command: 0,
        offline: 0,
      });
    }
    const health = await redis.health();
    expect(health).toMatchObject({ healthy: true, problems: [] });
    if (topology === 'cluster') expect(health).toMatchObject({ clusterState: 'ok', slotsOk: 16384 });
    expect(health.nodes.every((node) => node.ok)).toBe(true);
    // On a cluster the health PINGs go straight to each master; they are measured all the same.
    expect(await measured(metrics, 'ping')).toBeGreaterThanOrEqual(topology === 'cluster' ? 3 : 1);
    const text = await metrics.text();
    expect(text).toMatch(
      /austa_redis_connections\{[^}]*role="(standalone|master)"[^}]*status="ready"[^}]*\} \d/,
    );
    if (topology === 'cluster') {
      expect(await sample(metrics, 'austa_redis_connections', { role: 'replica', status: 'ready' })).toBe(3);
    }
    const unsubscribe = await redis.subscribe(key('gauge'), () => {});
    expect(
      await sample(metrics, 'austa_redis_connections', { role: 'subscriber', status: 'ready' }),
    ).toBeGreaterThanOrEqual(1);
    await unsubscribe();
  });

  it('scans every master, and escaped user parts match only themselves', async () => {
    const base = key('scan');
    const users = ['alice', 'a*', 'b?c', '[x]'];
    for (const user of users) {
      for (let i = 0; i < 20; i++) await redis.client.set(`${base}:${user}:${i}`, 'v', 'EX', 60);
    }
    const all: string[] = [];
    for await (const found of redis.scan(`${escapeGlob(base)}:*`)) all.push(found);
    expect(all.length).toBe(80);
    const starUser: string[] = [];
    for await (const found of redis.scan(`${escapeGlob(base)}:${escapeGlob('a*')}:*`)) starUser.push(found);
    expect(starUser.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `${base}:a*:${i}`).sort());
    // On a cluster SCAN goes straight to each master; it is measured all the same.
    expect(await measured(metrics, 'scan')).toBeGreaterThanOrEqual(topology === 'cluster' ? 3 : 1);
  });

  it('rejects bad input with E_INVALID_ARGUMENT and writes nothing', async () => {
    const bad = key('bad');
    await expect(redis.publish('', 'x')).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    await expect(redis.publish(bad, { not: 'a string' } as never)).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
    await expect(redis.subscribe(bad, 'not a function' as never)).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
    await expect(redis.subscribe('x'.repeat(2000), () => {})).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
    await expect(redis.info('server; FLUSHALL')).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    expect(() => redis.scan('')).toThrowError(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    expect(() => redis.scan('*', { count: 0 })).toThrowError(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
    );
    expect(() => redis.scan('*', { type: 'string DEL' })).toThrowError(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
    );
    expect(redis.stats().subscriber.channels).toBe(0);
    const written: string[] = [];
    for await (const found of redis.scan(`${escapeGlob(bad)}*`)) written.push(found);
    expect(written).toEqual([]);
  });

  it('puts channel names into labels only when asked to', async () => {
    const local = createMetrics();
    const client = createRedisClient(optionsFor(topology), { metrics: local, channelLabels: true });
    extraClients.push(client);
    await client.publish(key('labelled'), 'x');
    expect(
      await sample(local, 'austa_redis_pubsub_messages_total', {
        direction: 'published',
        channel: key('labelled'),
      }),
    ).toBe(1);
    expect(await metrics.text()).not.toContain(key('labelled'));
  });

  it('exposes metrics that pass promtool check metrics', async () => {
    // Every instrument of the package has been written to by the tests above on this registry.
    const text = await metrics.text();
    for (const name of [
      'db_client_operation_duration_seconds',
      'austa_redis_connections',
      'austa_redis_pubsub_messages_total',
    ]) {
      expect(text).toContain(`# TYPE ${name}`);
    }
    let output: string;
    try {
      output = execFileSync('promtool', ['check', 'metrics'], {
        input: text,
        encoding: 'utf8',
        stdio: 'pipe',
      });
    } catch (error) {
      const failure = error as { code?: string; stdout?: string; stderr?: string };
      if (failure.code === 'ENOENT') throw new Error('promtool is missing: apt-get install -y prometheus');
      throw new Error(`promtool check metrics failed:\n${failure.stdout ?? ''}${failure.stderr ?? ''}`);
    }
    expect(output.trim()).toBe('');
  });

  it('fails within commandTimeoutMs, and ready() with E_REDIS_UNAVAILABLE, when Redis is unreachable', async () => {
    // A loopback port nothing listens on: the client keeps reconnecting, and a Cluster without a slot map queues
    // commands itself, so only the armed timeout keeps them from waiting forever.
    const deadPort = await closedLoopbackPort();
    const options: RedisClientOptions =
      topology === 'cluster'
        ? { cluster: { nodes: [`127.0.0.1:${deadPort}`] }, name: 'unreachable', commandTimeoutMs: 400 }
        : { url: `redis://127.0.0.1:${deadPort}`, name: 'unreachable', commandTimeoutMs: 400 };
    const local = createMetrics();
    const client = createRedisClient(options, {
      metrics: local,
      logger: { warn: () => {}, error: () => {} },
    });
    extraClients.push(client);
    await expect(client.ready(300)).rejects.toMatchObject({ code: 'E_REDIS_UNAVAILABLE' });
    const started = Date.now();
    const outcome = await Promise.race([
      client.client.get(key('never')).then(
        () => 'resolved',
        (error: Error) => error.message,
      ),
      new Promise((resolve) => setTimeout(() => resolve('hung'), 5000)),
    ]);
    // Standalone may give up first through maxRetriesPerRequest (3 reconnects); either way it fails fast.
    expect(outcome).toMatch(topology === 'cluster' ? /timed out/ : /timed out|max retries per request/);
    expect(Date.now() - started).toBeLessThan(2000);
    const failures =
      (await measured(local, 'get', 'timeout')) + (await measured(local, 'get', 'max_retries'));
    expect(failures).toBe(1);
  });

  it('close() waits for a command held in flight on a paused server, then rejects later calls with E_CLIENT_CLOSED', async () => {
    const target = redisTarget(topology);
    const client = createRedisClient(optionsFor(topology, { commandTimeoutMs: 5000 }));
    await client.ready();
    await client.subscribe(key('closing'), () => {});
    const held = key('{held}:a');
    const port =
      topology === 'cluster'
        ? await slotOwner(redisTargets().cluster, keySlot('held'))
        : redisTargets().standalone.port;
    await pauseNode(target, topology === 'cluster' ? port : undefined);
    let settled = false;
    const pending = client.client.set(held, 'v', 'EX', 60).finally(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closing = client.close();
    let closed = false;
    void closing.then(() => {
      closed = true;
    });
    // While the server is paused, the reply cannot come: close() must still be waiting for it.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect({ settled, closed }).toEqual({ settled: false, closed: false });
    await resumeNode(target, topology === 'cluster' ? port : undefined);
    await expect(pending).resolves.toBe('OK');
    await closing;
    await expect(client.client.get(held)).rejects.toMatchObject({ code: 'E_CLIENT_CLOSED' });
    await expect(client.publish(key('closing'), 'x')).rejects.toMatchObject({ code: 'E_CLIENT_CLOSED' });
    await expect(client.ready()).rejects.toMatchObject({ code: 'E_CLIENT_CLOSED' });
    expect((await client.health()).healthy).toBe(false);
    await expect(client.close()).resolves.toBeUndefined();
  });

  it('close() lets a command that is still waiting for a connection finish before it quits', async () => {
    const real = topology === 'cluster' ? redisTargets().cluster.nodes[0] : redisTargets().standalone;
    if (real === undefined) throw new Error('no node');
    const options: RedisClientOptions = {
      ...optionsFor(topology, { commandTimeoutMs: 8000 }),
      name: 'drain',
    };
    if (topology === 'cluster') {
      const client = createRedisClient(
        {
          ...options,
          cluster: {
            nodes: redisTargets().cluster.nodes,
            retryDelayOnFailoverMs: 200,
            clusterNodeTimeoutMs: 2000,
            maxRedirections: 64,
          },
        },
        { logger: { warn: () => {}, error: () => {} } },
      );
      await client.ready();
      const cluster = redisTargets().cluster;
      const held = key('{drain}:a');
      const victim = await slotOwner(cluster, keySlot('drain'));
      await client.client.get(held);
      await killNode(cluster, victim);
      try {
        // A write already on the wire when the master died would fail with E_MAYBE_APPLIED: the SET goes out once the
        // client has seen that connection end, meets the dead master, and waits in the retry queue for the promotion.
        await eventually(
          async () =>
            (client.client as Cluster).nodes('all').find((node) => node.options.port === victim)?.status ??
            'end',
          (status) => status === 'end',
          5000,
          20,
        );
        const pending = client.client.set(held, 'v', 'EX', 60);
        await new Promise((resolve) => setTimeout(resolve, 100));
        await client.close();
        await expect(pending).resolves.toBe('OK');
      } finally {
        await waitForPromotion(cluster, victim, 30_000);
        await restartNode(cluster, victim);
        await restoreCluster(cluster, 60_000);
      }
      return;
    }
    const proxy = await startProxy({ host: real.host, port: real.port });
    try {
      const client = createRedisClient(
        {
          url: `redis://127.0.0.1:${proxy.port}`,
          name: 'drain',
          commandTimeoutMs: 8000,
          maxRetriesPerRequest: null,
        },
        { logger: { warn: () => {}, error: () => {} } },
      );
      await client.ready();
      await proxy.down();
      await eventually(
        async () => client.client.status,
        (status) => status !== 'ready',
        5000,
        20,
      );
      // Offline: the SET waits in the offline queue until the connection comes back.
      const pending = client.client.set(key('drain'), 'v', 'EX', 60);
      const closing = client.close();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await proxy.up();
      await expect(pending).resolves.toBe('OK');
      await closing;
    } finally {
      await proxy.close();
    }
  });

  it('close() returns within commandTimeoutMs against an unreachable server, failing what was queued', async () => {
    const deadPort = await closedLoopbackPort();
    const commandTimeoutMs = 600;
    const options: RedisClientOptions =
      topology === 'cluster'
        ? { cluster: { nodes: [`127.0.0.1:${deadPort}`] }, name: 'dead', commandTimeoutMs }
        : {
            url: `redis://127.0.0.1:${deadPort}`,
            name: 'dead',
            commandTimeoutMs,
            maxRetriesPerRequest: null,
          };
    const client = createRedisClient(options, { logger: { warn: () => {}, error: () => {} } });
    const queued = Array.from({ length: 5 }, (_, i) =>
      client.client.set(key(`dead:${i}`), 'v').then(
        () => 'ok',
        (error: Error) => error.message,
      ),
    );
    await client.subscribe(key('dead'), () => {}).catch(() => undefined);
    const started = Date.now();
    await client.close();
    expect(Date.now() - started).toBeLessThan(commandTimeoutMs + 400);
    for (const outcome of await queued) expect(outcome).not.toBe('ok');
  });

  it('health() says which CLUSTER INFO or PING failed instead of throwing', async () => {
    if (topology === 'standalone') {
      // A standalone server has no CLUSTER INFO; PING of a paused server times out.
      const client = createRedisClient(optionsFor(topology, { commandTimeoutMs: 3000 }));
      extraClients.push(client);
      await client.ready();
      await pauseNode(redisTarget('standalone'));
      try {
        const health = await client.health({ timeoutMs: 300 });
        expect(health.healthy).toBe(false);
        expect(health.problems.join(' ')).toMatch(/did not answer PING: PING timed out after 300 ms/);
      } finally {
        await resumeNode(redisTarget('standalone'));
      }
      return;
    }
    // An ACL user that may do anything but CLUSTER INFO, on every node.
    const nodes = redisTargets().cluster.nodes;
    const admin = nodes.map((node) => new Redis({ host: node.host, port: node.port }));
    const user = `health-${Date.now()}`;
    try {
      await Promise.all(
        admin.map((node) =>
          node.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all', '-cluster|info'),
        ),
      );
      const client = createRedisClient(
        {
          cluster: { nodes, clusterOptions: { enableReadyCheck: false } },
          name: 'noinfo',
          username: user,
          password: 'pw',
        },
        { logger: { warn: () => {}, error: () => {} } },
      );
      extraClients.push(client);
      await client.ready();
      const health = await client.health();
      expect(health.healthy).toBe(false);
      expect(health.nodes.every((node) => node.ok)).toBe(true);
      expect(health.problems.join(' ')).toMatch(/CLUSTER INFO failed on .*NOPERM/);
    } finally {
      await Promise.all(admin.map((node) => node.call('ACL', 'DELUSER', user).finally(() => node.quit())));
    }
  });
});

/** A loopback port that was free a moment ago and has no listener. */
function closedLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
