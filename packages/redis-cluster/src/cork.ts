import calculateSlot from 'cluster-key-slot';
import { Cluster, type Redis } from 'ioredis';

/** The part of a socket corking needs. */
interface Corkable {
  writable: boolean;
  writableCorked: number;
  cork(): void;
  uncork(): void;
}
type Connection = { status?: string; stream?: Corkable };
type ClusterInternals = {
  slots: Array<string[] | undefined>;
  connectionPool?: { getInstanceByKey?(node: string): unknown };
};

/** The hash slot of a key (CRC16 mod 16384, hash tags honoured), as ioredis and Redis Cluster compute it. */
export function keySlot(key: string | Buffer): number {
  return calculateSlot(key);
}

/** Coalesces the commands a store sends in one tick into one socket write per connection. */
export interface TickCorker {
  /** Corks the connection the next command for `key` goes to (its slot's master on a cluster) until this tick ends. */
  cork(key: string | Buffer): void;
  /** Corks the connection of a cluster node (`host:port` as in the slot map); on a standalone client, the client's. */
  corkNode(node: string | undefined): void;
  /**
   * Writes now what is held on the connection `key` goes to, and keeps holding the rest of the tick's commands. A
   * caller that has a full batch lets Redis start on it while the tick builds the next one, instead of Redis and the
   * client taking turns. A connection this tick has not corked is left alone.
   */
  flush(key: string | Buffer): void;
  /** `flush` for every connection this corker holds in this tick. */
  flushAll(): void;
}

/** Corks a connection until the end of the tick (see `connectionCorker`). */
export interface ConnectionCorker {
  (connection: unknown): void;
  /**
   * Writes now what a connection it corked in this tick holds (every such connection without an argument), and keeps
   * them corked until the tick ends. Connections it did not cork are left alone.
   */
  flush(connection?: unknown): void;
}

/**
 * Corks a ready, writable connection's socket until the end of the tick; every socket it corked is uncorked together
 * on `process.nextTick`, before any I/O of the next tick. A socket already corked (by this or another corker) is left
 * as it is, so two corkers on one client never hold it longer than the tick.
 */
export function connectionCorker(): ConnectionCorker {
  const corked: Corkable[] = [];
  const uncorkAll = () => {
    for (const stream of corked) stream.uncork();
    corked.length = 0;
  };
  const cork = (connection: unknown) => {
    // A cluster's pool has no connection for a node it does not know yet: nothing to cork.
    const target = connection as Connection | undefined;
    if (target?.status !== 'ready') return;
    const stream = target.stream;
    if (stream === undefined || stream.writableCorked !== 0 || !stream.writable) return;
    stream.cork();
    corked.push(stream);
    if (corked.length === 1) process.nextTick(uncorkAll);
  };
  return Object.assign(cork, {
    flush(connection?: unknown) {
      if (connection === undefined) {
        for (const stream of corked) flushStream(stream);
        return;
      }
      const stream = (connection as Connection | null)?.stream;
      if (stream !== undefined && corked.includes(stream)) flushStream(stream);
    },
  });
}

/** Writes now what a corked socket holds, and corks it again for the rest of the tick. */
function flushStream(stream: Corkable): void {
  if (stream.writableCorked === 0) return;
  // uncork() writes only when the count reaches 0: every level is released, then as many are taken again.
  const levels = stream.writableCorked;
  for (let level = 0; level < levels; level++) stream.uncork();
  for (let level = 0; level < levels; level++) stream.cork();
}

/** Where a cluster's slot map sends a key, for a caller that writes to a node's connection itself. */
export interface NodeRouter {
  /**
   * The master (`host:port`, as in the slot map) of `key`'s slot; undefined on a standalone client or for a slot not
   * mapped yet.
   */
  nodeOf(key: string | Buffer): string | undefined;
  /** That node's connection when it is ready; undefined otherwise (the caller then goes through the client). */
  readyConnection(node: string | undefined): Redis | undefined;
}

/**
 * Reads the slot map ioredis keeps (the one it routes by). A command a caller writes to the connection it returns
 * skips ioredis' routing, and with it the handling of MOVED, ASK, TRYAGAIN and a closed connection: that caller must
 * send anything refused that way again through the client. `@austa/rate-limit` does, for checks it batches per node.
 */
export function nodeRouter(client: Redis | Cluster): NodeRouter {
  const lookup = connectionLookup(client);
  return {
    nodeOf: lookup.nodeOf,
    readyConnection(node) {
      const connection = lookup.connectionOfNode(node) as (Redis & Connection) | undefined;
      return connection?.status === 'ready' ? connection : undefined;
    },
  };
}

/** A node's connection (the client's own on a standalone server); undefined for a node the pool does not know yet. */
function connectionLookup(client: Redis | Cluster) {
  const isCluster = client instanceof Cluster;
  const cluster = client as unknown as ClusterInternals;
  return {
    nodeOf: (key: string | Buffer): string | undefined =>
      isCluster ? cluster.slots[calculateSlot(key)]?.[0] : undefined,
    connectionOfNode: (node: string | undefined): unknown => {
      if (!isCluster) return client;
      return node === undefined ? undefined : cluster.connectionPool?.getInstanceByKey?.(node);
    },
  };
}

/**
 * ioredis writes every command with its own `write()` unless auto-pipelining is on, and at 100 callers in flight that
 * syscall was most of a store's client CPU (58% of a rate-limit check in a profile). Corking the socket until the end
 * of the tick sends what the tick's callers issued in one write, as node-redis does, without changing how any command
 * is routed, retried or redirected: each stays an ordinary command. No command waits past the current tick. A
 * connection that is not ready (reconnecting, a slot not in the map yet) is left alone and ioredis queues as usual.
 * A client from `createRedisClient` does this itself (`corkWrites`); this is for any other ioredis client.
 */
export function tickCorker(client: Redis | Cluster): TickCorker {
  const corkConnection = connectionCorker();
  const { nodeOf, connectionOfNode } = connectionLookup(client);
  const connectionOf = (key: string | Buffer) => connectionOfNode(nodeOf(key));

  return {
    corkNode: (node) => corkConnection(connectionOfNode(node)),
    cork: (key) => corkConnection(connectionOf(key)),
    flush(key) {
      const connection = connectionOf(key);
      if (connection !== undefined) corkConnection.flush(connection);
    },
    flushAll: () => corkConnection.flush(),
  };
}
