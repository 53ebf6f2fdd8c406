import type { Cluster, Redis } from 'ioredis';
import { RedisArgumentError } from './errors.js';
import type { PubSubKind, RedisInstruments } from './instrumentation.js';
import { ShardedChannels } from './sharded-channels.js';
import { assertName } from './validation.js';

/** Receives a message. A handler that throws or rejects is counted and logged; the subscription stays. */
export type MessageHandler = (message: string, channel: string) => void | Promise<void>;
/** Receives a message as the bytes that were published (`{ buffers: true }`): for encrypted or compressed payloads. */
export type BufferMessageHandler = (message: Buffer, channel: string) => void | Promise<void>;
/** Receives a message that matched a pattern subscription. */
export type PatternMessageHandler = (
  message: string,
  channel: string,
  pattern: string,
) => void | Promise<void>;
/** Receives a message that matched a pattern subscription, as bytes (`{ buffers: true }`). */
export type BufferPatternMessageHandler = (
  message: Buffer,
  channel: string,
  pattern: string,
) => void | Promise<void>;
/** Removes this one subscription; the last one of a channel also unsubscribes it on the server. */
export type Unsubscribe = () => Promise<void>;

export interface SubscribeOptions {
  /** Hand the handler the published bytes as a Buffer instead of a UTF-8 string. Default `false`. */
  buffers?: boolean;
}

export interface Logger {
  warn(message: string, details?: Record<string, unknown>): void;
  error(message: string, details?: Record<string, unknown>): void;
}

type Connection = Redis | Cluster;
type AnyHandler = (message: never, channel: string, pattern: string) => void | Promise<void>;

interface Subscription {
  handler: AnyHandler;
  buffers: boolean;
}

/** Where one family of subscriptions lives on the server. */
interface Backend {
  add(channel: string): Promise<unknown>;
  remove(channel: string): Promise<unknown>;
}

interface Family {
  kind: PubSubKind;
  subscriptions: Map<string, Set<Subscription>>;
  /** Server-side subscribe in flight per channel, so a second subscriber waits for the same reply. */
  pending: Map<string, Promise<unknown>>;
}

export interface PubSubOptions {
  /** Creates the connection for a family on first use. Subscriber connections never send other commands. */
  connect: (family: 'classic' | 'sharded') => Connection;
  /** On a cluster: one connection per master for sharded channels, following slot moves and failovers. */
  sharded?: { cluster: Cluster; open(address: string): Redis };
  instruments: RedisInstruments | undefined;
  logger: Logger;
  /** Log a failed handler's error message too. Off: messages often quote the payload (a JSON.parse error does). */
  logHandlerErrorMessages: boolean;
  /**
   * A cluster's classic subscriber sits on one node chosen by ioredis; when that node hangs (paused, cut off) nothing
   * tells ioredis. It is PINGed every second and replaced when it does not answer within this bound.
   */
  livenessTimeoutMs: number;
}

type SubscriberHost = { subscriber?: { getInstance?(): Redis | null } };

function commandBackend(
  connection: () => Connection,
  subscribe: 'subscribe' | 'psubscribe' | 'ssubscribe',
  unsubscribe: 'unsubscribe' | 'punsubscribe' | 'sunsubscribe',
): Backend {
  return {
    add: (channel) =>
      (connection()[subscribe] as (c: string) => Promise<unknown>).call(connection(), channel),
    remove: (channel) =>
      (connection()[unsubscribe] as (c: string) => Promise<unknown>).call(connection(), channel),
  };
}

/**
 * Keeps handlers per channel in memory and one server subscription per channel, on dedicated connections. ioredis
 * re-subscribes classic channels after a reconnect or failover; sharded channels on a cluster are kept on the
 * master that owns their slot by `ShardedChannels`. The handler maps never live on a connection, so they survive.
 */
