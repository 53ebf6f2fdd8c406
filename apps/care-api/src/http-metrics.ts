import { type BoundGauge, type BoundHistogram, BUCKETS, type Metrics } from '@austa/metrics';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/** OpenTelemetry's `http.server.request.duration`, mapped to Prometheus naming like the shared db histogram. */
export const HTTP_REQUEST_DURATION = 'http_server_request_duration_seconds';
/** OpenTelemetry's `http.server.active_requests`. */
export const HTTP_ACTIVE_REQUESTS = 'http_server_active_requests';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

function methodLabel(method: string): string {
  return METHODS.has(method) ? method : '_OTHER';
}

const COUNTED = Symbol('care-api.activeCounted');

type CountedRequest = FastifyRequest & { [COUNTED]?: boolean };

/**
 * Request duration by method, route template and status, and requests in flight. The route label is the template
 * (`/conversations/:id`), never the URL, so ids never become label values; unmatched requests get an empty route.
 */
export function registerHttpMetrics(app: FastifyInstance, metrics: Metrics): void {
  const duration = metrics.histogram({
    name: HTTP_REQUEST_DURATION,
    help: 'Duration of HTTP requests served, in seconds, by method, route template and status code.',
    labelNames: ['http_request_method', 'http_route', 'http_response_status_code'],
    buckets: BUCKETS.requestSeconds,
  });
  const active = metrics.gauge({
    name: HTTP_ACTIVE_REQUESTS,
    help: 'HTTP requests being served now, by method.',
    labelNames: ['http_request_method'],
  });
  // Bound handles, so the per-request cost is a map lookup and an observation.
  const durations = new Map<string, BoundHistogram>();
  const actives = new Map<string, BoundGauge>();
  const activeFor = (method: string): BoundGauge => {
    let series = actives.get(method);
    if (series === undefined) {
      series = active.bind({ http_request_method: method });
      actives.set(method, series);
    }
    return series;
  };
  const done = (request: CountedRequest): void => {
    if (request[COUNTED] !== true) return;
    request[COUNTED] = false;
    activeFor(methodLabel(request.method)).dec();
  };

  app.addHook('onRequest', (request: CountedRequest, _reply, next) => {
    request[COUNTED] = true;
    activeFor(methodLabel(request.method)).inc();
    next();
  });
  app.addHook('onResponse', (request: CountedRequest, reply, next) => {
    done(request);
    const method = methodLabel(request.method);
    const route = request.routeOptions.url ?? '';
    const status = reply.statusCode;
    const key = `${method} ${status} ${route}`;
    let series = durations.get(key);
    if (series === undefined) {
      series = duration.bind({
        http_request_method: method,
        http_route: route,
        http_response_status_code: String(status),
      });
      durations.set(key, series);
    }
    series.observe(reply.elapsedTime / 1000);
    next();
  });
  app.addHook('onRequestAbort', (request: CountedRequest, next) => {
    done(request);
    next();
  });
}
