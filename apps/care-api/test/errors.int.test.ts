import type { RedisClient } from '@austa/redis-cluster';
import { createRedisClient } from '@austa/redis-cluster';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DependencyUnavailableError } from '../src/http-errors.js';
import { capturingLogger, closedPort, startTestService, type TestService, TOPOLOGIES } from './support.js';

const SECRET_DETAIL = 'internal detail: patient 4711 row locked at /srv/app/db.ts:42';

function expectErrorBody(body: Record<string, unknown>, statusCode: number, code: string) {
  expect(body).toMatchObject({ statusCode, code });
  expect(typeof body.message).toBe('string');
  expect(typeof body.error).toBe('string');
  expect(body.requestId).toMatch(/^[0-9a-f-]{36}$/);
}

describe.each(TOPOLOGIES)('error responses on %s Redis', (topology) => {
  let service: TestService;
  let deadRedis: RedisClient;
  const log = capturingLogger();

  beforeAll(async () => {
    deadRedis = createRedisClient(
      { url: `redis://127.0.0.1:${await closedPort()}`, commandTimeoutMs: 200, maxRetriesPerRequest: 0 },
      { logger: { warn: () => {}, error: () => {} } },
    );
    service = await startTestService(topology, {
      env: { BODY_LIMIT_BYTES: '1024' },
      logger: log.logger,
      // Test-only routes: the error handling is the app's, whatever route raises the error.
      beforeReady(app) {
        app.post(
          '/test/echo',
          {
            schema: {
              body: {
                type: 'object',
                required: ['name'],
                additionalProperties: false,
                properties: {
                  name: { type: 'string', minLength: 1, maxLength: 20 },
                  age: { type: 'integer' },
                },
              },
            },
          },
          async (request) => request.body,
        );
        app.get('/test/boom', async () => {
          throw new Error(SECRET_DETAIL);
        });
        app.get('/test/redis-down', async () => deadRedis.client.get('anything'));
        app.get('/test/mongo-down', async () => {
          throw new DependencyUnavailableError('mongodb');
        });
      },
    });
  });
  afterAll(async () => {
    await service.close();
    await deadRedis.close();
  });

  it('an unknown route is a 404 JSON error', async () => {
    const response = await service.app.inject({ method: 'GET', url: '/nothing/here' });
    expect(response.statusCode).toBe(404);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expectErrorBody(response.json(), 404, 'E_NOT_FOUND');
  });

  it('invalid JSON is a 400 saying so, without the parser’s message', async () => {
    const response = await service.app.inject({
      method: 'POST',
      url: '/test/echo',
      headers: { 'content-type': 'application/json' },
      payload: '{"name": "ann",',
    });
    expect(response.statusCode).toBe(400);
    expectErrorBody(response.json(), 400, 'E_INVALID_JSON');
    expect(response.body).not.toMatch(/position|Unexpected|JSON\.parse/);
  });

  it('an empty JSON body is a 400', async () => {
    const response = await service.app.inject({
      method: 'POST',
      url: '/test/echo',
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expect(response.statusCode).toBe(400);
    expectErrorBody(response.json(), 400, 'E_INVALID_JSON');
  });

  it('a body over BODY_LIMIT_BYTES is a 413 naming the limit', async () => {
    const response = await service.app.inject({
      method: 'POST',
      url: '/test/echo',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ name: 'x'.repeat(2000) }),
    });
    expect(response.statusCode).toBe(413);
    expectErrorBody(response.json(), 413, 'E_BODY_TOO_LARGE');
    expect(response.json().message).toContain('1024 bytes');
  });

  it('a body that is not JSON is a 415', async () => {
    const response = await service.app.inject({
      method: 'POST',
      url: '/test/echo',
      headers: { 'content-type': 'text/xml' },
      payload: '<name>ann</name>',
    });
    expect(response.statusCode).toBe(415);
    expectErrorBody(response.json(), 415, 'E_UNSUPPORTED_MEDIA_TYPE');
  });

  it('schema violations are a 400 listing each field, unknown fields refused rather than dropped', async () => {
    const response = await service.app.inject({
      method: 'POST',
      url: '/test/echo',
      payload: { age: 'old', extra: true },
    });
    expect(response.statusCode).toBe(400);
    const body = response.json();
    expectErrorBody(body, 400, 'E_VALIDATION');
    const paths = body.details.map((detail: { path: string }) => detail.path).sort();
    expect(paths).toEqual(['/age', '/extra', '/name']);
    expect(body.details.every((detail: { location: string }) => detail.location === 'body')).toBe(true);
    expect(response.body).not.toContain('old');
  });

  it('a valid body passes', async () => {
    const response = await service.app.inject({
      method: 'POST',
      url: '/test/echo',
      payload: { name: 'ann' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ name: 'ann' });
  });

  it('an unexpected error is a 500 with no stack trace and no internal message', async () => {
    const response = await service.app.inject({ method: 'GET', url: '/test/boom' });
    expect(response.statusCode).toBe(500);
    expectErrorBody(response.json(), 500, 'E_INTERNAL');
    expect(response.body).not.toContain('patient 4711');
    expect(response.body).not.toContain('db.ts');
    expect(response.body).not.toMatch(/\bat [^\n]+:\d+:\d+/);
  });

  it('logs an unexpected error with its type and stack but not its message, which may quote patient data', async () => {
    const response = await service.app.inject({ method: 'GET', url: '/test/boom' });
    const requestId = response.json().requestId;
    const entry = log.lines.find((line) => line.requestId === requestId && line.msg === 'request failed');
    expect(entry?.level).toBe(50);
    const error = entry?.error as { type: string; stack: string; message?: string };
    expect(error.type).toBe('Error');
    expect(error.stack).toMatch(/at .*errors\.int\.test\.ts/);
    expect(error.message).toBeUndefined();
    expect(JSON.stringify(log.lines)).not.toContain('patient 4711');
  });

  it('Redis being unreachable is a 503 JSON error with Retry-After, within the command timeout', async () => {
    const started = Date.now();
    const response = await service.app.inject({ method: 'GET', url: '/test/redis-down' });
    expect(Date.now() - started).toBeLessThan(200 + 5000);
    expect(response.statusCode).toBe(503);
    expectErrorBody(response.json(), 503, 'E_REDIS_UNAVAILABLE');
    expect(response.headers['retry-after']).toBe('5');
    expect(response.body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|Connection is closed|timed out/);
  });

  it('MongoDB being unavailable is a 503 JSON error', async () => {
    const response = await service.app.inject({ method: 'GET', url: '/test/mongo-down' });
    expect(response.statusCode).toBe(503);
    expectErrorBody(response.json(), 503, 'E_MONGODB_UNAVAILABLE');
  });
});
