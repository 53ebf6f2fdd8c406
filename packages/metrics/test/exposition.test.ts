import { once } from 'node:events';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AggregatorRegistry,
  register as globalRegister,
  type OpenMetricsContentType,
  Registry,
} from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createClusterMetricsHandler,
  createMetrics,
  createMetricsHandler,
  DB_CLIENT_OPERATION_DURATION,
  type MetricsRequestHandler,
} from '../src/index.js';

interface Reply {
  status: number;
  headers: Record<string, unknown>;
  body: string;
}

// Drives a handler with the two request fields and three response members it uses.
function call(handler: MetricsRequestHandler, method: string): Promise<Reply> {
  return new Promise((resolve) => {
    const reply: Reply = { status: 0, headers: {}, body: '' };
    const response = {
      headersSent: false,
      writeHead(status: number, headers: Record<string, unknown>) {
        reply.status = status;
        reply.headers = headers;
        this.headersSent = true;
        return this;
      },
      end(body?: string) {
        reply.body = body ?? '';
        resolve(reply);
        return this;
      },
    };
    handler({ method } as IncomingMessage, response as unknown as ServerResponse);
  });
}

describe('exposition', () => {
  afterAll(() => {
    // Every test above ran through createMetrics(); none may have touched the global registry.
    expect(globalRegister.getMetricsAsArray()).toHaveLength(0);
  });

  it('default labels of the registry appear on every sample, in text and JSON', async () => {
    const metrics = createMetrics({ defaultLabels: { service: 'care-api', region: 'br' } });
    metrics.counter({ name: 'austa_session_evictions_total', help: 'h' }).bind().inc();
    metrics
      .operationDuration()
      .observe({ db_system_name: 'redis', db_operation_name: 'get', error_type: '' }, 0.001);
    const text = await metrics.text();
    expect(text).toContain('austa_session_evictions_total{service="care-api",region="br"} 1');
    expect(text).toMatch(
      /db_client_operation_duration_seconds_count\{service="care-api",region="br",db_system_name="redis"/,
    );
    const json = await metrics.registry.getMetricsAsJSON();
    const evictions = json.find((metric) => metric.name === 'austa_session_evictions_total');
    expect(evictions?.values[0]?.labels).toEqual({ service: 'care-api', region: 'br' });
  });

  it('a series label wins over a default label of the same name', async () => {
    const metrics = createMetrics({ defaultLabels: { result: 'default' } });
    metrics.counter({ name: 'austa_mu_ops_total', help: 'h', labelNames: ['result'] }).inc({ result: 'ok' });
    expect(await metrics.text()).toContain('austa_mu_ops_total{result="ok"} 1');
  });

  it('prefix applies to package metrics but not to db_client_operation_duration_seconds', async () => {
    const metrics = createMetrics({ prefix: 'billing' });
    expect(metrics.prefix).toBe('billing_');
    const counter = metrics.counter({ name: metrics.name('cache', 'requests_total'), help: 'h' });
    expect(counter.name).toBe('billing_austa_cache_requests_total');
    expect(metrics.operationDuration().name).toBe(DB_CLIENT_OPERATION_DURATION);
    const text = await metrics.text();
    expect(text).toContain('# TYPE billing_austa_cache_requests_total counter');
    expect(text).toContain(`# TYPE ${DB_CLIENT_OPERATION_DURATION} histogram`);
    expect(text).not.toContain(`billing_${DB_CLIENT_OPERATION_DURATION}`);
    expect(text).toContain('# TYPE austa_metrics_cardinality_overflow_total counter');
  });

  it('uses a new registry by default and the one passed in otherwise', async () => {
    const one = createMetrics();
    const two = createMetrics();
    expect(one.registry).not.toBe(two.registry);
    expect(one.registry).not.toBe(globalRegister);
    const registry = new Registry();
    const mine = createMetrics({ registry });
    expect(mine.registry).toBe(registry);
    mine.counter({ name: 'austa_n_ops_total', help: 'h' });
    expect(registry.getSingleMetric('austa_n_ops_total')).toBeDefined();
  });

  it('collectDefaultMetrics registers process metrics once, on our registry only', async () => {
    const registry = new Registry();
    createMetrics({ registry, collectDefaultMetrics: true });
    createMetrics({ registry, collectDefaultMetrics: true });
    expect(registry.getSingleMetric('process_cpu_user_seconds_total')).toBeDefined();
    expect(await registry.metrics()).toContain('nodejs_heap_size_total_bytes');
  });

  it('contentType and text() come from the registry', async () => {
    const metrics = createMetrics();
    expect(metrics.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await metrics.text()).toBe(await metrics.registry.metrics());
  });

  it('serves OpenMetrics when the registry does', async () => {
    const registry = new Registry<OpenMetricsContentType>();
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    const metrics = createMetrics({ registry });
    metrics.counter({ name: 'austa_o_ops_total', help: 'h' }).bind().inc(3);
    metrics
      .histogram({ name: 'austa_o_run_seconds', help: 'h', buckets: [1] })
      .bind()
      .observe(0.5);
    const text = await metrics.text();
    expect(metrics.contentType).toMatch(/^application\/openmetrics-text/);
    expect(text).toContain('# TYPE austa_o_ops counter\nausta_o_ops_total 3');
    expect(text).toContain('austa_o_run_seconds_bucket{le="1"} 1');
    expect(text.endsWith('# EOF\n')).toBe(true);
    // The registry renamed the counter in place; get-or-create still finds it by its full name.
    expect(metrics.counter({ name: 'austa_o_ops_total', help: 'h' }).name).toBe('austa_o_ops');
  });
});

describe('handler', () => {
  it('answers GET with 200, the registry content type and the text', async () => {
    const metrics = createMetrics();
    metrics.counter({ name: 'austa_p_ops_total', help: 'h' }).bind().inc();
    const reply = await call(metrics.handler, 'GET');
    expect(reply.status).toBe(200);
    expect(reply.headers['Content-Type']).toBe(metrics.contentType);
    expect(reply.body).toBe(await metrics.text());
    expect(reply.headers['Content-Length']).toBe(Buffer.byteLength(reply.body));
  });

  it('answers HEAD with the headers a GET would get and no body', async () => {
    const metrics = createMetrics();
    metrics.counter({ name: 'austa_head_total', help: 'h' }).bind().inc();
    const reply = await call(metrics.handler, 'HEAD');
    const get = await call(metrics.handler, 'GET');
    expect(reply.status).toBe(200);
    expect(reply.body).toBe('');
    expect(reply.headers['Content-Type']).toBe(metrics.contentType);
    expect(reply.headers['Cache-Control']).toBe('no-store');
    expect(reply.headers['Content-Length']).toBe(Buffer.byteLength(get.body));
    expect(reply.headers['Content-Length']).toBeGreaterThan(0);
  });

  it('answers POST with 405 and an Allow header', async () => {
    const reply = await call(createMetrics().handler, 'POST');
    expect(reply.status).toBe(405);
    expect(reply.headers).toEqual({ Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' });
    expect(reply.body).toBe('Method Not Allowed\n');
  });

  it('answers 500 with a short message when collection fails, and reports the error', async () => {
    const failure = new Error('secret detail');
    const seen: unknown[] = [];
    const handler = createMetricsHandler(
      {
        metrics: () => Promise.reject(failure),
        contentType: 'text/plain',
      },
      { onError: (error) => seen.push(error) },
    );
    const reply = await call(handler, 'GET');
    expect(reply.status).toBe(500);
    expect(reply.headers).toEqual({
      'Content-Type': 'text/plain; charset=utf-8',
      'Cache-Control': 'no-store',
    });
    expect(reply.body).toBe('Failed to collect metrics\n');
    expect(seen).toEqual([failure]);
  });

  it('on a failure after a framework already sent the headers, ends the response without writing them again', async () => {
    const handler = createMetricsHandler({ metrics: () => Promise.reject(new Error('x')), contentType: 'x' });
    const written: number[] = [];
    const body = await new Promise<string | undefined>((resolve) => {
      const response = {
        headersSent: true,
        // Node throws ERR_HTTP_HEADERS_SENT here; record the call instead.
        writeHead: (status: number) => written.push(status),
        end: resolve,
      };
      handler({ method: 'GET' } as IncomingMessage, response as unknown as ServerResponse);
    });
    expect(written).toEqual([]);
    expect(body).toBe('Failed to collect metrics\n');
  });

  it('still answers 500 when onError throws or collect throws synchronously', async () => {
    const handler = createMetricsHandler(
      {
        metrics: () => {
          throw new Error('sync');
        },
        contentType: 'text/plain',
      },
      {
        onError: () => {
          throw new Error('logger down');
        },
      },
    );
    expect((await call(handler, 'GET')).status).toBe(500);
  });

  it('works as a real node:http server handler', async () => {
    const metrics = createMetrics();
    metrics.counter({ name: 'austa_q_ops_total', help: 'h' }).bind().inc();
    const server = createServer(metrics.handler);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const { status, type, body } = await new Promise<{ status?: number; type?: string; body: string }>(
        (resolve, reject) => {
          request({ host: '127.0.0.1', port, path: '/metrics' }, (response) => {
            let body = '';
            response.setEncoding('utf8');
            response.on('data', (chunk: string) => {
              body += chunk;
            });
            response.on('end', () =>
              resolve({ status: response.statusCode, type: response.headers['content-type'], body }),
            );
          })
            .on('error', reject)
            .end();
        },
      );
      expect(status).toBe(200);
      expect(type).toBe(metrics.contentType);
      expect(body).toContain('austa_q_ops_total 1');
    } finally {
      server.close();
    }
  });

  it('createClusterMetricsHandler serves clusterMetrics() with the aggregator content type', async () => {
    const handler = createClusterMetricsHandler({
      clusterMetrics: async () => 'aggregated\n',
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
    });
    const reply = await call(handler, 'GET');
    expect(reply.status).toBe(200);
    expect(reply.headers['Content-Type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(reply.body).toBe('aggregated\n');
  });
});

describe('cluster aggregation', () => {
  it('AggregatorRegistry.aggregate sums counters, histograms and gauges across workers', async () => {
    const workers = [createMetrics(), createMetrics(), createMetrics()];
    workers.forEach((metrics, index) => {
      metrics
        .counter({ name: 'austa_r_ops_total', help: 'h', labelNames: ['result'] })
        .inc({ result: 'ok' }, index + 1);
      const duration = metrics.operationDuration();
      duration.observe({ db_system_name: 'redis', db_operation_name: 'get', error_type: '' }, 0.0002);
      duration.observe({ db_system_name: 'redis', db_operation_name: 'get', error_type: '' }, 0.02);
      metrics.gauge({ name: 'austa_r_connections', help: 'h' }).bind().set(2);
      metrics.gauge({ name: 'austa_r_lag_seconds', help: 'h', aggregator: 'max' }).bind().set(index);
    });
    const snapshots = await Promise.all(workers.map((metrics) => metrics.registry.getMetricsAsJSON()));
    const text = await AggregatorRegistry.aggregate(snapshots).metrics();

    expect(text).toContain('austa_r_ops_total{result="ok"} 6');
    expect(text).toContain('austa_r_connections 6');
    expect(text).toContain('austa_r_lag_seconds 2');
    const labels = 'db_system_name="redis",db_operation_name="get",db_collection_name="",error_type=""';
    expect(text).toContain(`db_client_operation_duration_seconds_bucket{le="0.00025",${labels}} 3`);
    expect(text).toContain(`db_client_operation_duration_seconds_bucket{le="0.025",${labels}} 6`);
    expect(text).toContain(`db_client_operation_duration_seconds_bucket{le="+Inf",${labels}} 6`);
    expect(text).toContain(`db_client_operation_duration_seconds_count{${labels}} 6`);
    expect(text).toMatch(new RegExp(`db_client_operation_duration_seconds_sum\\{${labels}\\} 0\\.060(6|59)`));
  });
});
