import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import { message } from './health.js';
import type { Logger } from './pubsub.js';
import { refreshSlotMap } from './slot-map.js';

type SubscriberState = {
  condition?: { subscriber?: { set?: { ssubscribe?: Record<string, true> } } | false };
};

interface Shard {
  connection: Redis;
  channels: Set<string>;
}

export interface ShardedChannelsOptions {
  cluster: Cluster;
  /** Opens a subscriber connection to a master (`host:port`, as the slot map names it). */
  open(address: string): Redis;
  onMessage(channel: Buffer, message: Buffer): void;
  logger: Logger;
  /** How often the local subscription state is checked. Default 1000. */
  checkIntervalMs?: number;
}

/** Upper bound on one slot-map refresh; the next check tries again. */
const REFRESH_TIMEOUT_MS = 5000;

/*
 * A sharded channel lives on the master that owns its slot. When the slot migrates, the server drops the
 * subscription with an unsolicited SUNSUBSCRIBE (which ioredis reports as a "Command queue state error"), and after a
 * failover the connection points at a demoted or dead node; ioredis follows neither, so the channel goes silent while
 * the connection looks ready. Here every channel is kept on the owner from a refreshed slot map: on any error, close
 * or MOVED from a subscriber connection, and whenever the periodic local check finds a channel missing from its
 * connection's subscription set, the router refreshes the map and moves or re-subscribes the channels.
 */
export class ShardedChannels {
  private readonly shards = new Map<string, Shard>();
  private readonly ownerOf = new Map<string, string>();
  private chain: Promise<unknown> = Promise.resolve();
  private reconcileQueued = false;
  private closed = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: ShardedChannelsOptions) {
    this.timer = setInterval(() => this.check(), options.checkIntervalMs ?? 1000);
    this.timer.unref();
  }

  connections(): Redis[] {
    return [...this.shards.values()].map((shard) => shard.connection);
  }

  add(channel: string): Promise<unknown> {
    return this.serial(async () => {
      const address = await this.owner(channel);
      await this.subscribeOn(address, channel);
    });
  }

  remove(channel: string): Promise<unknown> {
    return this.serial(async () => {
      const address = this.ownerOf.get(channel);
      this.ownerOf.delete(channel);
      if (address !== undefined) await this.unsubscribeFrom(address, channel);
    });
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const shard of this.shards.values()) shard.connection.disconnect();
    this.shards.clear();
    this.ownerOf.clear();
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.chain.then(work, work);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async owner(channel: string): Promise<string> {
    const slot = calculateSlot(channel);
    let address = this.options.cluster.slots[slot]?.[0];
    if (address === undefined) {
      await refreshSlotMap(this.options.cluster, REFRESH_TIMEOUT_MS);
      address = this.options.cluster.slots[slot]?.[0];
    }
    if (address === undefined) throw new Error(`no master serves slot ${slot} of this channel`);
    return address;
  }

  private shard(address: string): Shard {
    let shard = this.shards.get(address);
    if (shard === undefined) {
      const connection = this.options.open(address);
      connection.on('smessageBuffer', (channel: Buffer, payload: Buffer) =>
        this.options.onMessage(channel, payload),
      );
      // Each of these means a channel may have lost its subscription or its owner.
      for (const event of ['error', 'close', 'moved', 'ready'] as const) {
        connection.on(event, () => this.queueReconcile());
      }
      shard = { connection, channels: new Set() };
      this.shards.set(address, shard);
    }
    return shard;
  }

  private async subscribeOn(address: string, channel: string): Promise<void> {
    const shard = this.shard(address);
    shard.channels.add(channel);
    this.ownerOf.set(channel, address);
    await shard.connection.ssubscribe(channel);
  }

  private async unsubscribeFrom(address: string, channel: string): Promise<void> {
    const shard = this.shards.get(address);
    if (shard === undefined) return;
    shard.channels.delete(channel);
    if (shard.channels.size === 0) {
      this.shards.delete(address);
      shard.connection.disconnect();
      return;
    }
    if (shard.connection.status === 'ready')
      await shard.connection.sunsubscribe(channel).catch(() => undefined);
  }

  private subscribed(shard: Shard, channel: string): boolean {
    const subscriber = (shard.connection as unknown as SubscriberState).condition?.subscriber;
    return (
      shard.connection.status === 'ready' &&
      subscriber !== false &&
      subscriber?.set?.ssubscribe?.[channel] === true
    );
  }

  /** Cheap and local: runs every interval and only talks to Redis when a subscription was lost. */
  private check(): void {
    for (const [channel, address] of this.ownerOf) {
      const shard = this.shards.get(address);
      if (shard === undefined || !this.subscribed(shard, channel)) {
        this.queueReconcile();
        return;
      }
    }
  }

  private queueReconcile(): void {
    if (this.reconcileQueued || this.closed || this.ownerOf.size === 0) return;
    this.reconcileQueued = true;
    void this.serial(async () => {
      this.reconcileQueued = false;
      await this.reconcile();
    }).catch((error: unknown) => {
      this.options.logger.warn(
        '@austa/redis-cluster: sharded subscriptions could not be restored yet; retrying',
        {
          error: message(error),
        },
      );
    });
  }

  private async reconcile(): Promise<void> {
    if (this.closed) return;
    await refreshSlotMap(this.options.cluster, REFRESH_TIMEOUT_MS);
    const work: Array<Promise<void>> = [];
    for (const [channel, current] of [...this.ownerOf]) {
      const expected = this.options.cluster.slots[calculateSlot(channel)]?.[0];
      if (expected === undefined) continue;
      if (expected !== current) {
        work.push(
          (async () => {
            await this.subscribeOn(expected, channel);
            await this.unsubscribeFrom(current, channel);
          })(),
        );
      } else {
        const shard = this.shards.get(current);
        if (shard !== undefined && shard.connection.status === 'ready' && !this.subscribed(shard, channel)) {
          work.push(shard.connection.ssubscribe(channel).then(() => undefined));
        }
      }
    }
    await Promise.all(work);
  }
}
