import type { Metrics } from '@austa/metrics';
import { Cluster, Redis } from 'ioredis';
import { createHookContext } from './command-hook.js';
import { createConnections } from './connection.js';
import { RedisArgumentError, RedisClientClosedError, RedisUnavailableError } from './errors.js';
import { checkHealth, type HealthResult, withTimeout } from './health.js';
import { createInstruments, type RedisInstruments } from './instrumentation.js';
import { healthProbe, infoOfNodes, type NodeInfo, type NodeStats, nodeStats, nodesOf } from './ops.js';
import { type RedisClientOptions, resolveOptions } from './options.js';
import {
  type BufferMessageHandler,
  type BufferPatternMessageHandler,
  type Logger,
  type MessageHandler,
  type PatternMessageHandler,
  PubSub,
  type SubscribeOptions,
  type Unsubscribe,
} from './pubsub.js';
import { type ScanOptions, scanKeys } from './scan.js';
import { createTracker } from './tracker.js';
import { assertName } from './validation.js';

export interface RedisClientDependencies {
  /** Metrics from `@austa/metrics`. Without it the client records nothing and pays nothing for it. */
  metrics?: Metrics;
  /** Where connection errors and failed pub/sub handlers are reported. Default: `console`. */
  logger?: Logger;
  /** Put pub/sub channel names in the `channel` metric label. Off by default: channel names often carry ids. */
  channelLabels?: boolean;
  /**
   * Include a failed pub/sub handler's error message in the log entry. Off by default: messages often quote the
   * payload (a `JSON.parse` error does), which can be patient data; the error's name and code are always logged.
   */
  logHandlerErrorMessages?: boolean;
}

export interface ClientStats {
  name: string;
  topology: 'standalone' | 'cluster';
  status: string;
  closed: boolean;
  /** Commands a Cluster holds before it has a slot map (0 for standalone). */
  clusterOfflineQueueLength: number;
  nodes: NodeStats[];
  subscriber: {
    connections: Array<{ family: 'classic' | 'sharded'; status: string }>;
    channels: number;
    patterns: number;
    shardChannels: number;
  };
}

export interface RedisClient {
  /** The ioredis client. Pass it to `@austa/session`, `@austa/cache`, `@austa/rate-limit`… */
  readonly client: Redis | Cluster;
  readonly topology: 'standalone' | 'cluster';
  readonly name: string;
  /** Resolves once the client is ready for commands; rejects with `E_REDIS_UNAVAILABLE` after `timeoutMs`. */
  ready(timeoutMs?: number): Promise<void>;
  publish(channel: string, message: string | Buffer): Promise<number>;
  /** Sharded publish (Redis 7+): the message only travels within the channel's shard. */
  spublish(channel: string, message: string | Buffer): Promise<number>;
  /**
   * Subscribes `handler` to `channel`; each call returns its own unsubscribe. With `{ buffers: true }` the handler
   * gets the published bytes as a Buffer (for encrypted or compressed payloads).
   */
  subscribe(channel: string, handler: MessageHandler, options?: { buffers?: false }): Promise<Unsubscribe>;
  subscribe(channel: string, handler: BufferMessageHandler, options: { buffers: true }): Promise<Unsubscribe>;
  psubscribe(
    pattern: string,
    handler: PatternMessageHandler,
    options?: { buffers?: false },
  ): Promise<Unsubscribe>;
  psubscribe(
    pattern: string,
    handler: BufferPatternMessageHandler,
    options: { buffers: true },
  ): Promise<Unsubscribe>;
  /**
   * Sharded subscribe (Redis 7+). On a cluster it subscribes on the master that owns the channel's slot and moves
   * the subscription when the slot migrates or the master fails over.
   */
  ssubscribe(channel: string, handler: MessageHandler, options?: { buffers?: false }): Promise<Unsubscribe>;
  ssubscribe(
    channel: string,
    handler: BufferMessageHandler,
    options: { buffers: true },
  ): Promise<Unsubscribe>;
  /** `INFO` from every node, parsed, keyed by `host:port`. */
  info(section?: string): Promise<Record<string, NodeInfo>>;
  stats(): ClientStats;
  /**
   * Refreshes the slot map, PINGs every master, checks that the masters cover all 16384 slots, and reads CLUSTER
   * INFO. Never throws; `problems` says what is wrong, `uncoveredSlots` which slots no reachable master serves.
   */
  health(options?: { timeoutMs?: number }): Promise<HealthResult>;
  /**
   * `scanKeys(client, pattern, options)`: keys matching `pattern` on every master, after refreshing the slot map;
   * throws `E_INCOMPLETE_SCAN` rather than return a partial answer. Escape user parts with `escapeGlob`.
   */
  scan(pattern: string, options?: ScanOptions): AsyncIterableIterator<string>;
  /**
   * Waits for commands that have not settled yet (bounded by `commandTimeoutMs` in all), then quits every connection
   * this client opened, duplicates included. Later calls reject with `E_CLIENT_CLOSED`.
   */
  close(): Promise<void>;
}

