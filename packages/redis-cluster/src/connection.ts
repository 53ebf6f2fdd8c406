import { Cluster, type Command, Redis } from 'ioredis';
import {
  blockingMs,
  boundReadyWaits,
  type HookContext,
  hookPipelines,
  hookSendCommand,
} from './command-hook.js';
import { INSTRUMENTED } from './command-timer.js';
import { clusterErrorKind, errorType } from './error-type.js';
import { RedisClientClosedError, RedisConfigError } from './errors.js';
import type { RedisInstruments } from './instrumentation.js';
import type { ResolvedOptions } from './options.js';
import type { Logger } from './pubsub.js';

type Queue = { length: number; peekAt(index: number): { command: Command } | undefined };
type Internals = {
  commandQueue?: Queue;
  offlineQueue?: Queue;
  prevCommandQueue?: Queue | null;
  flushQueue?: (error: Error, options?: { commandQueue?: boolean }) => void;
  delayQueue?: { queues: Record<string, { length: number } | null> };
  _autoPipelines?: Map<unknown, unknown>;
  options: { host?: string; port?: number };
};

/** `host:port` of a node connection. */
export function address(node: Redis): string {
  const options = (node as unknown as Internals).options;
  return `${options.host ?? '127.0.0.1'}:${options.port ?? 6379}`;
}

export function queueLength(connection: unknown, queue: 'commandQueue' | 'offlineQueue'): number {
  return (connection as Internals)[queue]?.length ?? 0;
}

export type Scope = 'client' | 'subscriber';

export interface Connections {
  readonly client: Redis | Cluster;
  /** Duplicates handed out by `client.duplicate()`: hooked like the client, ended by `close()`. */
  readonly duplicates: ReadonlySet<Redis | Cluster>;
  /** A duplicate of the client for this package's own use (subscribers): hooked, not in `duplicates`. */
  duplicate(scope: Scope, ...args: unknown[]): Redis | Cluster;
  /** Hooks a connection this package opened itself (a subscriber to one master) like the client's. */
  adopt(connection: Redis, scope: Scope): void;
  /** Commands issued and not yet settled, on the client and its duplicates. */
  pending(): number;
}

export interface ConnectionOptions {
  resolved: ResolvedOptions;
  context: HookContext;
  instruments: RedisInstruments | undefined;
  logger: Logger;
  /** True once `close()` started: duplicates are refused from then on. */
  isClosing(): boolean;
}

/**
 * A connection error as the operator may see it: ioredis quotes the reply that puzzled it ("Last reply: sunsubscribe,
 * <channel>…"), and replies can carry channel names or data, so that part is cut.
 */
export function safeErrorMessage(error: Error): string {
  return error.message.replace(/\.?\s*Last (reply|error):[\s\S]*$/, '').slice(0, 200);
}

const DB_OUT_OF_RANGE = /DB index is out of range/;

