import type { IncomingMessage, ServerResponse } from 'node:http';

/** A plain `node:http` request handler; mount it on any framework that exposes `req`/`res`. */
export type MetricsRequestHandler = (request: IncomingMessage, response: ServerResponse) => void;

/** Options of `createMetricsHandler` and `createClusterMetricsHandler`. */
export interface MetricsHandlerOptions {
  /**
   * Called with the error when collecting metrics fails; the response is then a 500 with a
   * short message that does not include the error. Use it to log. Errors it throws are ignored.
   */
  onError?: (error: unknown) => void;
}

/** The part of a prom-client `Registry` the handler reads. */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

/** The part of a prom-client `AggregatorRegistry` the cluster handler reads. */
export interface ClusterMetricsSource {
  clusterMetrics(): Promise<string>;
  readonly contentType: string;
}

function exposition(
  collect: () => Promise<string>,
  contentType: () => string,
  options: MetricsHandlerOptions,
): MetricsRequestHandler {
  const serve = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    let body: string;
    try {
      body = await collect();
    } catch (error) {
      try {
        // Stryker disable next-line OptionalChaining: calling an absent onError throws, and the catch below ignores it.
        options.onError?.(error);
      } catch {
        // A failing logger must not turn a 500 into an unhandled rejection.
      }
      if (!response.headersSent) {
        response.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
      }
      response.end('Failed to collect metrics\n');
      return;
    }
    response.writeHead(200, {
      'Content-Type': contentType(),
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
    });
    response.end(request.method === 'HEAD' ? undefined : body);
  };

  return (request, response) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('Method Not Allowed\n');
      return;
    }
    serve(request, response).catch(() => {
      // Only reachable when the response itself fails (socket gone); nothing left to tell the client.
    });
  };
}

/**
 * A `node:http` handler serving `registry.metrics()`: 200 with the registry's content type,
 * 405 for methods other than GET and HEAD, 500 with a short message when collection fails.
 * @example
 * http.createServer(createMetricsHandler(registry)).listen(9464);
 */
export function createMetricsHandler(
  registry: MetricsSource,
  options: MetricsHandlerOptions = {},
): MetricsRequestHandler {
  return exposition(
    () => registry.metrics(),
    () => registry.contentType,
    options,
  );
}

/**
 * A `node:http` handler for the cluster primary: serves the sum of every worker's
 * registry through prom-client's `AggregatorRegistry.clusterMetrics()`. Workers must call
 * `AggregatorRegistry.setRegistries([metrics.registry])`; see the README.
 */
export function createClusterMetricsHandler(
  aggregatorRegistry: ClusterMetricsSource,
  options: MetricsHandlerOptions = {},
): MetricsRequestHandler {
  return exposition(
    () => aggregatorRegistry.clusterMetrics(),
    () => aggregatorRegistry.contentType,
    options,
  );
}