const consoleLogger: Logger = {
  warn: (message, details) => console.warn(message, details ?? ''),
  error: (message, details) => console.error(message, details ?? ''),
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function waitForEnd(connection: Redis | Cluster, ms: number): Promise<void> {
  if (connection.status === 'end') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      connection.off('end', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    connection.once('end', done);
  });
}

/** Ends a connection within `ms`: QUIT if there is time, else (or then) close its sockets now. */
async function quitWithin(connection: Redis | Cluster, ms: number): Promise<void> {
  if (ms > 0 && connection.status !== 'end' && connection.status !== 'wait') {
    const started = performance.now();
    try {
      await withTimeout(connection.quit(), ms, 'QUIT');
      await waitForEnd(connection, Math.max(0, ms - (performance.now() - started)));
    } catch {
      // Closed below.
    }
  }
  if (connection.status === 'end') return;
  // disconnect() alone ends a socket gracefully and destroys it only after ioredis' 2 s disconnectTimeout, while
  // commands in flight still wait: destroy the sockets so they fail now and close() means closed.
  const sockets = connection instanceof Cluster ? connection.nodes('all') : [connection];
  connection.disconnect();
  for (const node of sockets) (node as unknown as { stream?: { destroy(): void } }).stream?.destroy();
  // A node connection rejects what it still holds when its socket's close event comes, a tick after destroy().
  await Promise.all([connection, ...sockets].map((node) => waitForEnd(node, 100)));
}

/**
 * Builds an instrumented ioredis client for a standalone server or a Redis Cluster.
 * @example
 * const redis = createRedisClient({ url: 'redis://127.0.0.1:6379' }, { metrics });
 * await redis.client.set('greeting', 'hello', 'EX', 60);
 * await redis.close();
 */
