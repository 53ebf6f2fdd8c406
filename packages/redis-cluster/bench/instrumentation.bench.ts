import { type BenchCase, type BenchContext, defineBench, loadRival, type PreparedCase } from '@austa/bench';
import { createMetrics } from '@austa/metrics';
import { createRedisClient, DEFAULTS, type RedisClientOptions } from '@austa/redis-cluster';
import type { Cluster, Redis, RedisOptions } from 'ioredis';

// The rival comes from the bench package's dependencies; @austa/redis-cluster only has ioredis as a peer.
const ioredis = await loadRival<typeof import('ioredis')>('ioredis');

// The rival is plain ioredis built with the same settings our factory applies, so the ratio is the cost of the
// instrumentation alone, not of different timeouts or retry policies.
function plainIoredis(context: BenchContext, autoPipelining: boolean): Redis | Cluster {
  const redisOptions: RedisOptions = {
    commandTimeout: DEFAULTS.commandTimeoutMs,
    connectTimeout: DEFAULTS.connectTimeoutMs,
    maxRetriesPerRequest: DEFAULTS.maxRetriesPerRequest,
    enableOfflineQueue: DEFAULTS.enableOfflineQueue,
    enableAutoPipelining: autoPipelining,
  };
  if (context.target.topology === 'cluster') {
    return new ioredis.Cluster(context.target.nodes ?? [], {
      redisOptions,
      enableAutoPipelining: autoPipelining,
      retryDelayOnFailover: DEFAULTS.retryDelayOnFailoverMs,
      retryDelayOnClusterDown: DEFAULTS.retryDelayOnClusterDownMs,
      maxRedirections: DEFAULTS.maxRedirections,
      slotsRefreshTimeout: DEFAULTS.slotsRefreshTimeoutMs,
    });
  }
  return new ioredis.Redis(context.target.url ?? '', redisOptions);
}

function austaOptions(context: BenchContext, autoPipelining: boolean): RedisClientOptions {
  return context.target.topology === 'cluster'
    ? { cluster: { nodes: context.target.nodes ?? [] }, enableAutoPipelining: autoPipelining, name: 'bench' }
    : { url: context.target.url ?? '', enableAutoPipelining: autoPipelining, name: 'bench' };
}

type Operation = 'GET' | 'SET';

function runner(client: Redis | Cluster, operation: Operation, context: BenchContext) {
  const { keys, value } = context;
  return operation === 'GET'
    ? (i: number) => client.get(keys[i % keys.length] as string)
    : (i: number) => client.set(keys[i % keys.length] as string, value, 'EX', 900);
}

function cases(operation: Operation, autoPipelining: boolean): BenchCase[] {
  const op = `${operation}:autopipeline-${autoPipelining ? 'on' : 'off'}`;
  const ready = async (client: Redis | Cluster) => {
    await client.ping();
  };
  return [
    {
      op,
      lib: 'ioredis',
      async setup(context): Promise<PreparedCase> {
        const client = plainIoredis(context, autoPipelining);
        await ready(client);
        return { run: runner(client, operation, context), teardown: async () => void (await client.quit()) };
      },
    },
    {
      // The same plain ioredis again: its ratio to 'ioredis' is the noise floor of this run, for reading the others.
      op,
      lib: 'ioredis (control)',
      vs: 'ioredis',
      async setup(context): Promise<PreparedCase> {
        const client = plainIoredis(context, autoPipelining);
        await ready(client);
        return { run: runner(client, operation, context), teardown: async () => void (await client.quit()) };
      },
    },
    {
      op,
      lib: '@austa/redis-cluster',
      vs: 'ioredis',
      async setup(context): Promise<PreparedCase> {
        const metrics = createMetrics();
        const redis = createRedisClient(austaOptions(context, autoPipelining), { metrics });
        await ready(redis.client);
        return { run: runner(redis.client, operation, context), teardown: () => redis.close() };
      },
    },
    {
      op,
      lib: '@austa/redis-cluster (no metrics)',
      vs: 'ioredis',
      async setup(context): Promise<PreparedCase> {
        const redis = createRedisClient(austaOptions(context, autoPipelining));
        await ready(redis.client);
        return { run: runner(redis.client, operation, context), teardown: () => redis.close() };
      },
    },
  ];
}

export default defineBench({
  package: 'redis-cluster',
  cases: [...cases('GET', false), ...cases('GET', true), ...cases('SET', false), ...cases('SET', true)],
});