export function createConnections({
  resolved,
  context,
  instruments,
  logger,
  isClosing,
}: ConnectionOptions): Connections {
  const duplicates = new Set<Redis | Cluster>();
  const client: Redis | Cluster =
    resolved.cluster !== undefined
      ? new Cluster(resolved.cluster.nodes, resolved.cluster.options)
      : new Redis(resolved.redis);

  function hookNode(node: Redis): void {
    hookSendCommand(node, context, { node: true });
    hookPipelines(node, context);
    if (!resolved.resendInFlightWrites) markLostInFlight(node);
  }

  /**
   * Remembers the commands a connection had written when it closed: ioredis sends them again (a standalone client's
   * resend after reconnecting, a cluster's retry after "Connection is closed") and the hook lets only read-only ones
   * go, since Redis may have run the others already.
   */
  function markLostInFlight(connection: Redis): void {
    const internals = connection as unknown as Internals;
    const mark = (queue: Queue | null | undefined) => {
      if (queue === null || queue === undefined) return;
      for (let index = 0; index < queue.length; index++) {
        const command = queue.peekAt(index)?.command;
        if (command !== undefined && !command.isResolved) context.inFlight.add(command);
      }
    };
    const flush = internals.flushQueue;
    if (flush !== undefined) {
      internals.flushQueue = function (this: unknown, error: Error, options?: { commandQueue?: boolean }) {
        if (options?.commandQueue !== false) mark(internals.commandQueue);
        return flush.call(this, error, options);
      };
    }
    // A standalone client keeps them in prevCommandQueue, set just before the "close" event.
    connection.on('close', () => mark(internals.prevCommandQueue));
  }

  function instrument(connection: Redis | Cluster, scope: Scope): void {
    if (context.tracker !== undefined) {
      Object.defineProperty(connection, INSTRUMENTED, { value: true, enumerable: false });
    }
    hookSendCommand(connection, context);
    hookPipelines(connection, context);
    if (!(connection instanceof Cluster) && !resolved.resendInFlightWrites) markLostInFlight(connection);
    if (connection instanceof Cluster) {
      boundReadyWaits(connection, context.commandTimeoutMs);
      // Node connections carry the commands a cluster retries after a failover and those sent to one node; they are
      // created as the slot map changes, before their first command.
      connection.on('+node', hookNode);
    }
    watch(connection, scope);
    if (scope === 'client') hookDuplicate(connection);
  }

  type Duplicate = (...args: unknown[]) => Redis | Cluster;
  const ownDuplicate = (client as unknown as { duplicate: Duplicate }).duplicate;

  function hookDuplicate(connection: Redis | Cluster): void {
    const target = connection as unknown as { duplicate: Duplicate };
    const duplicate = target.duplicate;
    target.duplicate = function (this: unknown, ...args: unknown[]) {
      // After close() a duplicate would reconnect forever: the hook refuses its handshake.
      if (isClosing()) throw new RedisClientClosedError();
      const copy = duplicate.apply(this, args);
      instrument(copy, 'client');
      duplicates.add(copy);
      copy.once('end', () => duplicates.delete(copy));
      return copy;
    };
  }

  function watch(connection: Redis | Cluster, scope: Scope): void {
    // ioredis retries on its own; the listener keeps the error from being reported as unhandled and tells the
    // operator once per distinct message, not once per retry.
    let lastError = '';
    connection.on('error', (error: Error) => {
      if (
        connection === client &&
        !(connection instanceof Cluster) &&
        context.fatal === undefined &&
        DB_OUT_OF_RANGE.test(error.message)
      ) {
        // ioredis carries on in database 0 when SELECT fails: every write would land in the wrong database.
        context.fatal = new RedisConfigError(
          `Database ${resolved.redis.db ?? 0} does not exist on this server (its "databases" setting is lower); nothing was sent.`,
        );
        connection.disconnect();
      }
      // After close() the hook refuses what ioredis still tries (a handshake in flight): expected, not worth a warning.
      if (RedisClientClosedError.isInstance(error)) return;
      const message = safeErrorMessage(error);
      if (message === lastError) return;
      lastError = message;
      logger.warn(`@austa/redis-cluster: ${scope} connection error`, {
        client: resolved.name,
        error: message,
        type: errorType(error),
      });
    });
    connection.on('ready', () => {
      lastError = '';
    });
    if (instruments === undefined) return;
    connection.on('reconnecting', () => instruments.reconnect(scope));
    if (!(connection instanceof Cluster)) return;
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
      const kind = clusterErrorKind(error.message);
      if (kind === 'moved' || kind === 'ask') instruments.redirection(kind);
      else if (kind !== undefined) instruments.clusterRetry(kind);
      return handleError.call(this, error, ttl, handlers);
    };
  }

  function unsettled(queue: Queue | undefined): number {
    if (queue === undefined) return 0;
    let count = 0;
    for (let index = 0; index < queue.length; index++) {
      const command = queue.peekAt(index)?.command;
      if (command !== undefined && !command.isResolved && !context.dead.has(command)) count += 1;
    }
    return count;
  }

  function pendingOn(connection: Redis | Cluster): number {
    const internals = connection as unknown as Internals;
    let pending = unsettled(internals.offlineQueue) + (internals._autoPipelines?.size ?? 0);
    if (connection instanceof Cluster) {
      // Commands waiting to be retried after a failover or CLUSTERDOWN sit in the delay queue as closures.
      for (const queue of Object.values(internals.delayQueue?.queues ?? {})) pending += queue?.length ?? 0;
      for (const node of connection.nodes('all')) {
        const nodeInternals = node as unknown as Internals;
        pending += unsettled(nodeInternals.commandQueue) + unsettled(nodeInternals.offlineQueue);
      }
    } else {
      pending += unsettled(internals.commandQueue);
    }
    return pending;
  }

  /**
   * A command that timed out while written behind a blocking command (BLPOP, XREAD BLOCK…) on the same connection
   * would still run once the block ends. Redis drops what a client sent but has not run when it disconnects, so the
   * connection is closed (a standalone or duplicate reconnects; a cluster opens a new node connection).
   */
  function cutOffBehindBlock(command: Command): void {
    const candidates: Redis[] = [];
    for (const connection of [client, ...duplicates]) {
      if (connection instanceof Cluster) candidates.push(...connection.nodes('all'));
      else candidates.push(connection);
    }
    for (const connection of candidates) {
      const queue = (connection as unknown as Internals).commandQueue;
      if (queue === undefined) continue;
      let blocked = false;
      for (let index = 0; index < queue.length; index++) {
        const queued = queue.peekAt(index)?.command;
        if (queued === undefined) continue;
        if (queued === command) {
          if (blocked) connection.disconnect(true);
          return;
        }
        if (!queued.isResolved && blockingMs(queued.name, queued.args) !== undefined) blocked = true;
      }
    }
  }
  context.onExpire = cutOffBehindBlock;

  instrument(client, 'client');
  return {
    client,
    duplicates,
    adopt: instrument,
    duplicate(scope, ...args) {
      const copy = ownDuplicate.apply(client, args);
      instrument(copy, scope);
      return copy;
    },
    pending() {
      let pending = pendingOn(client);
      for (const copy of duplicates) pending += pendingOn(copy);
      return pending;
    },
  };
}
