import { createMetrics, type Metrics } from '@austa/metrics';
import { createTestClient, deleteByPrefix, redisTargets, uniquePrefix } from '@austa/test-env/vitest';
import { type Cluster, Command, type Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  commandTimer,
  createRedisClient,
  defineScript,
  isInstrumented,
  type RedisClient,
  type RedisClientOptions,
} from '../src/index.js';
import { eventually, measured, sample, startProxy } from './support.js';

type Topology = 'standalone' | 'cluster';

const silent = { warn: () => {}, error: () => {} };

function optionsFor(topology: Topology, extra: Partial<RedisClientOptions> = {}): RedisClientOptions {
  const targets = redisTargets();
  return topology === 'cluster'
    ? { cluster: { nodes: targets.cluster.nodes }, name: 'cmd', ...extra }
    : { url: targets.standalone.url, name: 'cmd', ...extra };
}

/** Every observation of the shared histogram for this client's registry, as `name/error_type` → count. */
async function observations(metrics: Metrics): Promise<Record<string, number>> {
  const result: Record<string, number> = {};
  for (const line of (await metrics.text()).split('\n')) {
    if (!line.startsWith('db_client_operation_duration_seconds_count{')) continue;
    const name = /db_operation_name="([^"]*)"/.exec(line)?.[1];
    const type = /error_type="([^"]*)"/.exec(line)?.[1];
    const count = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (count > 0) result[`${name}/${type}`] = count;
  }
  return result;
}

