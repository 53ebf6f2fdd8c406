import type { AddressInfo } from 'node:net';
import {
  createTestClient,
  deleteByPrefix,
  keysWithoutTtl,
  redisTargets,
  uniquePrefix,
} from '@austa/test-env/vitest';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rateLimit } from '../src/express.js';
import { fastifyRateLimit, rateLimitHook } from '../src/fastify.js';
import { createRateLimiter, type RateLimiter } from '../src/index.js';
import type { Topology } from './support.js';

interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
}

async function get(base: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  const response = await fetch(`${base}${path}`, { headers });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text.startsWith('{') ? JSON.parse(text) : text,
  };
}

describe.each<Topology>(['standalone', 'cluster'])('HTTP middleware on %s', (topology) => {
  let client: Redis | Cluster;
  let prefix: string;
  let limiter: RateLimiter;

  beforeAll(async () => {
    client = createTestClient(redisTargets(), topology);
    prefix = uniquePrefix(`rl-http-${topology}`);
    limiter = createRateLimiter({ redis: client, prefix, timeoutMs: 5000 });
  });

  afterAll(async () => {
    await limiter.close();
    try {
      expect(await keysWithoutTtl(client, `${prefix}:`)).toEqual([]);
    } finally {
      await deleteByPrefix(client, `${prefix}:`);
      await client.quit();
    }
  });

  describe('Express', () => {
    let base: string;
    let server: ReturnType<ReturnType<typeof express>['listen']>;

    beforeAll(async () => {
      const app = express();
      app.use((request, _response, next) => {
        const user = request.header('x-user');
        if (user) (request as unknown as { user: { id: string } }).user = { id: user };
        next();
      });
      app.get(
        '/ip',
        rateLimit({
          limiter,
          scope: 'ip',
          limits: { limit: 2, windowSeconds: 60 },
          strategy: 'fixed-window',
        }),
        (_request, response) => {
          response.json({ ok: true, remaining: response.locals.rateLimit?.remaining });
        },
      );
      app.get(
        '/user',
        rateLimit({
          limiter,
          scope: 'user',
          key: 'user',
          headers: 'both',
          limits: [
            { limit: 2, windowSeconds: 1 },
            { limit: 100, windowSeconds: 3600 },
          ],
          policyNames: ['burst', 'hourly'],
          strategy: 'sliding-window',
        }),
        (_request, response) => {
          response.json({ ok: true });
        },
      );
      app.get(
        '/skip',
        rateLimit({
          limiter,
          scope: 'skip',
          limits: { limit: 1, windowSeconds: 60 },
          strategy: 'token-bucket',
          skip: (request) => request.headers['x-internal'] === 'yes',
          headers: false,
        }),
        (_request, response) => {
          response.json({ ok: true });
        },
      );
      server = app.listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    it('sets the IETF headers and answers 429 with a JSON body and Retry-After once the limit is used', async () => {
      const first = await get(base, '/ip');
      expect(first.status).toBe(200);
      expect(first.body).toEqual({ ok: true, remaining: 1 });
      expect(first.headers.get('ratelimit-policy')).toBe('"default";q=2;w=60');
      expect(first.headers.get('ratelimit')).toMatch(/^"default";r=1;t=(59|60)$/);
      expect(first.headers.get('x-ratelimit-limit')).toBeNull();
      expect((await get(base, '/ip')).status).toBe(200);
      const limited = await get(base, '/ip');
      expect(limited.status).toBe(429);
      expect(limited.headers.get('content-type')).toMatch(/^application\/json/);
      expect(limited.headers.get('retry-after')).toMatch(/^(59|60)$/);
      expect(limited.body).toEqual({
        error: 'Too Many Requests',
        message: expect.stringMatching(/^Too many requests, retry in (59|60) seconds\.$/),
        retryAfterSeconds: expect.any(Number),
      });
    });

    it('limits per user, with several policies and legacy headers, and falls back to the IP for anonymous calls', async () => {
      const alice = { 'x-user': 'alice' };
      const ok = await get(base, '/user', alice);
      expect(ok.status).toBe(200);
      expect(ok.headers.get('ratelimit-policy')).toBe('"burst";q=2;w=1, "hourly";q=100;w=3600');
      expect(ok.headers.get('ratelimit')).toMatch(/^"burst";r=1;t=\d+, "hourly";r=99;t=\d+$/);
      expect(ok.headers.get('x-ratelimit-limit')).toBe('2');
      expect(ok.headers.get('x-ratelimit-remaining')).toBe('1');
      await get(base, '/user', alice);
      expect((await get(base, '/user', alice)).status).toBe(429);
      // Another user, and an anonymous caller, have their own counters.
      expect((await get(base, '/user', { 'x-user': 'bob' })).status).toBe(200);
      expect((await get(base, '/user')).status).toBe(200);
    });

    it('lets skipped requests through uncounted and sends no rate limit headers when they are off', async () => {
      const internal = { 'x-internal': 'yes' };
      for (let i = 0; i < 3; i++) expect((await get(base, '/skip', internal)).status).toBe(200);
      const first = await get(base, '/skip');
      expect(first.status).toBe(200);
      expect(first.headers.get('ratelimit')).toBeNull();
      const limited = await get(base, '/skip');
      expect(limited.status).toBe(429);
      expect(limited.headers.get('retry-after')).not.toBeNull();
    });
  });

  describe('Fastify', () => {
    let app: FastifyInstance;
    let base: string;

    beforeAll(async () => {
      app = Fastify();
      await app.register(async (scoped) => {
        await scoped.register(fastifyRateLimit, {
          limiter,
          scope: 'fastify',
          limits: { limit: 2, windowSeconds: 60, burst: 2 },
          strategy: 'leaky-bucket',
          headers: 'legacy',
        });
        scoped.get('/limited', async () => ({ ok: true }));
        scoped.get('/free', { config: { rateLimit: false } }, async () => ({ ok: true }));
      });
      app.get('/unscoped', async () => ({ ok: true }));
      app.get(
        '/login',
        {
          onRequest: rateLimitHook({
            limiter,
            scope: 'login',
            key: (request) =>
              (request as unknown as { headers: Record<string, string> }).headers['x-account'],
            limits: { limit: 1, windowSeconds: 60 },
            strategy: 'fixed-window',
            message: 'Too many login attempts.',
          }),
        },
        async () => ({ ok: true }),
      );
      await app.listen({ port: 0, host: '127.0.0.1' });
      base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      await app.close();
    });

    it('limits every route of the instance it is registered on, except routes that opt out', async () => {
      const first = await get(base, '/limited');
      expect(first.status).toBe(200);
      expect(first.headers.get('x-ratelimit-limit')).toBe('2');
      expect(first.headers.get('x-ratelimit-remaining')).toBe('1');
      expect(first.headers.get('ratelimit')).toBeNull();
      await get(base, '/limited');
      const limited = await get(base, '/limited');
      expect(limited.status).toBe(429);
      expect(limited.body).toMatchObject({ error: 'Too Many Requests', retryAfterSeconds: 30 });
      expect(limited.headers.get('retry-after')).toBe('30');
      for (let i = 0; i < 3; i++) expect((await get(base, '/free')).status).toBe(200);
      // Routes outside the registering context are not limited.
      for (let i = 0; i < 3; i++) expect((await get(base, '/unscoped')).status).toBe(200);
    });

    it('limits a single route by a key taken from the request, and leaves requests without a key alone', async () => {
      expect((await get(base, '/login', { 'x-account': 'a@example.com' })).status).toBe(200);
      const limited = await get(base, '/login', { 'x-account': 'a@example.com' });
      expect(limited.status).toBe(429);
      expect(limited.body).toMatchObject({ message: 'Too many login attempts.' });
      expect((await get(base, '/login', { 'x-account': 'b@example.com' })).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await get(base, '/login')).status).toBe(200);
    });

    it('refuses bad options when the plugin is registered', async () => {
      const broken = Fastify();
      await expect(
        broken.register(fastifyRateLimit, {
          limiter,
          limits: { limit: 0, windowSeconds: 60 },
          strategy: 'fixed-window',
        }),
      ).rejects.toMatchObject({ code: 'E_INVALID_CONFIG' });
      await broken.close().catch(() => {});
      expect(() =>
        rateLimit({ limiter, limits: { limit: 1, windowSeconds: 1 }, strategy: 'nope' as 'fixed-window' }),
      ).toThrow(expect.objectContaining({ code: 'E_UNKNOWN_STRATEGY' }));
    });
  });
});
