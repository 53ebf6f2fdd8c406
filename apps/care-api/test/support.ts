import { createServer } from 'node:net';
import { type AustaMongoClient, createMongoClient } from '@austa/mongo-client';
import { createRedisClient, type RedisClient, type RedisClientOptions } from '@austa/redis-cluster';
import { mongoTarget, type RedisTopology, redisTarget } from '@austa/test-env/vitest';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { type AppOptions, buildApp } from '../src/app.js';
import { type Env, loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { disabledMongo, type MongoDependency, mongoDependency } from '../src/mongo.js';
import { createServiceMetrics, mongoOptions, redisOptions } from '../src/resources.js';

export const TOPOLOGIES = ['standalone', 'cluster'] as const satisfies readonly RedisTopology[];

/** Where test-env's server of this topology is, as @austa/redis-cluster options. */
export function redisBase(topology: RedisTopology): RedisClientOptions {
  const target = redisTarget(topology);
  if (target.topology === 'standalone') return { url: target.url };
  return { cluster: { nodes: target.nodes.map((node) => `${node.host}:${node.port}`) } };
}

/** The env of a test service: Redis from test-env is passed directly, so only the service's own knobs go here. */
export function testEnv(extra: Env = {}): Env {
  // Every request of a suite comes from 127.0.0.1: the per-IP limit is raised so that only the suites about it hit it.
  return {
    NODE_ENV: 'test',
    MONGODB_EMBEDDED: 'false',
    LOG_LEVEL: 'silent',
    RATE_LIMIT_IP_PER_MINUTE: '1000000',
    ...extra,
  };
}

/** A loopback port nothing listens on (bound, then released). */
export function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface TestService {
  app: FastifyInstance;
  redis: RedisClient;
  mongo: MongoDependency;
  metrics: ReturnType<typeof createServiceMetrics>;
  close(): Promise<void>;
}

/**
 * The app as `main` builds it, on test-env's Redis of one topology (or the given Redis options), with MongoDB when
 * test-env has one. `beforeReady` may add test-only routes before the app is sealed.
 */
export async function startTestService(
  topology: RedisTopology,
  options: {
    env?: Env;
    redis?: RedisClientOptions;
    /** Where the app logs (default: nowhere). */
    logger?: Logger;
    beforeReady?: (app: FastifyInstance, service: Omit<TestService, 'app' | 'close'>) => void;
    /** Whether to use test-env's MongoDB when it has one (default true). */
    mongo?: boolean;
    /** Passed to `buildApp`: the pluggable user lookup and assistant responder. */
    app?: Pick<AppOptions, 'users' | 'responder'>;
  } = {},
): Promise<TestService> {
  const config = loadConfig(testEnv(options.env));
  const metrics = createServiceMetrics();
  const redis = createRedisClient(redisOptions(options.redis ?? redisBase(topology), config), {
    metrics,
    logger: { warn: () => {}, error: () => {} },
  });
  const target = mongoTarget();
  let mongoClient: AustaMongoClient | undefined;
  let mongo: MongoDependency;
  if (target.available && options.mongo !== false) {
    mongoClient = createMongoClient({
      ...mongoOptions({ url: target.url }, config),
      dbName: `care_api_test_${process.pid}`,
      metrics,
      logger: { warn: () => {}, error: () => {} },
    });
    mongo = mongoDependency(mongoClient);
  } else {
    mongo = disabledMongo('MongoDB is not reachable in this test environment');
  }
  let app: FastifyInstance;
  try {
    app = await buildApp({
      config,
      metrics,
      redis,
      mongo,
      ...(options.logger ? { logger: options.logger } : {}),
      ...options.app,
      // Short server polls: a test waits milliseconds, not a second, for the change stream to see a write.
      changeStreamMaxAwaitTimeMs: 100,
    });
  } catch (error) {
    // A refused build (a ConfigError) must not leave the clients open.
    await redis.close();
    await mongoClient?.close();
    throw error;
  }
  options.beforeReady?.(app, { redis, mongo, metrics });
  await app.ready();
  return {
    app,
    redis,
    mongo,
    metrics,
    async close() {
      await app.close();
      await redis.close();
      await mongoClient?.close();
    },
  };
}

/** `name{labels} value` lines of an exposition, for assertions that do not depend on label order. */
export function samples(
  exposition: string,
  name: string,
): Array<{ labels: Record<string, string>; value: number }> {
  const result: Array<{ labels: Record<string, string>; value: number }> = [];
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const match = /^[a-z_:][a-z0-9_:]*(?:\{(.*)\})? (\S+)$/i.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[1] ?? '').matchAll(/([a-z_][a-z0-9_]*)="((?:[^"\\]|\\.)*)"/gi)) {
      labels[pair[1] as string] = pair[2] as string;
    }
    result.push({ labels, value: Number(match[2]) });
  }
  return result;
}

/** A pino logger at `info` whose lines are kept, parsed, for assertions on what the service logs. */
export function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger('info', {
    write(line: string) {
      lines.push(JSON.parse(line));
    },
  });
  return { logger, lines };
}
