import { Cluster, type Command, Redis } from 'ioredis';
import { boundReadyWaits, type HookContext, hookPipelines, hookSendCommand } from './command-hook.js';
import { clusterErrorKind } from './error-type.js';
import type { RedisInstruments } from './instrumentation.js';
import type { ResolvedOptions } from './options.js';
import type { Logger } from './pubsub.js';

type Queue = { length: number; peekAt(index: number): { command: Command } | undefined };
type Internals = {
  commandQueue?: Queue;
  offlineQueue?: Queue;
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
}

export function createConnections({
  resolved,
  context,
  instruments,
  logger,
}: ConnectionOptions): Connections {
  const duplicates = new Set<Redis | Cluster>();
  const client: Redis | Cluster =
    resolved.cluster !== undefined
      ? new Cluster(resolved.cluster.nodes, resolved.cluster.options)
      : new Redis(resolved.redis);

  function hookNode(node: Redis): void {
    hookSendCommand(node, context, { node: true });
    hookPipelines(node, context);
  }

  function instrument(connection: Redis | Cluster, scope: Scope): void {
    hookSendCommand(connection, context);
    hookPipelines(connection, context);
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
