import { connect } from 'node:net';
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

/** Sends raw bytes and reads until the server closes the connection. */
function rawExchange(address: { port: number }, raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: address.port });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      // The server closes right after its answer; a reset while we still write is fine once the answer is in.
      if (received !== '') resolve(received);
      else reject(error);
    });
    socket.once('close', () => resolve(received));
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer within 5 s')));
    socket.write(raw);
  });
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
        app.get(
          '/test/query',
          {
            schema: {
              querystring: {
                type: 'object',
                additionalProperties: false,
                properties: { n: { type: 'integer' }, on: { type: 'boolean' } },
              },
            },
          },
          async (request) => request.query,
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

  /** The suite's app on a loopback port (errors of the HTTP parser need a real connection, not inject). */
  let address: { port: number } | undefined;
  async function listening(): Promise<{ port: number }> {
    if (address === undefined) {
      await service.app.listen({ host: '127.0.0.1', port: 0 });
      address = service.app.server.address() as { port: number };
    }
    return address;
  }

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

  it.each([
    ['text/plain', 'hello'],
    ['text/plain', '{"name":"ann"}'],
    ['application/x-www-form-urlencoded', 'name=ann'],
    ['application/json-patch+json', '{"name":"ann"}'],
    ['application/json; charset=utf-16', '{"name":"ann"}'],
    ['application/json; charset=latin1', '{"name":"ann"}'],
  ])('a body of type %s is a 415, never parsed', async (contentType, payload) => {
    const response = await service.app.inject({
      method: 'POST',
      url: '/test/echo',
      headers: { 'content-type': contentType },
      payload,
    });
    expect(response.statusCode).toBe(415);
    expectErrorBody(response.json(), 415, 'E_UNSUPPORTED_MEDIA_TYPE');
    expect(response.headers['x-request-id']).toBe(response.json().requestId);
  });

  it.each([
    'application/json',
    'application/json; charset=utf-8',
    'application/json;charset="UTF-8"',
    'Application/JSON',
  ])('a JSON body sent as %s is accepted', async (contentType) => {
    const response = await service.app.inject({
      method: 'POST',
      url: '/test/echo',
      headers: { 'content-type': contentType },
      payload: '{"name":"ann"}',
    });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual({ name: 'ann' });
  });

  it.each([
    ['a number', { name: 12345 }, '/name'],
    ['an array', { name: ['x'] }, '/name'],
    ['a boolean', { name: true }, '/name'],
    ['a numeric string for an integer', { name: 'ann', age: '42' }, '/age'],
    ['null', { name: null }, '/name'],
  ])(
    'a JSON body with %s where the schema wants another type is refused, not coerced',
    async (_label, payload, path) => {
      const response = await service.app.inject({ method: 'POST', url: '/test/echo', payload });
      expect(response.statusCode, response.body).toBe(400);
      expectErrorBody(response.json(), 400, 'E_VALIDATION');
      expect(response.json().details).toContainEqual(expect.objectContaining({ location: 'body', path }));
    },
  );

  it('the querystring is still coerced from its strings', async () => {
    const response = await service.app.inject({ method: 'GET', url: '/test/query?n=5&on=true' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual({ n: 5, on: true });
    const bad = await service.app.inject({ method: 'GET', url: '/test/query?n=five' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().details).toEqual([expect.objectContaining({ location: 'querystring', path: '/n' })]);
  });

  it('a URL that does not decode is a 400 E_BAD_URL JSON error, with request id and no-store, without the URL', async () => {
    const response = await service.app.inject({ method: 'GET', url: '/conversations/%E0%A4%A/messages' });
    expect(response.statusCode).toBe(400);
    expectErrorBody(response.json(), 400, 'E_BAD_URL');
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.headers['x-request-id']).toBe(response.json().requestId);
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.body).not.toMatch(/%E0|conversations/);
  });

  it('a path segment over the router limit is a 414 JSON error', async () => {
    const response = await service.app.inject({ method: 'GET', url: `/conversations/${'a'.repeat(200)}` });
    expect(response.statusCode).toBe(414);
    expectErrorBody(response.json(), 414, 'E_URL_TOO_LONG');
    expect(response.headers['x-request-id']).toBe(response.json().requestId);
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.body).not.toContain('aaaa');
  });

  it.each([
    [
      'oversized headers',
      `GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
      'E_HEADERS_TOO_LARGE',
    ],
    ['malformed HTTP', 'NOT HTTP AT ALL\r\n\r\n', 400, 'E_BAD_REQUEST'],
  ])(
    '%s over a real connection get the JSON error shape with request id and no-store',
    async (_label, raw, status, code) => {
      const address = await listening();
      const answer = await rawExchange(address, raw);
      const [head = '', body = ''] = answer.split('\r\n\r\n');
      expect(head).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
      const headers = Object.fromEntries(
        head
          .split('\r\n')
          .slice(1)
          .map((line) => [
            line.slice(0, line.indexOf(':')).toLowerCase(),
            line.slice(line.indexOf(':') + 1).trim(),
          ]),
      );
      expect(headers['content-type']).toMatch(/^application\/json/);
      expect(headers['cache-control']).toBe('no-store');
      const parsed = JSON.parse(body);
      expectErrorBody(parsed, status, code);
      expect(headers['x-request-id']).toBe(parsed.requestId);
      expect(body).not.toContain('aaaa');
    },
  );

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