export class PubSub {
  private readonly families: Record<PubSubKind, Family> = {
    message: { kind: 'message', subscriptions: new Map(), pending: new Map() },
    pmessage: { kind: 'pmessage', subscriptions: new Map(), pending: new Map() },
    smessage: { kind: 'smessage', subscriptions: new Map(), pending: new Map() },
  };
  private classic: Connection | undefined;
  private sharded: Connection | undefined;
  private shardedChannels: ShardedChannels | undefined;
  private liveness: NodeJS.Timeout | undefined;
  private readonly backends: Record<PubSubKind, Backend>;

  constructor(private readonly options: PubSubOptions) {
    const classic = () => this.classicConnection();
    this.backends = {
      message: commandBackend(classic, 'subscribe', 'unsubscribe'),
      pmessage: commandBackend(classic, 'psubscribe', 'punsubscribe'),
      smessage: options.sharded
        ? {
            add: (channel) => this.shardedRouter().add(channel),
            remove: (channel) => this.shardedRouter().remove(channel),
          }
        : commandBackend(() => this.shardedConnection(), 'ssubscribe', 'sunsubscribe'),
    };
  }

  connections(): Array<{ family: 'classic' | 'sharded'; connection: Connection }> {
    const list: Array<{ family: 'classic' | 'sharded'; connection: Connection }> = [];
    if (this.classic) list.push({ family: 'classic', connection: this.classic });
    if (this.sharded) list.push({ family: 'sharded', connection: this.sharded });
    for (const connection of this.shardedChannels?.connections() ?? [])
      list.push({ family: 'sharded', connection });
    return list;
  }

  counts(): { channels: number; patterns: number; shardChannels: number } {
    return {
      channels: this.families.message.subscriptions.size,
      patterns: this.families.pmessage.subscriptions.size,
      shardChannels: this.families.smessage.subscriptions.size,
    };
  }

  subscribe(
    kind: PubSubKind,
    channel: string,
    handler: AnyHandler,
    subscribeOptions: SubscribeOptions = {},
  ): Promise<Unsubscribe> {
    assertName(channel, kind === 'pmessage' ? 'pattern' : 'channel');
    if (typeof handler !== 'function') throw new RedisArgumentError('handler must be a function.');
    if (typeof subscribeOptions !== 'object' || subscribeOptions === null) {
      throw new RedisArgumentError('options must be an object such as { buffers: true }.');
    }
    const family = this.families[kind];
    const backend = this.backends[kind];
    let set = family.subscriptions.get(channel);
    let ready: Promise<unknown>;
    if (set === undefined) {
      set = new Set();
      family.subscriptions.set(channel, set);
      ready = backend.add(channel);
      family.pending.set(channel, ready);
      const clear = () => {
        if (family.pending.get(channel) === ready) family.pending.delete(channel);
      };
      ready.then(clear, clear);
    } else {
      ready = family.pending.get(channel) ?? Promise.resolve();
    }
    // Each call gets its own record, so subscribing the same function twice needs two unsubscribes.
    const subscription: Subscription = { handler, buffers: subscribeOptions.buffers === true };
    set.add(subscription);
    const subscriptions = set;
    const unsubscribe: Unsubscribe = async () => {
      if (!subscriptions.delete(subscription) || subscriptions.size > 0) return;
      if (family.subscriptions.get(channel) !== subscriptions) return;
      family.subscriptions.delete(channel);
      await backend.remove(channel);
    };
    return ready.then(
      () => unsubscribe,
      (error: unknown) => {
        subscriptions.delete(subscription);
        if (subscriptions.size === 0 && family.subscriptions.get(channel) === subscriptions) {
          family.subscriptions.delete(channel);
        }
        throw error;
      },
    );
  }

  async close(): Promise<void> {
    if (this.liveness !== undefined) clearInterval(this.liveness);
    for (const family of Object.values(this.families)) family.subscriptions.clear();
    const connections = [this.classic, this.sharded].filter((c): c is Connection => c !== undefined);
    this.classic = undefined;
    this.sharded = undefined;
    const router = this.shardedChannels;
    this.shardedChannels = undefined;
    // Subscriber connections have no replies worth waiting for.
    for (const connection of connections) connection.disconnect();
    router?.close();
  }

