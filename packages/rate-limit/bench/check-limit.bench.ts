import { type BenchCase, type BenchContext, defineBench, loadRival, type PreparedCase } from '@austa/bench';
import { createMetrics } from '@austa/metrics';
import { createRateLimiter, type LimitConfig, type Strategy } from '@austa/rate-limit';
import { DEFAULTS } from '@austa/redis-cluster';
import type { Cluster, Redis, RedisOptions } from 'ioredis';

// Rivals come from the bench package's dependencies: neither is a dependency of @austa/rate-limit.
const ioredis = await loadRival<typeof import('ioredis')>('ioredis');
// The part of rate-limiter-flexible's API this file uses (its types are not reachable from this package).
interface RivalLimiter {
  consume(key: string): Promise<unknown>;
}
const { RateLimiterRedis } = await loadRival<{
  RateLimiterRedis: new (options: {
    storeClient: Redis | Cluster;
    keyPrefix: string;
    points: number;
    duration: number;
  }) => RivalLimiter;
}>('rate-limiter-flexible');

const RIVAL = 'rate-limiter-flexible';
const OURS = '@austa/rate-limit';
const CEILING = 'ceiling: ioredis defineCommand INCR+PEXPIRE+PTTL';
/** High enough that no check is rejected in a run: every library does the same work (a counted request). */
const LIMIT = 100_000;
const WINDOW_SECONDS = 60;

// Every library gets a client built with these same options (ioredis' defaults except the timeouts and retries
// @austa/redis-cluster applies), so the ratio measures the rate limiter, not the connection settings. All of them are
// plain ioredis clients: none is built or instrumented by @austa/redis-cluster (no command hook, no metrics), and
// each case says so on stderr.
const redisOptions: RedisOptions = {
  commandTimeout: DEFAULTS.commandTimeoutMs,
  connectTimeout: DEFAULTS.connectTimeoutMs,
  maxRetriesPerRequest: DEFAULTS.maxRetriesPerRequest,
  enableOfflineQueue: DEFAULTS.enableOfflineQueue,
};
const clusterOptions = {
  redisOptions,
  retryDelayOnFailover: DEFAULTS.retryDelayOnFailoverMs,
  retryDelayOnClusterDown: DEFAULTS.retryDelayOnClusterDownMs,
  maxRedirections: DEFAULTS.maxRedirections,
  slotsRefreshTimeout: DEFAULTS.slotsRefreshTimeoutMs,
};

function client(context: BenchContext, lib: string): Redis | Cluster {
  const cluster = context.target.topology === 'cluster';
  process.stderr.write(
    `[bench] ${lib} (${context.target.topology}): plain ioredis ${cluster ? 'Cluster' : 'Redis'} client, not ` +
      `instrumented, options ${JSON.stringify(cluster ? clusterOptions : redisOptions)}\n`,
  );
  if (cluster) return new ioredis.Cluster(context.target.nodes ?? [], clusterOptions);
  return new ioredis.Redis(context.target.url ?? '', redisOptions);
}

async function ready(redis: Redis | Cluster) {
  await redis.ping();
  return async () => void (await redis.quit());
}

function rivalCase(op: string, lib: string, vs?: string): BenchCase {
  return {
    op,
    lib,
    ...(vs ? { vs } : {}),
    async setup(context): Promise<PreparedCase> {
      const redis = client(context, lib);
      const teardown = await ready(redis);
      const limiter = new RateLimiterRedis({
        storeClient: redis,
        keyPrefix: `${context.prefix}:rlflx:${vs ? 'control' : 'rival'}`,
        points: LIMIT,
        duration: WINDOW_SECONDS,
      });
      const keys = context.keys;
      return { run: (i) => limiter.consume(keys[i % keys.length] as string), teardown };
    },
  };
}

function oursCase(
  op: string,
  strategy: Strategy,
  config: LimitConfig,
  options: { metrics?: boolean } = {},
): BenchCase {
  return {
    op,
    lib: options.metrics ? `${OURS} (metrics)` : OURS,
    vs: RIVAL,
    async setup(context): Promise<PreparedCase> {
      const redis = client(context, options.metrics ? `${OURS} (metrics)` : OURS);
      const teardown = await ready(redis);
      const limiter = createRateLimiter({
        redis,
        prefix: `${context.prefix}:austa${options.metrics ? 'm' : ''}`,
        ...(options.metrics ? { metrics: createMetrics() } : {}),
      });
      const keys = context.keys;
      return {
        run: (i) => limiter.checkLimit(keys[i % keys.length] as string, config, strategy),
        teardown: async () => {
          await limiter.close();
          await teardown();
        },
      };
    },
  };
}

// The least a Redis fixed window can do: one script, one key, INCR, PEXPIRE when the window opens, PTTL.
const CEILING_LUA = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}
`;

function ceilingCase(op: string): BenchCase {
  return {
    op,
    lib: CEILING,
    // Compared with ours: its ratio is ceiling / ours, so ours reaches 1 / ratio of the ceiling.
    vs: OURS,
    async setup(context): Promise<PreparedCase> {
      const redis = client(context, CEILING);
      const teardown = await ready(redis);
      redis.defineCommand('benchFixedWindow', { numberOfKeys: 1, lua: CEILING_LUA });
      const call = (
        redis as unknown as Record<string, (key: string, ms: string) => Promise<[number, number]>>
      ).benchFixedWindow as (key: string, ms: string) => Promise<[number, number]>;
      const prefix = `${context.prefix}:ceiling:`;
      const windowMs = String(WINDOW_SECONDS * 1000);
      const keys = context.keys.map((key) => prefix + key);
      return {
        run: (i) =>
          call.call(redis, keys[i % keys.length] as string, windowMs).then((reply) => reply[0] <= LIMIT),
        teardown,
      };
    },
  };
}

function group(op: string, strategy: Strategy, config: LimitConfig, extra: BenchCase[] = []): BenchCase[] {
  return [
    rivalCase(op, RIVAL),
    // The rival again: its ratio to the rival is this run's noise floor.
    rivalCase(op, `${RIVAL} (control)`, RIVAL),
    oursCase(op, strategy, config),
    ...extra,
  ];
}

const window = { limit: LIMIT, windowSeconds: WINDOW_SECONDS };

export default defineBench({
  package: 'rate-limit',
  cases: [
    ...group('checkLimit:fixed-window', 'fixed-window', window, [
      ceilingCase('checkLimit:fixed-window'),
      oursCase('checkLimit:fixed-window', 'fixed-window', window, { metrics: true }),
    ]),
    ...group('checkLimit:sliding-window-approximate', 'sliding-window', {
      ...window,
      precision: 'approximate',
    }),
    ...group('checkLimit:sliding-window-exact', 'sliding-window', { ...window, precision: 'exact' }),
    ...group('checkLimit:token-bucket', 'token-bucket', window),
    ...group('checkLimit:leaky-bucket', 'leaky-bucket', window),
  ],
});
