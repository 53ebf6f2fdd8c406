import { createMetrics, type Metrics } from '@austa/metrics';
import { type AustaMongoClient, type CreateMongoClientOptions, createMongoClient } from '@austa/mongo-client';
import { createRedisClient, type RedisClient, type RedisClientOptions } from '@austa/redis-cluster';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { startEmbeddedMongo } from './embedded/mongo.js';
import { type EmbeddedRedis, startEmbeddedRedis } from './embedded/redis.js';
import { loggedError } from './http-errors.js';
import { disabledMongo, type MongoDependency, mongoDependency } from './mongo.js';

/** What the service connects to. The app uses these and never closes them; `close()` here does, last. */
export interface Resources {
  metrics: Metrics;
  redis: RedisClient;
  mongo: MongoDependency;
  close(): Promise<void>;
}

/** One registry for the whole process, every sample labelled `service="care-api"`, process metrics included. */
export function createServiceMetrics(): Metrics {
  return createMetrics({ defaultLabels: { service: 'care-api' }, collectDefaultMetrics: true });
}

/** The service's Redis client options on top of where Redis is: request-path timeouts and auto-pipelining. */
export function redisOptions(base: RedisClientOptions, config: Config): RedisClientOptions {
  return {
    ...base,
    // The client name (connection name `austa:<name>`, the `client` of its metrics); tests give their own.
    name: base.name ?? 'care-api',
    commandTimeoutMs: config.redisCommandTimeoutMs,
    // Many concurrent requests each send a few commands: one write per tick instead of one per command. Every store's
    // scripts go out as EVALSHA, which ioredis routes by its first key inside a cluster's auto-pipeline.
    enableAutoPipelining: true,
    // Patient data: a write whose reply was lost with its connection fails with E_MAYBE_APPLIED instead of being sent
    // again and maybe running twice; each store handles it (idempotency keys, read-back, the rate limiter's policy).
    resendInFlightWrites: false,
  };
}

/** The `{ warn, error }` logger the @austa packages take, writing to pino. */
export function packageLogger(logger: Logger, field: string) {
  return {
    warn: (message: string, details?: unknown) => logger.warn({ [field]: details }, message),
    error: (message: string, details?: unknown) => logger.error({ [field]: details }, message),
  };
}

/** The service's MongoDB client options on top of where MongoDB is. */
export function mongoOptions(base: CreateMongoClientOptions, config: Config): CreateMongoClientOptions {
  // A request should not wait 15 s for a primary: it answers 503 sooner and the client retries. Set only when
  // neither MONGODB_SERVER_SELECTION_TIMEOUT_MS nor the URL's serverSelectionTimeoutMS says otherwise (an option
  // given here would win over the URL's).
  const urlSetsIt = /[?&]serverSelectionTimeoutMS=/i.test(base.url ?? '');
  return {
    ...(urlSetsIt ? {} : { serverSelectionTimeoutMs: 5000 }),
    ...base,
    dbName: config.mongo.database,
    name: 'care-api',
  };
}

async function openMongo(
  config: Config,
  logger: Logger,
  metrics: Metrics,
  stops: Array<() => Promise<void>>,
): Promise<MongoDependency> {
  let base: CreateMongoClientOptions;
  if (config.mongo.mode === 'disabled') {
    logger.warn(
      'MongoDB disabled (MONGODB_EMBEDDED=false and no MONGODB_URL): patient profile routes answer 503',
    );
    return disabledMongo('MONGODB_EMBEDDED=false and no MONGODB_URL');
  }
  if (config.mongo.mode === 'embedded') {
    const embedded = await startEmbeddedMongo();
    if (!embedded.available) {
      logger.warn(
        `MongoDB disabled: no MONGODB_URL and mongodb-memory-server is unavailable (${embedded.reason}); patient profile routes answer 503`,
      );
      return disabledMongo('no MONGODB_URL and mongodb-memory-server is unavailable');
    }
    stops.push(embedded.stop);
    logger.warn(
      { url: embedded.url },
      'started an in-memory MongoDB replica set (development only; set MONGODB_URL for a real server)',
    );
    base = { url: embedded.url };
  } else {
    base = config.mongo.options;
  }
  const mongo: AustaMongoClient = createMongoClient({
    ...mongoOptions(base, config),
    metrics,
    logger: packageLogger(logger, 'mongodb'),
  });
  stops.push(() => mongo.close());
  // Connecting in the background: a MongoDB that is down at startup makes /health/ready and the profile routes
  // answer 503 until it is back (the client keeps reconnecting), rather than keeping sessions and chat down too.
  mongo.connect().catch((error: Error) => {
    logger.warn(
      { err: { name: error.name } },
      'MongoDB is not reachable yet; profile routes answer 503 until it is',
    );
  });
  return mongoDependency(mongo, (problems) => logger.warn({ problems }, 'MongoDB is unhealthy'));
}

/**
 * Opens Redis (the development redis-server child when none is configured), MongoDB when there is one, and the
 * metrics registry. On failure, whatever was started is stopped again.
 */
export async function openResources(config: Config, logger: Logger): Promise<Resources> {
  const metrics = createServiceMetrics();
  // Stopped in reverse order: clients before the servers they talk to.
  const stops: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch (error) {
        logger.warn(
          { error: loggedError(error, config.logErrorMessages) },
          'a resource did not close cleanly',
        );
      }
    }
    stops.length = 0;
  };
  try {
    let base: RedisClientOptions;
    if (config.redis.mode === 'embedded') {
      const embedded: EmbeddedRedis = await startEmbeddedRedis();
      stops.push(embedded.stop);
      logger.warn(
        { url: embedded.url, pid: embedded.pid },
        'started a local redis-server child (development only; set REDIS_URL or REDIS_CLUSTER_NODES for a real server)',
      );
      base = { url: embedded.url };
    } else {
      base = config.redis.options;
    }
    const redis = createRedisClient(redisOptions(base, config), {
      metrics,
      logger: packageLogger(logger, 'redis'),
    });
    stops.push(() => redis.close());
    redis.ready(config.redisCommandTimeoutMs * 5).catch(() => {
      logger.warn('Redis is not reachable yet; /health/ready answers 503 until it is');
    });
    const mongo = await openMongo(config, logger, metrics, stops);
    return { metrics, redis, mongo, close };
  } catch (error) {
    await close();
    throw error;
  }
}
