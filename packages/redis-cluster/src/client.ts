import type { Metrics } from '@austa/metrics';
import { Cluster, Redis } from 'ioredis';
import { createTracker, hookSendCommand } from './command-hook.js';
import { RedisArgumentError, RedisClientClosedError, RedisUnavailableError } from './errors.js';
import { escapeGlob } from './glob.js';
import { type ParsedInfo, parseInfo } from './info.js';
import { createInstruments, type RedisInstruments } from './instrumentation.js';
import { type RedisClientOptions, resolveOptions } from './options.js';
import {
  type Logger,
  type MessageHandler,
  type PatternMessageHandler,
  PubSub,
  type Unsubscribe,
} from './pubsub.js';
import { type ScanOptions, scanKeys } from './scan.js';
import { assertName } from './validation.js';

export interface RedisClientDependencies {
  /** Metrics from `@austa/metrics`. Without it the client records nothing and pays nothing for it. */
  metrics?: Metrics;
  /** Where connection errors and failed pub/sub handlers are reported. Default: `console`. */
  logger?: Logger;
  /** Put pub/sub channel names in the `channel` metric label. Off by default: channel names often carry ids. */
  channelLabels?: boolean;
}

export interface NodeStats {
  /** `host:port` of the node. */
  address: string;
  role: 'standalone' | 'master' | 'replica';
  /** ioredis connection status: `wait`, `connecting`, `connect`, `ready`, `reconnecting`, `end`… */
  status: string;
  /** Commands written and waiting for a reply. */
  commandQueueLength: number;
  /** Commands held while the connection is down. */
  offlineQueueLength: number;
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

export interface NodeHealth {
  address: string;
  ok: boolean;
  latencyMs?: number;
  error?: string;
}

export interface HealthResult {
  healthy: boolean;
  topology: 'standalone' | 'cluster';
  /** `cluster_state` from CLUSTER INFO (cluster only). */
  clusterState?: string;
  /** Slots served by a healthy master, out of 16384 (cluster only). */
  slotsOk?: number;
  nodes: NodeHealth[];
  /** Why the client is unhealthy, in words an operator can act on. */
  problems: string[];
  checkedAt: number;
}

export type NodeInfo =
  | { role: NodeStats['role']; ok: true; sections: ParsedInfo }
  | { role: NodeStats['role']; ok: false; error: string };

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
  subscribe(channel: string, handler: MessageHandler): Promise<Unsubscribe>;
  psubscribe(pattern: string, handler: PatternMessageHandler): Promise<Unsubscribe>;
  /** Sharded subscribe (Redis 7+). On a cluster it connects to the shard that owns the channel. */
  ssubscribe(channel: string, handler: MessageHandler): Promise<Unsubscribe>;
  /** `INFO` from every node, parsed, keyed by `host:port`. */
  info(section?: string): Promise<Record<string, NodeInfo>>;
  stats(): ClientStats;
  /** PING on every master plus CLUSTER INFO; never throws. */
  health(options?: { timeoutMs?: number }): Promise<HealthResult>;
  /**
   * `scanKeys(client, pattern, options)`: keys matching `pattern` on every master, after refreshing the slot map;
   * throws `E_INCOMPLETE_SCAN` rather than return a partial answer. Escape user parts with `escapeGlob`.
   */
  scan(pattern: string, options?: ScanOptions): AsyncIterableIterator<string>;
  /** Waits for pending replies, then quits every connection. Later calls reject with `E_CLIENT_CLOSED`. */
  close(): Promise<void>;
}

const consoleLogger: Logger = {
  warn: (message, details) => console.warn(message, details ?? ''),
  error: (message, details) => console.error(message, details ?? ''),
};

type Internals = {
  commandQueue?: { length: number };
  offlineQueue?: { length: number };
  options: { host?: string; port?: number };
};

function address(node: Redis): string {
  const options = (node as unknown as Internals).options;
  return `${options.host ?? '127.0.0.1'}:${options.port ?? 6379}`;
}

