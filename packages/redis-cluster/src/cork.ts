import calculateSlot from 'cluster-key-slot';
import { Cluster, type Redis } from 'ioredis';

/** The part of a socket corking needs. */
interface Corkable {
  writable: boolean;
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
 * ioredis writes every command with its own `write()` unless auto-pipelining is on, and at 100 callers in flight that
 * syscall was most of a store's client CPU (58% of a rate-limit check in a profile). Corking the socket until the end
 * of the tick sends what the tick's callers issued in one write, as node-redis does, without changing how any command
 * is routed, retried or redirected: each stays an ordinary command. The socket is uncorked on `process.nextTick`, before
 * any I/O of the next tick, so no command waits past the current one. Only a ready, writable connection is corked;
 * one that is not (reconnecting, a slot not in the map yet) is left alone and ioredis queues as usual.
 */
export function tickCorker(client: Redis | Cluster): TickCorker {
  const isCluster = client instanceof Cluster;
  // Sockets corked in this tick, uncorked together at its end.
  const corked: Corkable[] = [];
  const uncorkAll = () => {
    for (const stream of corked) stream.uncork();
    corked.length = 0;
  };

  function corkConnection(connection: Connection | undefined): void {
    const stream = connection?.status === 'ready' ? connection.stream : undefined;
    if (stream === undefined || !stream.writable || corked.includes(stream)) return;
    stream.cork();
    corked.push(stream);
    if (corked.length === 1) process.nextTick(uncorkAll);
  }

  function corkNode(node: string | undefined): void {
    if (!isCluster) {
      corkConnection(client as unknown as Connection);
      return;
    }
    if (node === undefined) return;
    const pool = (client as unknown as ClusterInternals).connectionPool;
    corkConnection(pool?.getInstanceByKey?.(node) as Connection | undefined);
  }

  return {
    corkNode,
    cork(key) {
      if (!isCluster) corkConnection(client as unknown as Connection);
      else corkNode((client as unknown as ClusterInternals).slots[calculateSlot(key)]?.[0]);
    },
  };
}
