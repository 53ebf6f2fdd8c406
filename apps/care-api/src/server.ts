import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { type AppOptions, assertUserLookupAllowed, buildApp } from './app.js';
import type { Config } from './config.js';
import { openResources, type Resources } from './resources.js';

export interface RunningService {
  app: FastifyInstance;
  resources: Resources;
  /** `http://host:port` it listens on. */
  address: string;
  /**
   * Stops accepting connections, lets requests in flight finish, closes what the app opened (streams, subscribers),
   * then Redis and MongoDB (and the development servers). Resolves `true` when everything closed within
   * `config.shutdownTimeoutMs`; connections still busy near the end are cut so the process can exit in time.
   */
  shutdown(reason: string): Promise<boolean>;
}

function delay(ms: number): Promise<'timeout'> {
  return new Promise((resolve) => setTimeout(() => resolve('timeout'), ms).unref());
}

/**
 * Opens the resources, builds the app and listens. `pluggable` plugs in the user lookup (required with NODE_ENV=production:
 * the DEMO lookup is refused there, before anything connects) and the assistant responder.
 */
export async function startService(
  config: Config,
  logger: Logger,
  pluggable: Pick<AppOptions, 'users' | 'responder'> = {},
): Promise<RunningService> {
  assertUserLookupAllowed(config, pluggable.users);
  const resources = await openResources(config, logger);
  let app: FastifyInstance;
  try {
    app = await buildApp({
      ...pluggable,
      config,
      metrics: resources.metrics,
      redis: resources.redis,
      mongo: resources.mongo,
      logger,
    });
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    await resources.close();
    throw error;
  }
  const bound = app.server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const address = `http://${host}:${port}`;

  let shuttingDown: Promise<boolean> | undefined;
  const shutdown = (reason: string): Promise<boolean> => {
    shuttingDown ??= (async () => {
      const started = Date.now();
      logger.info({ reason }, 'shutting down: no new connections, draining requests in flight');
      // Drain gets most of the budget; closing Redis and Mongo (each bounded by its own timeouts) gets the rest.
      const drainBudgetMs = Math.max(
        500,
        config.shutdownTimeoutMs - Math.min(3000, config.shutdownTimeoutMs / 3),
      );
      const appClosed = app.close().then(() => 'closed' as const);
      const drained = await Promise.race([appClosed, delay(drainBudgetMs)]);
      let clean = drained === 'closed';
      if (!clean) {
        logger.warn(
          { drainBudgetMs },
          'requests still in flight at the drain deadline: closing their connections',
        );
        app.server.closeAllConnections();
        const closedLate = await Promise.race([
          appClosed,
          delay(Math.max(250, config.shutdownTimeoutMs - (Date.now() - started) - 500)),
        ]);
        if (closedLate !== 'closed') logger.error('the app did not finish closing');
      }
      const remainingMs = config.shutdownTimeoutMs - (Date.now() - started);
      const closed = await Promise.race([
        resources.close().then(() => 'closed' as const),
        delay(Math.max(100, remainingMs)),
      ]);
      if (closed !== 'closed') {
        logger.error('Redis/MongoDB did not close within the shutdown timeout');
        clean = false;
      }
      logger.info({ durationMs: Date.now() - started, clean }, 'shut down');
      return clean;
    })();
    return shuttingDown;
  };

  return { app, resources, address, shutdown };
}
