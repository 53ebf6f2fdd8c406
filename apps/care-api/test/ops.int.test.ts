import { mongoTarget } from '@austa/test-env/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort, samples, startTestService, type TestService, TOPOLOGIES } from './support.js';

describe.each(TOPOLOGIES)('operations routes on %s Redis', (topology) => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService(topology);
  });
  afterAll(async () => {
    await service.close();
  });

  it('GET /health/live answers ok without touching a dependency, with a request id and no-store', async () => {
    const response = await service.app.inject({ method: 'GET', url: '/health/live' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok' });
    expect(response.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.headers['cache-control']).toBe('no-store');
  });

  it('GET /health/ready checks every Redis master, with status and latency, and reports MongoDB', async () => {
    const response = await service.app.inject({ method: 'GET', url: '/health/ready' });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body.status).toBe('ready');
    expect(body.checks.redis).toMatchObject({ status: 'up', topology });
    expect(body.checks.redis.latencyMs).toBeGreaterThanOrEqual(0);
    const expectedMasters = topology === 'cluster' ? 3 : 1;
    expect(body.checks.redis.masters).toHaveLength(expectedMasters);
    for (const master of body.checks.redis.masters) {
      expect(master.status).toBe('up');
      expect(master.address).toMatch(/:\d+$/);
      expect(master.latencyMs).toBeGreaterThanOrEqual(0);
    }
    if (topology === 'cluster') expect(body.checks.redis.clusterState).toBe('ok');
    if (mongoTarget().available) {
      expect(body.checks.mongodb.status).toBe('up');
      expect(body.checks.mongodb.latencyMs).toBeGreaterThanOrEqual(0);
    } else {
      expect(body.checks.mongodb).toEqual({
        status: 'disabled',
        reason: 'MongoDB is not reachable in this test environment',
      });
    }
  });

  it('GET /metrics serves one registry labelled service="care-api" with HTTP and Redis metrics', async () => {
    await service.app.inject({ method: 'GET', url: '/health/live' });
    await service.app.inject({ method: 'GET', url: '/no/such/route' });
    await service.app.inject({ method: 'GET', url: '/health/ready' });
    const response = await service.app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = response.body;

    const live = samples(text, 'http_server_request_duration_seconds_count').find(
      (sample) => sample.labels.http_route === '/health/live',
    );
    expect(live?.labels).toEqual({
      service: 'care-api',
      http_request_method: 'GET',
      http_route: '/health/live',
      http_response_status_code: '200',
    });
    expect(live?.value).toBeGreaterThanOrEqual(2);
    // An unmatched URL is counted under an empty route, never under the URL itself.
    const unmatched = samples(text, 'http_server_request_duration_seconds_count').filter(
      (sample) => sample.labels.http_response_status_code === '404',
    );
    expect(unmatched.map((sample) => sample.labels.http_route)).toEqual(['']);
    expect(text).not.toContain('/no/such/route');

    const pings = samples(text, 'db_client_operation_duration_seconds_count').filter(
      (sample) => sample.labels.db_system_name === 'redis' && sample.labels.db_operation_name === 'ping',
    );
    expect(pings.length).toBeGreaterThan(0);
    expect(pings.every((sample) => sample.labels.service === 'care-api')).toBe(true);
    expect(samples(text, 'process_resident_memory_bytes')[0]?.labels.service).toBe('care-api');
    // Only the scrape itself is in flight while it is served.
    expect(
      samples(text, 'http_server_active_requests').find((s) => s.labels.http_request_method === 'GET')?.value,
    ).toBe(1);
  });

  it('GET /docs/json is an OpenAPI 3.1 document generated from the route schemas', async () => {
    const response = await service.app.inject({ method: 'GET', url: '/docs/json' });
    expect(response.statusCode).toBe(200);
    const document = response.json();
    expect(document.openapi).toBe('3.1.0');
    expect(document.info.title).toBe('care-api');
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/health/live', '/health/ready', '/metrics']),
    );
    expect(document.paths['/docs/json']).toBeUndefined();
  });

  it('documents every route in OpenAPI with a response schema, and validates every route input', async () => {
    const document = (await service.app.inject({ method: 'GET', url: '/docs/json' })).json();
    const routes = service.app.routeCatalog.filter((route) => route.url !== '/docs/json');
    expect(routes.length).toBeGreaterThanOrEqual(16);
    for (const route of routes) {
      const openApiPath = route.url.replace(/:([A-Za-z]+)/g, '{$1}');
      const operation = document.paths[openApiPath]?.[route.method.toLowerCase()];
      expect(operation, `${route.method} ${route.url} is in the OpenAPI document`).toBeDefined();
      expect(route.schema?.response, `${route.method} ${route.url} has response schemas`).toBeDefined();
      if (route.url.includes(':'))
        expect(route.schema?.params, `${route.method} ${route.url} validates params`).toBeDefined();
      // Logout takes no body (a body schema would refuse the bodiless POST that curl and browsers send).
      if (['POST', 'PUT', 'PATCH'].includes(route.method) && route.url !== '/auth/logout') {
        expect(route.schema?.body, `${route.method} ${route.url} validates its body`).toBeDefined();
      }
    }
  });
});

describe.each(TOPOLOGIES)('readiness with %s Redis down', (topology) => {
  let service: TestService;
  beforeAll(async () => {
    const ports = await Promise.all([closedPort(), closedPort(), closedPort()]);
    service = await startTestService(topology, {
      env: { HEALTH_TIMEOUT_MS: '300', REDIS_COMMAND_TIMEOUT_MS: '300' },
      redis:
        topology === 'standalone'
          ? { url: `redis://127.0.0.1:${ports[0]}` }
          : { cluster: { nodes: ports.map((port) => `127.0.0.1:${port}`) } },
    });
  });
  afterAll(async () => {
    await service.close();
  });

  it('GET /health/ready answers 503 JSON naming Redis as down, within the configured timeouts', async () => {
    const started = Date.now();
    const response = await service.app.inject({ method: 'GET', url: '/health/ready' });
    // health() runs at most refresh, PING and CLUSTER INFO, each bounded by HEALTH_TIMEOUT_MS; generous headroom.
    expect(Date.now() - started).toBeLessThan(3 * 300 + 5000);
    expect(response.statusCode).toBe(503);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const body = response.json();
    expect(body.status).toBe('not_ready');
    expect(body.checks.redis.status).toBe('down');
    expect(body.checks.redis.topology).toBe(topology);
    expect(response.body).not.toMatch(/ECONNREFUSED|timed out|Error/);
  });

  it('GET /health/live still answers 200: a Redis outage must not get pods restarted', async () => {
    const response = await service.app.inject({ method: 'GET', url: '/health/live' });
    expect(response.statusCode).toBe(200);
  });
});
