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
}

/**
 * Corks a ready, writable connection's socket until the end of the tick; every socket it corked is uncorked together
 * on `process.nextTick`, before any I/O of the next tick. A socket already corked (by this or another corker) is left
 * as it is, so two corkers on one client never hold it longer than the tick.
 */
export function connectionCorker(): (connection: unknown) => void {
  const corked: Corkable[] = [];
  const uncorkAll = () => {
    for (const stream of corked) stream.uncork();
    corked.length = 0;
  };
  return (connection) => {
    // A cluster's pool has no connection for a node it does not know yet: nothing to cork.
    const target = connection as Connection | undefined;
    if (target?.status !== 'ready') return;
    const stream = target.stream;
    if (stream === undefined || stream.writableCorked !== 0 || !stream.writable) return;
    stream.cork();
    corked.push(stream);
    if (corked.length === 1) process.nextTick(uncorkAll);
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
  const isCluster = client instanceof Cluster;
  const corkConnection = connectionCorker();

  function corkNode(node: string | undefined): void {
    if (!isCluster) {
      corkConnection(client);
      return;
    }
    if (node === undefined) return;
    corkConnection((client as unknown as ClusterInternals).connectionPool?.getInstanceByKey?.(node));
  }

  return {
    corkNode,
    cork(key) {
      if (!isCluster) corkConnection(client);
      else corkNode((client as unknown as ClusterInternals).slots[calculateSlot(key)]?.[0]);
    },
  };
}
