import type { Cluster, Redis } from 'ioredis';
import { RedisArgumentError } from './errors.js';
import type { PubSubKind, RedisInstruments } from './instrumentation.js';
import { assertName } from './validation.js';

/** Receives a message. A handler that throws or rejects is counted and logged; the subscription stays. */
export type MessageHandler = (message: string, channel: string) => void | Promise<void>;
/** Receives a message that matched a pattern subscription. */
export type PatternMessageHandler = (
  message: string,
  channel: string,
  pattern: string,
) => void | Promise<void>;
/** Removes one handler; the last handler of a channel also unsubscribes it on the server. */
export type Unsubscribe = () => Promise<void>;

export interface Logger {
  warn(message: string, details?: Record<string, unknown>): void;
  error(message: string, details?: Record<string, unknown>): void;
}

type Connection = Redis | Cluster;
type AnyHandler = (message: string, channel: string, pattern: string) => void | Promise<void>;

interface Family {
  kind: PubSubKind;
  subscribe: 'subscribe' | 'psubscribe' | 'ssubscribe';
  unsubscribe: 'unsubscribe' | 'punsubscribe' | 'sunsubscribe';
  handlers: Map<string, Set<AnyHandler>>;
  pending: Map<string, Promise<unknown>>;
}

export interface PubSubOptions {
  /** Creates the connection for a family on first use. Subscriber connections never send other commands. */
  connect: (family: 'classic' | 'sharded') => Connection;
  instruments: RedisInstruments | undefined;
  logger: Logger;
}

/**
 * Keeps handlers per channel in memory and one server subscription per channel, on dedicated connections.
 * ioredis re-subscribes the server side after a reconnect or failover; the handler maps here survive that
 * because they never live on a connection.
 */
export class PubSub {
  private readonly families: Record<'message' | 'pmessage' | 'smessage', Family> = {
    message: {
      kind: 'message',
      subscribe: 'subscribe',
      unsubscribe: 'unsubscribe',
      handlers: new Map(),
      pending: new Map(),
    },
    pmessage: {
      kind: 'pmessage',
      subscribe: 'psubscribe',
      unsubscribe: 'punsubscribe',
      handlers: new Map(),
      pending: new Map(),
    },
    smessage: {
      kind: 'smessage',
      subscribe: 'ssubscribe',
      unsubscribe: 'sunsubscribe',
      handlers: new Map(),
      pending: new Map(),
    },
  };
  private classic: Connection | undefined;
  private sharded: Connection | undefined;

  constructor(private readonly options: PubSubOptions) {}

  connections(): Array<{ family: 'classic' | 'sharded'; connection: Connection }> {
    const list: Array<{ family: 'classic' | 'sharded'; connection: Connection }> = [];
    if (this.classic) list.push({ family: 'classic', connection: this.classic });
    if (this.sharded) list.push({ family: 'sharded', connection: this.sharded });
    return list;
  }

  counts(): { channels: number; patterns: number; shardChannels: number } {
    return {
      channels: this.families.message.handlers.size,
      patterns: this.families.pmessage.handlers.size,
      shardChannels: this.families.smessage.handlers.size,
    };
  }

  subscribe(kind: PubSubKind, channel: string, handler: AnyHandler): Promise<Unsubscribe> {
    assertName(channel, kind === 'pmessage' ? 'pattern' : 'channel');
    if (typeof handler !== 'function') throw new RedisArgumentError('handler must be a function.');
    const family = this.families[kind];
    const connection = this.connectionFor(kind);
    let handlers = family.handlers.get(channel);
    let ready: Promise<unknown>;
    if (handlers === undefined) {
      handlers = new Set();
      family.handlers.set(channel, handlers);
      ready = (connection[family.subscribe] as (c: string) => Promise<unknown>).call(connection, channel);
      family.pending.set(channel, ready);
      ready.then(
        () => family.pending.delete(channel),
        () => family.pending.delete(channel),
      );
    } else {
      ready = family.pending.get(channel) ?? Promise.resolve();
    }
    handlers.add(handler);
    const set = handlers;
    const unsubscribe: Unsubscribe = async () => {
      if (!set.delete(handler) || set.size > 0 || family.handlers.get(channel) !== set) return;
      family.handlers.delete(channel);
      await (connection[family.unsubscribe] as (c: string) => Promise<unknown>).call(connection, channel);
    };
    return ready.then(
      () => unsubscribe,
      async (error: unknown) => {
        set.delete(handler);
        if (set.size === 0 && family.handlers.get(channel) === set) family.handlers.delete(channel);
        throw error;
      },
    );
  }

  async close(): Promise<void> {
    for (const family of Object.values(this.families)) family.handlers.clear();
    const connections = [this.classic, this.sharded].filter((c): c is Connection => c !== undefined);
    this.classic = undefined;
    this.sharded = undefined;
    await Promise.all(
      connections.map(async (connection) => {
        try {
          await connection.quit();
        } catch {
          connection.disconnect();
        }
      }),
    );
  }

  private connectionFor(kind: PubSubKind): Connection {
    if (kind === 'smessage') {
      if (this.sharded === undefined)
        this.sharded = this.listen(this.options.connect('sharded'), ['smessage']);
      return this.sharded;
    }
    if (this.classic === undefined)
      this.classic = this.listen(this.options.connect('classic'), ['message', 'pmessage']);
    return this.classic;
  }

  private listen(connection: Connection, kinds: PubSubKind[]): Connection {
    for (const kind of kinds) {
      if (kind === 'pmessage') {
        connection.on('pmessage', (pattern: string, channel: string, message: string) =>
          this.dispatch('pmessage', pattern, channel, message, pattern),
        );
      } else {
        connection.on(kind, (channel: string, message: string) =>
          this.dispatch(kind, channel, channel, message, ''),
        );
      }
    }
    return connection;
  }

  private dispatch(kind: PubSubKind, key: string, channel: string, message: string, pattern: string): void {
    this.options.instruments?.pubsubMessage(kind, 'received', channel);
    const handlers = this.families[kind].handlers.get(key);
    if (handlers === undefined) return;
    for (const handler of handlers) {
      try {
        const result = handler(message, channel, pattern);
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
    // Channel names and messages can carry patient identifiers, so only the error itself is logged.
    this.options.logger.error(
      '@austa/redis-cluster: a pub/sub handler failed; the subscription stays active',
      {
        kind,
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      },
    );
  }
}