describe.each<Topology>(['standalone', 'cluster'])('commands on %s', (topology) => {
  let plain: Redis | Cluster;
  let prefix: string;
  const clients: RedisClient[] = [];

  beforeAll(() => {
    plain = createTestClient(redisTargets(), topology);
    prefix = uniquePrefix(`cmd-${topology}`);
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });

  afterAll(async () => {
    await deleteByPrefix(plain, prefix);
    await plain.quit();
  });

  function make(extra: Partial<RedisClientOptions> = {}, metrics: Metrics = createMetrics()) {
    const client = createRedisClient(optionsFor(topology, extra), { metrics, logger: silent });
    clients.push(client);
    return { client, metrics };
  }

  it('never sends a command later whose caller was told it timed out while Redis was unreachable', async () => {
    const key = `${prefix}:{late}:counter`;
    await plain.set(key, '0', 'EX', 120);
    // The client reaches Redis through a proxy that is down: a standalone client queues offline while it
    // reconnects; a cluster client has no slot map yet and queues in the cluster's offline queue.
    const real = topology === 'cluster' ? redisTargets().cluster.nodes[0] : redisTargets().standalone;
    if (real === undefined) throw new Error('no node');
    const proxy = await startProxy({ host: real.host, port: real.port }, true);
    try {
      const options: RedisClientOptions =
        topology === 'cluster'
          ? { cluster: { nodes: [`127.0.0.1:${proxy.port}`] }, name: 'late', commandTimeoutMs: 500 }
          : {
              url: `redis://127.0.0.1:${proxy.port}`,
              name: 'late',
              commandTimeoutMs: 500,
              maxRetriesPerRequest: null,
            };
      const metrics = createMetrics();
      const client = createRedisClient(options, { metrics, logger: silent });
      clients.push(client);
      const started = Date.now();
      await expect(client.client.incr(key)).rejects.toThrow(/timed out/);
      expect(Date.now() - started).toBeLessThan(500 + 1000);
      await proxy.up();
      await client.ready(10_000);
      // Redis is reachable again and the client ready: a queued INCR would have been sent by now.
      await client.client.ping();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await plain.get(key)).toBe('0');
      expect(await measured(metrics, 'incr', 'timeout')).toBe(1);
      expect(await measured(metrics, 'incr')).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it('times blocking commands by their own block time, so a job pushed after commandTimeoutMs is received', async () => {
    const { client, metrics } = make({ commandTimeoutMs: 300 });
    const key = `${prefix}:{jobs}:queue`;
    const popped = client.client.blpop(key, 2);
    await new Promise((resolve) => setTimeout(resolve, 700));
    await plain.rpush(key, 'job-1');
    await plain.expire(key, 60);
    expect(await popped).toEqual([key, 'job-1']);
    expect(await plain.llen(key)).toBe(0);
    expect(await measured(metrics, 'blpop')).toBe(1);
    // A block that ends with no data resolves null after the block time, not a timeout at commandTimeoutMs.
    const started = Date.now();
    expect(await client.client.brpop(`${prefix}:{jobs}:empty`, 1)).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('waits for XREAD BLOCK and WAIT past commandTimeoutMs', async () => {
    const { client } = make({ commandTimeoutMs: 300 });
    const stream = `${prefix}:{stream}:events`;
    await plain.xadd(stream, '*', 'seed', '1');
    await plain.expire(stream, 60);
    const read = client.client.xread('BLOCK', 2000, 'STREAMS', stream, '$');
    await new Promise((resolve) => setTimeout(resolve, 700));
    await plain.xadd(stream, '*', 'event', 'late');
    const result = await read;
    expect(result?.[0]?.[1]?.[0]?.[1]).toEqual(['event', 'late']);
    // More replicas than exist: WAIT runs its full timeout and reports how many acknowledged.
    const started = Date.now();
    const acknowledged = await client.client.call('WAIT', '5', '800');
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    expect(typeof acknowledged).toBe('number');
  });

  it('records MULTI commands with the outcome EXEC gave them', async () => {
    const { client, metrics } = make();
    const key = `${prefix}:{multi}:value`;
    const result = await client.client.multi().set(key, 'text', 'EX', 60).incr(key).exec();
    expect(result?.[0]).toEqual([null, 'OK']);
    expect(result?.[1]?.[0]).toBeInstanceOf(Error);
    expect(await observations(metrics)).toMatchObject({
      'multi/': 1,
      'set/': 1,
      'incr/ERR': 1,
      'exec/': 1,
    });
    expect(await measured(metrics, 'incr')).toBe(0);
  });

  it('records a script call once, with its outcome, when EVALSHA falls back after SCRIPT FLUSH', async () => {
    const { client, metrics } = make();
    client.client.defineCommand('austaTwice', { numberOfKeys: 1, lua: 'return tonumber(ARGV[1]) * 2' });
    const twice = (value: number) =>
      (client.client as unknown as { austaTwice(k: string, v: number): Promise<number> }).austaTwice(
        `${prefix}:{script}`,
        value,
      );
    expect(await twice(2)).toBe(4);
    const nodes =
      topology === 'cluster' ? (client.client as Cluster).nodes('master') : [client.client as Redis];
    await Promise.all(nodes.map((node) => node.script('FLUSH')));
    expect(await twice(3)).toBe(6);
    const seen = await observations(metrics);
    expect(seen['evalsha/']).toBe(2);
    expect(seen['evalsha/NOSCRIPT']).toBeUndefined();
    expect(seen['eval/']).toBeUndefined();
  });

  it('rejects a command whose reply transformer throws, instead of leaving it pending, and records the error', async () => {
    const { client, metrics } = make();
    const transformers = (Command as unknown as { _transformer: { reply: Record<string, unknown> } })
      ._transformer;
    Command.setReplyTransformer('echo', () => {
      throw new Error('transformer failed');
    });
    try {
      const outcome = await Promise.race([
        client.client.echo('x').then(
          () => 'resolved',
          (error: Error) => error.message,
        ),
        new Promise((resolve) => setTimeout(() => resolve('pending'), 3000)),
      ]);
      expect(outcome).toBe('transformer failed');
    } finally {
      delete transformers.reply.echo;
    }
    expect(await measured(metrics, 'echo')).toBe(0);
    expect(
      await sample(metrics, 'db_client_operation_duration_seconds_count', { db_operation_name: 'echo' }),
    ).toBe(1);
  });

  // ioredis applies transformers to EXEC's replies and puts a throw in that command's result: the hook once hung here.
  it('settles a MULTI whose reply transformer throws, and records that command once, as the error', async () => {
    const { client, metrics } = make();
    const transformers = (Command as unknown as { _transformer: { reply: Record<string, unknown> } })
      ._transformer;
    Command.setReplyTransformer('echo', () => {
      throw new Error('transformer failed');
    });
    try {
      const outcome = await Promise.race([
        client.client.multi().echo('x').exec(),
        new Promise((resolve) => setTimeout(() => resolve('pending'), 3000)),
      ]);
      expect((outcome as Array<[Error | null, unknown]>)[0]?.[0]?.message).toBe('transformer failed');
    } finally {
      delete transformers.reply.echo;
    }
    expect(await observations(metrics)).toMatchObject({ 'multi/': 1, 'exec/': 1 });
    expect(await measured(metrics, 'echo')).toBe(0);
    expect(
      await sample(metrics, 'db_client_operation_duration_seconds_count', { db_operation_name: 'echo' }),
    ).toBe(1);
  });

  it('measures commands of client.duplicate() and ends the duplicate in close()', async () => {
    const metrics = createMetrics();
    const client = createRedisClient(optionsFor(topology), { metrics, logger: silent });
    const copy = client.client.duplicate() as Redis | Cluster;
    await copy.set(`${prefix}:{dup}:a`, '1', 'EX', 60);
    expect(await measured(metrics, 'set')).toBe(1);
    await client.close();
    await eventually(
      async () => copy.status,
      (status) => status === 'end',
      5000,
    );
    expect(copy.status).toBe('end');
    await expect(copy.get(`${prefix}:{dup}:a`)).rejects.toThrow();
  });

  it('maps command names outside the known command list to "other"', async () => {
    const { client, metrics } = make();
    for (let i = 0; i < 20; i++) await client.client.call(`bogus${i}`).catch(() => undefined);
    const seen = await observations(metrics);
    expect(Object.keys(seen).filter((entry) => entry.startsWith('bogus'))).toEqual([]);
    expect(seen['other/ERR']).toBe(20);
  });

  it('commandTimer() records the round trips of a store on a plain client, and leaves an instrumented one alone', async () => {
    const metrics = createMetrics();
    const timer = commandTimer(plain, metrics);
    expect(isInstrumented(plain)).toBe(false);
    await timer.time('set', () => plain.set(`${prefix}:{timer}:a`, '1', 'EX', 60));
    await expect(timer.time('lpush', () => plain.lpush(`${prefix}:{timer}:a`, 'x'))).rejects.toThrow(
      /WRONGTYPE/,
    );
    expect(await measured(metrics, 'set')).toBe(1);
    expect(await measured(metrics, 'lpush', 'WRONGTYPE')).toBe(1);

    const { client, metrics: own } = make();
    expect(isInstrumented(client.client)).toBe(true);
    const storeTimer = commandTimer(client.client, own);
    await storeTimer.time('get', () => client.client.get(`${prefix}:{timer}:a`));
    // Recorded once, by the client's own hook.
    expect(await measured(own, 'get')).toBe(1);
    const bare = createRedisClient(optionsFor(topology));
    clients.push(bare);
    expect(isInstrumented(bare.client)).toBe(false);
  });

  it('defineScript() runs by SHA, falls back to EVAL after SCRIPT FLUSH, and works with auto-pipelining', async () => {
    const script = defineScript(
      "redis.call('SET', KEYS[1], ARGV[1], 'EX', 60) return redis.call('GET', KEYS[1])",
    );
    const key = `${prefix}:{script2}:a`;
    expect(await script.run(plain, [key], ['one'])).toBe('one');
    const nodes = topology === 'cluster' ? (plain as Cluster).nodes('master') : [plain as Redis];
    await Promise.all(nodes.map((node) => node.script('FLUSH')));
    const reply = await script.run(plain, [key], [Buffer.from([0xff, 0x00])], { buffers: true });
    expect(Buffer.isBuffer(reply) && reply.equals(Buffer.from([0xff, 0x00]))).toBe(true);
    const { client } = make({ enableAutoPipelining: true });
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        script.run(client.client, [`${prefix}:{script2}:${i}`], [`v${i}`]),
      ),
    );
    expect(replies).toEqual(Array.from({ length: 20 }, (_, i) => `v${i}`));
    // ioredis groups a cluster's auto-pipeline by the slot of a command's first argument, which for EVALSHA is the
    // SHA: scripts on keys of different slots must still each reach their own master, in the same tick.
    const spread = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        script.run(client.client, [`${prefix}:{spread${i}}:a`], [`s${i}`], { buffers: i % 2 === 0 }),
      ),
    );
    expect(spread.map(String)).toEqual(Array.from({ length: 40 }, (_, i) => `s${i}`));
    expect(() => defineScript('')).toThrowError(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });
});