export function createRedisClient(
  options: RedisClientOptions,
  dependencies: RedisClientDependencies = {},
): RedisClient {
  const resolved = resolveOptions(options);
  const logger = dependencies.logger ?? consoleLogger;
  const instruments: RedisInstruments | undefined = dependencies.metrics
    ? createInstruments(dependencies.metrics, {
        client: resolved.name,
        channelLabels: dependencies.channelLabels ?? false,
      })
    : undefined;
  let closed = false;
  let closing: Promise<void> | undefined;
  const cleanups: Array<() => void> = [];

  const context = createHookContext({
    commandTimeoutMs: resolved.commandTimeoutMs,
    isClosed: () => closed,
    tracker: instruments ? createTracker(instruments.observer) : undefined,
    corkWrites: resolved.corkWrites,
  });
  const connections = createConnections({
    resolved,
    context,
    instruments,
    logger,
    isClosing: () => closed || closing !== undefined,
  });
  const { client } = connections;
  const isCluster = resolved.topology === 'cluster';

  const pubsub = new PubSub({
    instruments,
    logger,
    logHandlerErrorMessages: dependencies.logHandlerErrorMessages === true,
    livenessTimeoutMs: Math.min(resolved.commandTimeoutMs, 2000),
    ...(isCluster
      ? {
          sharded: {
            cluster: client as Cluster,
            open(address: string) {
              const index = address.lastIndexOf(':');
              const connection = new Redis({
                ...resolved.redis,
                host: address.slice(0, index),
                port: Number(address.slice(index + 1)),
                connectionName: `austa:${resolved.name}:ssub`,
                enableAutoPipelining: false,
                enableOfflineQueue: true,
                maxRetriesPerRequest: null,
                // One connection holds channels of many slots; ioredis would re-subscribe them in one CROSSSLOT
                // command, so the router re-subscribes them itself.
                autoResubscribe: false,
              });
              connections.adopt(connection, 'subscriber');
              return connection;
            },
          },
        }
      : {}),
    connect(family) {
      let connection: Redis | Cluster;
      if (isCluster) {
        connection = connections.duplicate('subscriber', [], {
          enableAutoPipelining: false,
          ...(family === 'sharded' ? { shardedSubscribers: true } : {}),
          redisOptions: { ...resolved.redis, connectionName: `austa:${resolved.name}:sub` },
        });
      } else {
        // A subscriber must outlive any outage, so it retries forever instead of failing queued subscriptions.
        connection = connections.duplicate('subscriber', {
          connectionName: `austa:${resolved.name}:sub`,
          enableAutoPipelining: false,
          enableOfflineQueue: true,
          maxRetriesPerRequest: null,
        });
      }
      return connection;
    },
  });

  if (instruments) {
    cleanups.push(
      instruments.onCollectConnections(() => {
        const list: Array<{ role: string; status: string }> = nodesOf(client, 'all').map(
          ({ node, role }) => ({
            role,
            status: node.status,
          }),
        );
        for (const { connection } of pubsub.connections())
          list.push({ role: 'subscriber', status: connection.status });
        return list;
      }),
    );
  }

  function assertOpen(): void {
    if (closed || closing) throw new RedisClientClosedError();
  }

  function checkPayload(channel: unknown, payload: unknown): void {
    assertName(channel, 'channel');
    if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) {
      throw new RedisArgumentError('message must be a string or a Buffer; serialize objects first.');
    }
  }

  return {
    client,
    topology: resolved.topology,
    name: resolved.name,

    ready(timeoutMs = 10_000) {
      if (closed || closing) return Promise.reject(new RedisClientClosedError());
      if (context.fatal !== undefined) return Promise.reject(context.fatal);
      if (client.status === 'ready') return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const done = (error?: Error) => {
          clearTimeout(timer);
          client.off('ready', onReady);
          client.off('end', onEnd);
          if (error) reject(error);
          else resolve();
        };
        const onReady = () => done();
        const onEnd = () =>
          done(
            context.fatal ?? new RedisUnavailableError('The Redis connection ended before it became ready.'),
          );
        const timer = setTimeout(
          () =>
            done(
              new RedisUnavailableError(
                `Redis was not ready within ${timeoutMs} ms (status ${client.status}). Check the address, credentials and TLS settings.`,
              ),
            ),
          timeoutMs,
        );
        client.on('ready', onReady);
        client.on('end', onEnd);
      });
    },

    async publish(channel, payload) {
      assertOpen();
      checkPayload(channel, payload);
      const receivers = await client.publish(channel, payload);
      instruments?.pubsubMessage('message', 'published', channel);
      return receivers;
    },

    async spublish(channel, payload) {
      assertOpen();
      checkPayload(channel, payload);
      const receivers = (await client.spublish(channel, payload)) as number;
      instruments?.pubsubMessage('smessage', 'published', channel);
      return receivers;
    },

    async subscribe(
      channel: string,
      handler: MessageHandler | BufferMessageHandler,
      options?: SubscribeOptions,
    ) {
      assertOpen();
      return pubsub.subscribe('message', channel, handler as never, options);
    },

    async psubscribe(
      pattern: string,
      handler: PatternMessageHandler | BufferPatternMessageHandler,
      options?: SubscribeOptions,
    ) {
      assertOpen();
      return pubsub.subscribe('pmessage', pattern, handler as never, options);
    },

    async ssubscribe(
      channel: string,
      handler: MessageHandler | BufferMessageHandler,
      options?: SubscribeOptions,
    ) {
      assertOpen();
      return pubsub.subscribe('smessage', channel, handler as never, options);
    },

    async info(section) {
      assertOpen();
      return infoOfNodes(client, section);
    },

    stats() {
      const counts = pubsub.counts();
      return {
        name: resolved.name,
        topology: resolved.topology,
        status: client.status,
        closed,
        clusterOfflineQueueLength: isCluster
          ? ((client as unknown as { offlineQueue?: { length: number } }).offlineQueue?.length ?? 0)
          : 0,
        nodes: nodeStats(client),
        subscriber: {
          connections: pubsub
            .connections()
            .map(({ family, connection }) => ({ family, status: connection.status })),
          ...counts,
        },
      };
    },

    async health(healthOptions) {
      const problem = closed || closing ? 'the client is closed' : context.fatal?.message;
      if (problem !== undefined) {
        return {
          healthy: false,
          topology: resolved.topology,
          nodes: [],
          problems: [problem],
          checkedAt: Date.now(),
        };
      }
      const timeoutMs = healthOptions?.timeoutMs ?? 1000;
      const valid = Number.isInteger(timeoutMs) && timeoutMs > 0 && timeoutMs <= 600_000;
      return checkHealth(healthProbe(client, valid ? timeoutMs : 1000));
    },

    scan(pattern, scanOptions) {
      assertOpen();
      return scanKeys(client, pattern, scanOptions ?? {});
    },

    close() {
      if (closing) return closing;
      closing = (async () => {
        // One budget for the whole close: a command still waiting for its reply gets the rest of it, nothing waits
        // for commands whose caller already has an answer, and an unreachable server costs commandTimeoutMs once.
        const deadline = performance.now() + resolved.commandTimeoutMs;
        for (const cleanup of cleanups) cleanup();
        const subscribers = pubsub.close();
        // Auto-pipelined commands are written on the next tick.
        await new Promise((resolve) => setImmediate(resolve));
        while (connections.pending() > 0 && performance.now() < deadline) await sleep(2);
        const left = Math.max(0, deadline - performance.now());
        // QUIT is written synchronously by each call; only then are later commands refused. No caller issued it, so
        // it is not measured.
        context.quitting = true;
        const quits = [client, ...connections.duplicates].map((connection) => quitWithin(connection, left));
        context.quitting = false;
        closed = true;
        await Promise.all([subscribers, ...quits]);
      })();
      return closing;
    },
  };
}