  private classicConnection(): Connection {
    if (this.classic === undefined) {
      const connection = this.options.connect('classic');
      connection.on('messageBuffer', (channel: Buffer, message: Buffer) =>
        this.dispatch('message', channel.toString(), channel, message, ''),
      );
      connection.on('pmessageBuffer', (pattern: string | Buffer, channel: Buffer, message: Buffer) => {
        const key = pattern.toString();
        this.dispatch('pmessage', key, channel, message, key);
      });
      this.classic = connection;
      if ((connection as unknown as SubscriberHost).subscriber !== undefined)
        this.watchClusterSubscriber(connection);
    }
    return this.classic;
  }

  private watchClusterSubscriber(connection: Connection): void {
    let checking = false;
    // A replacement can land on the hung node again: its connection then never becomes ready.
    let notReady: { instance: Redis; since: number } | undefined;
    this.liveness = setInterval(() => {
      const instance = (connection as unknown as SubscriberHost).subscriber?.getInstance?.();
      if (checking || instance === null || instance === undefined) return;
      if (this.families.message.subscriptions.size + this.families.pmessage.subscriptions.size === 0) return;
      if (instance.status !== 'ready') {
        if (notReady?.instance !== instance) notReady = { instance, since: performance.now() };
        else if (performance.now() - notReady.since > 2 * this.options.livenessTimeoutMs)
          instance.disconnect();
        return;
      }
      notReady = undefined;
      checking = true;
      let timer: NodeJS.Timeout | undefined;
      Promise.race([
        instance.ping().then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), this.options.livenessTimeoutMs);
        }),
      ])
        .catch(() => false)
        .then((alive) => {
          clearTimeout(timer);
          checking = false;
          // ioredis picks another node and re-subscribes when its subscriber connection ends.
          if (!alive) instance.disconnect();
        });
    }, 1000);
    this.liveness.unref();
  }

  private shardedConnection(): Connection {
    if (this.sharded === undefined) {
      const connection = this.options.connect('sharded');
      connection.on('smessageBuffer', (channel: Buffer, message: Buffer) =>
        this.dispatch('smessage', channel.toString(), channel, message, ''),
      );
      this.sharded = connection;
    }
    return this.sharded;
  }

  private shardedRouter(): ShardedChannels {
    const sharded = this.options.sharded;
    if (sharded === undefined) throw new Error('sharded routing is only used on a cluster');
    this.shardedChannels ??= new ShardedChannels({
      cluster: sharded.cluster,
      open: sharded.open,
      onMessage: (channel, message) => this.dispatch('smessage', channel.toString(), channel, message, ''),
      logger: this.options.logger,
    });
    return this.shardedChannels;
  }

  private dispatch(kind: PubSubKind, key: string, channel: Buffer, message: Buffer, pattern: string): void {
    const channelName = channel.toString();
    this.options.instruments?.pubsubMessage(kind, 'received', channelName);
    const subscriptions = this.families[kind].subscriptions.get(key);
    if (subscriptions === undefined) return;
    let text: string | undefined;
    for (const { handler, buffers } of subscriptions) {
      try {
        if (!buffers && text === undefined) text = message.toString();
        const payload = buffers ? message : text;
        const result = (handler as (m: unknown, c: string, p: string) => unknown)(
          payload,
          channelName,
          pattern,
        );
        if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
          (result as Promise<void>).then(undefined, (error: unknown) => this.handlerFailed(kind, error));
        }
      } catch (error) {
        this.handlerFailed(kind, error);
      }
    }
  }

  private handlerFailed(kind: PubSubKind, error: unknown): void {
    this.options.instruments?.pubsubHandlerError(kind);
    // Channel names and payloads can carry patient identifiers, and error messages often quote the payload (a
    // JSON.parse error does), so by default only the kind of error is logged.
    const details: Record<string, unknown> = {
      kind,
      error: error instanceof Error ? error.name : typeof error,
    };
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === 'string' || typeof code === 'number') details.code = code;
    if (this.options.logHandlerErrorMessages) {
      details.message = error instanceof Error ? error.message : String(error);
    }
    this.options.logger.error(
      '@austa/redis-cluster: a pub/sub handler failed; the subscription stays active',
      details,
    );
  }
}
