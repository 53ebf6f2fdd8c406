import type { Metrics } from '@austa/metrics';
import type { RedisClient } from '@austa/redis-cluster';
import type { FastifyInstance } from 'fastify';
import type { MongoDependency } from '../mongo.js';
import { ERROR_RESPONSE } from '../schemas.js';

export interface RedisCheck {
  status: 'up' | 'down';
  latencyMs: number;
  topology: 'standalone' | 'cluster';
  clusterState?: string;
  masters: Array<{ address: string; status: 'up' | 'down'; latencyMs?: number }>;
}

function rounded(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Every master PINGed, slot coverage checked (cluster); the problems go to the log, not to the response. */
async function checkRedis(
  redis: RedisClient,
  timeoutMs: number,
): Promise<{ check: RedisCheck; problems: string[] }> {
  const started = performance.now();
  const health = await redis.health({ timeoutMs });
  const check: RedisCheck = {
    status: health.healthy ? 'up' : 'down',
    latencyMs: rounded(performance.now() - started),
    topology: health.topology,
    masters: health.nodes.map((node) => ({
      address: node.address,
      status: node.ok ? 'up' : 'down',
      ...(node.latencyMs !== undefined ? { latencyMs: rounded(node.latencyMs) } : {}),
    })),
  };
  if (health.clusterState !== undefined) check.clusterState = health.clusterState;
  return { check, problems: health.problems };
}

const checkStatus = { type: 'string', enum: ['up', 'down', 'disabled'] } as const;

const readySchema = {
  type: 'object',
  required: ['status', 'checks'],
  properties: {
    status: { type: 'string', enum: ['ready', 'not_ready'] },
    checks: {
      type: 'object',
      required: ['redis', 'mongodb'],
      properties: {
        redis: {
          type: 'object',
          required: ['status', 'latencyMs', 'topology', 'masters'],
          properties: {
            status: checkStatus,
            latencyMs: { type: 'number', description: 'Time for the whole Redis check, in milliseconds.' },
            topology: { type: 'string', enum: ['standalone', 'cluster'] },
            clusterState: { type: 'string' },
            masters: {
              type: 'array',
              items: {
                type: 'object',
                required: ['address', 'status'],
                properties: {
                  address: { type: 'string' },
                  status: checkStatus,
                  latencyMs: { type: 'number', description: 'PING round trip, in milliseconds.' },
                },
              },
            },
          },
        },
        mongodb: {
          type: 'object',
          required: ['status'],
          properties: {
            status: checkStatus,
            latencyMs: { type: 'number', description: '`hello` round trip, in milliseconds.' },
            reason: { type: 'string', description: 'Why MongoDB is disabled.' },
            changeStreams: {
              type: 'array',
              items: {
                type: 'object',
                required: ['name', 'state'],
                properties: {
                  name: { type: 'string' },
                  state: { type: 'string' },
                  lagSeconds: { type: ['number', 'null'] },
                },
              },
            },
          },
        },
      },
    },
  },
} as const;

export interface OpsOptions {
  metrics: Metrics;
  redis: RedisClient;
  mongo: MongoDependency;
  healthTimeoutMs: number;
}

/** Liveness, readiness, Prometheus exposition and the OpenAPI document. Never rate limited. */
export async function opsRoutes(app: FastifyInstance, options: OpsOptions): Promise<void> {
  const { metrics, redis, mongo, healthTimeoutMs } = options;

  app.get(
    '/health/live',
    {
      config: { rateLimit: false },
      schema: {
        tags: ['operations'],
        summary:
          'Liveness: the process serves HTTP. Checks no dependency, so a Redis outage never restarts pods.',
        response: {
          200: {
            type: 'object',
            required: ['status'],
            properties: { status: { type: 'string', enum: ['ok'] } },
          },
        },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/health/ready',
    {
      config: { rateLimit: false },
      schema: {
        tags: ['operations'],
        summary: 'Readiness: Redis (every master) and MongoDB answer, with their latencies.',
        description:
          '200 when Redis is up and MongoDB is up or disabled by configuration; 503 otherwise. MongoDB shows `disabled` when the service runs without it.',
        response: { 200: readySchema, 503: readySchema },
      },
    },
    async (request, reply) => {
      const [redisResult, mongoCheck] = await Promise.all([
        checkRedis(redis, healthTimeoutMs),
        mongo.check(healthTimeoutMs),
      ]);
      const ready = redisResult.check.status === 'up' && mongoCheck.status !== 'down';
      if (!ready) {
        request.log.warn(
          { redisProblems: redisResult.problems, mongodb: mongoCheck.status },
          'not ready: a dependency is down',
        );
      }
      return reply.code(ready ? 200 : 503).send({
        status: ready ? 'ready' : 'not_ready',
        checks: { redis: redisResult.check, mongodb: mongoCheck },
      });
    },
  );

  app.get(
    '/metrics',
    {
      config: { rateLimit: false },
      schema: {
        tags: ['operations'],
        summary:
          'Prometheus exposition of every package’s metrics and the HTTP metrics, labelled service="care-api".',
        produces: ['text/plain'],
        response: { 200: { type: 'string' }, 500: ERROR_RESPONSE },
      },
    },
    async (_request, reply) => {
      const text = await metrics.text();
      return reply.type(metrics.contentType).send(text);
    },
  );

  app.get(
    '/docs/json',
    {
      config: { rateLimit: false },
      schema: { hide: true },
    },
    async () => app.swagger(),
  );
}