function queueLength(node: unknown, queue: 'commandQueue' | 'offlineQueue'): number {
  return (node as Internals)[queue]?.length ?? 0;
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const SECTION = /^[a-z_]{1,32}$/i;

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

  const isCluster = resolved.topology === 'cluster';
  const tracker = instruments ? createTracker(instruments.observer, isCluster) : undefined;
  const client: Redis | Cluster =
    resolved.cluster !== undefined
      ? new Cluster(resolved.cluster.nodes, resolved.cluster.options)
      : new Redis(resolved.redis);
  const hook = (connection: Redis | Cluster) =>
    hookSendCommand(connection, {
      isCluster: connection instanceof Cluster,
      isClosed: () => closed,
      commandTimeoutMs: resolved.commandTimeoutMs,
      ...(tracker ? { tracker } : {}),
    });
  hook(client);
  watch(client, 'client');

  function watch(connection: Redis | Cluster, scope: 'client' | 'subscriber'): void {
    // ioredis retries on its own; the listener keeps the error from being reported as unhandled and tells the
    // operator once per distinct message, not once per retry.
    let lastError = '';
    connection.on('error', (error: Error) => {
      if (error.message === lastError) return;
      lastError = error.message;
      logger.warn(`@austa/redis-cluster: ${scope} connection error`, {
        client: resolved.name,
        error: error.message,
      });
    });
    connection.on('ready', () => {
      lastError = '';
    });
    if (instruments) connection.on('reconnecting', () => instruments.reconnect(scope));
    if (instruments && connection instanceof Cluster) {
      const seen = new Set<string>();
      connection.on('+node', (node: Redis) => {
        const key = address(node);
        if (seen.has(key)) instruments.reconnect('node');
        seen.add(key);
      });
      const target = connection as unknown as {
        handleError: (error: Error, ttl: unknown, handlers: unknown) => void;
      };
      const handleError = target.handleError;
      target.handleError = function (this: unknown, error: Error, ttl: unknown, handlers: unknown) {
        const kind = error.message.slice(0, error.message.indexOf(' '));
        if (kind === 'MOVED') instruments.redirection('moved');
        else if (kind === 'ASK') instruments.redirection('ask');
        else if (kind === 'TRYAGAIN') instruments.clusterRetry('tryagain');
        else if (kind === 'CLUSTERDOWN') instruments.clusterRetry('clusterdown');
        else if (error.message.startsWith('Connection is closed'))
          instruments.clusterRetry('connection_closed');
        return handleError.call(this, error, ttl, handlers);
      };
    }
  }

  const pubsub = new PubSub({
    instruments,
    logger,
    connect(family) {
      let connection: Redis | Cluster;
      if (client instanceof Cluster) {
        connection = client.duplicate([], {
          enableAutoPipelining: false,
          ...(family === 'sharded' ? { shardedSubscribers: true } : {}),
          redisOptions: { ...resolved.redis, connectionName: `austa:${resolved.name}:sub` },
        });
      } else {
        // A subscriber must outlive any outage, so it retries forever instead of failing queued subscriptions.
        connection = client.duplicate({
          connectionName: `austa:${resolved.name}:sub`,
          enableAutoPipelining: false,
          enableOfflineQueue: true,
          maxRetriesPerRequest: null,
        });
      }
      hook(connection);
      watch(connection, 'subscriber');
      return connection;
    },
  });

  function nodes(role: 'master' | 'all'): Array<{ node: Redis; role: NodeStats['role'] }> {
    if (!(client instanceof Cluster)) return [{ node: client, role: 'standalone' }];
    const masters = client.nodes('master');
    const list: Array<{ node: Redis; role: NodeStats['role'] }> = masters.map((node) => ({
      node,
      role: 'master',
    }));
    if (role === 'all') {
      for (const node of client.nodes('slave')) list.push({ node, role: 'replica' });
    }
    return list;
  }

  if (instruments) {
    cleanups.push(
      instruments.onCollectConnections(() => {
        const list: Array<{ role: string; status: string }> = nodes('all').map(({ node, role }) => ({
          role,
          status: node.status,
        }));
        for (const { connection } of pubsub.connections())
          list.push({ role: 'subscriber', status: connection.status });
        return list;
      }),
    );
  }

  function pendingCommands(): number {
    let pending = isCluster ? queueLength(client, 'offlineQueue') : 0;
    for (const { node } of nodes('all')) {
      pending += queueLength(node, 'commandQueue') + queueLength(node, 'offlineQueue');
    }
    return pending;
  }

  // QUIT alone is not enough on a cluster: a command that meets a closing node connection is retried on
  // another, so close() first waits (bounded by the command timeout) until no command is queued or unanswered.
  async function drain(timeoutMs: number): Promise<void> {
    // Auto-pipelined commands are written on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
    const deadline = Date.now() + timeoutMs;
    while (pendingCommands() > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  // SCAN, INFO and the health checks go straight to cluster nodes, past the Cluster's hooked sendCommand, so they
  // are timed here. Node connections are not hooked themselves: measured on the cluster benchmark, a second hook
  // on every command's path cost about 3% of throughput to catch only these few.
  function onNode<T>(operation: string, run: () => Promise<T>): Promise<T> {
    const observer = instruments?.observer;
    if (!isCluster || observer === undefined) return run();
    const started = performance.now();
    return run().then(
      (value) => {
        observer.ok(operation, (performance.now() - started) / 1000);
        return value;
      },
      (error: unknown) => {
        observer.error(operation, (performance.now() - started) / 1000, error);
        throw error;
      },
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
          done(new RedisUnavailableError('The Redis connection ended before it became ready.'));
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

    async subscribe(channel, handler) {
      assertOpen();
      return pubsub.subscribe('message', channel, handler);
    },

    async psubscribe(pattern, handler) {
      assertOpen();
      return pubsub.subscribe('pmessage', pattern, handler);
    },

    async ssubscribe(channel, handler) {
      assertOpen();
      return pubsub.subscribe('smessage', channel, handler);
    },

    async info(section) {
      assertOpen();
      if (section !== undefined && (typeof section !== 'string' || !SECTION.test(section))) {
        throw new RedisArgumentError(
          'section must be an INFO section name such as "server", "memory" or "all".',
        );
      }
      const list = nodes('all');
      const results = await Promise.allSettled(
        list.map(({ node }) =>
          onNode('info', () => (section === undefined ? node.info() : node.info(section))),
        ),
      );
      const byNode: Record<string, NodeInfo> = {};
      list.forEach(({ node, role }, index) => {
        const result = results[index];
        byNode[address(node)] =
          result?.status === 'fulfilled'
            ? { role, ok: true, sections: parseInfo(result.value) }
            : { role, ok: false, error: message(result?.reason) };
      });
      return byNode;
    },

    stats() {
      const counts = pubsub.counts();
      return {
        name: resolved.name,
        topology: resolved.topology,
        status: client.status,
        closed,
        clusterOfflineQueueLength: isCluster ? queueLength(client, 'offlineQueue') : 0,
        nodes: nodes('all').map(({ node, role }) => ({
          address: address(node),
          role,
          status: node.status,
          commandQueueLength: queueLength(node, 'commandQueue'),
          offlineQueueLength: queueLength(node, 'offlineQueue'),
        })),
        subscriber: {
          connections: pubsub
            .connections()
            .map(({ family, connection }) => ({ family, status: connection.status })),
          ...counts,
        },
      };
    },

    async health(healthOptions = {}) {
      const timeoutMs = healthOptions.timeoutMs ?? 1000;
      const problems: string[] = [];
      const result: HealthResult = {
        healthy: false,
        topology: resolved.topology,
        nodes: [],
        problems,
        checkedAt: Date.now(),
      };
      if (closed || closing) {
        problems.push('the client is closed');
        return result;
      }
      try {
        const masters = nodes('master');
        if (masters.length === 0) problems.push('no master is known: the client has no slot map yet');
        result.nodes = await Promise.all(
          masters.map(async ({ node }) => {
            const started = performance.now();
            try {
              await withTimeout(
                onNode('ping', () => node.ping()),
                timeoutMs,
                'PING',
              );
              return { address: address(node), ok: true, latencyMs: performance.now() - started };
            } catch (error) {
              problems.push(`master ${address(node)} did not answer PING: ${message(error)}`);
              return { address: address(node), ok: false, error: message(error) };
            }
          }),
        );
        if (client instanceof Cluster) {
          const reachable = masters.filter((_, index) => result.nodes[index]?.ok);
          const source = reachable[0]?.node;
          if (source === undefined) {
            problems.push('no master answered, so the cluster state is unknown');
          } else {
            const info = parseInfo(
              (await withTimeout(
                onNode('cluster', () => source.cluster('INFO')),
                timeoutMs,
                'CLUSTER INFO',
              )) as string,
            );
            const fields = Object.values(info)[0] ?? {};
            result.clusterState = fields.cluster_state;
            result.slotsOk = Number(fields.cluster_slots_ok ?? 0);
            if (result.clusterState !== 'ok')
              problems.push(`cluster_state is ${result.clusterState ?? 'unknown'}`);
            if (result.slotsOk !== 16384) problems.push(`only ${result.slotsOk} of 16384 slots are served`);
          }
        }
      } catch (error) {
        problems.push(`health check failed: ${message(error)}`);
      }
      result.healthy = problems.length === 0;
      return result;
    },

    scan(pattern, scanOptions = {}) {
      assertOpen();
      return scanKeys(client, pattern, scanOptions);
    },

    close() {
      if (closing) return closing;
      closing = (async () => {
        for (const cleanup of cleanups) cleanup();
        await pubsub.close();
        await drain(resolved.commandTimeoutMs);
        const quit = client.quit();
        closed = true;
        try {
          await withTimeout(quit, resolved.commandTimeoutMs, 'QUIT');
        } catch {
          client.disconnect();
        }
      })();
      return closing;
    },
  };
}

export { escapeGlob };
