import { errorType, writeReplyErrorType } from './error-type.js';
import type { MongoInstruments, PoolSnapshot } from './instruments.js';

/*
 * Metrics come from the events the driver emits itself (command monitoring with `monitorCommands: true`, and the
 * connection pool's CMAP events): nothing in the driver is patched, so a driver upgrade cannot silently break them.
 * The listeners below only read the fields the driver documents for those events.
 */

/** The fields of `commandStarted` this package reads. */
export interface CommandStartedLike {
  requestId: number;
  commandName: string;
  command: Record<string, unknown>;
}

/** The fields of `commandSucceeded` this package reads. `duration` is in milliseconds. */
export interface CommandSucceededLike {
  requestId: number;
  commandName: string;
  duration: number;
  reply: unknown;
}

/** The fields of `commandFailed` this package reads. `duration` is in milliseconds. */
export interface CommandFailedLike {
  requestId: number;
  commandName: string;
  duration: number;
  failure: unknown;
}

/** Something that emits driver events: a `MongoClient`, or a fake in tests. */
export interface EventSource {
  // biome-ignore lint/suspicious/noExplicitAny: one listener type for every driver event.
  on(event: string, listener: (event: any) => void): unknown;
  // biome-ignore lint/suspicious/noExplicitAny: one listener type for every driver event.
  off(event: string, listener: (event: any) => void): unknown;
}

// Commands whose first field names the collection. Others (`ping`, `hello`, `configureFailPoint: '<name>'`,
// `getLog: 'global'`…) carry no collection, or a string that is not one.
const COLLECTION_COMMANDS = new Set([
  'find',
  'insert',
  'update',
  'delete',
  'findAndModify',
  'aggregate',
  'count',
  'distinct',
  'killCursors',
  'create',
  'drop',
  'createIndexes',
  'dropIndexes',
  'listIndexes',
  'collMod',
  'validate',
  'mapReduce',
]);
const WRITE_COMMANDS = new Set(['insert', 'update', 'delete']);

// Events can go missing (a listener attached while commands were in flight). Every map is capped, oldest out
// first, so a lost event can never grow memory without bound.
const MAX_IN_FLIGHT = 10_000;
const MAX_CHANGE_STREAM_CURSORS = 10_000;

const OPENS_CHANGE_STREAM = 1;
const POLLS_CHANGE_STREAM = 2;

interface Special {
  kind: typeof OPENS_CHANGE_STREAM | typeof POLLS_CHANGE_STREAM;
  cursor: string;
}

function cursorKey(id: unknown): string {
  if (id === null || id === undefined) return '0';
  return typeof id === 'object' ? String((id as { toString(): string }).toString()) : String(id);
}

function opensChangeStream(pipeline: unknown): boolean {
  if (!Array.isArray(pipeline) || pipeline.length === 0) return false;
  const first = pipeline[0] as Record<string, unknown> | null;
  return typeof first === 'object' && first !== null && first.$changeStream !== undefined;
}

function replyCursorId(reply: unknown): string {
  const cursor = (reply as { cursor?: { id?: unknown } } | null)?.cursor;
  return cursorKey(cursor?.id);
}

function evictOldest<K>(map: Map<K, unknown> | Set<K>, cap: number): void {
  if (map.size < cap) return;
  const oldest = map.keys().next();
  if (!oldest.done) map.delete(oldest.value);
}

// In-flight commands live in a ring indexed by requestId (the driver numbers requests from one counter), so the
// common case costs an array read and write; a request whose slot is taken goes to a capped Map instead.
const RING_SIZE = 1024;
const RING_MASK = RING_SIZE - 1;
// A slot holding a request this much older than a new one lost its completion event: reuse the slot.
const STALE_DISTANCE = 1_000_000;

/**
 * Turns command events into one observation per command. Commands are correlated by `requestId`: the started event
 * names the collection (the succeeded and failed events do not), and tells change-stream `aggregate`s apart. The
 * `getMore`s of change-stream cursors go to their own histogram: they wait up to `maxAwaitTimeMS` by design and
 * would otherwise drown the latency of real operations.
 */
export class CommandMetrics {
  private readonly ringIds = new Float64Array(RING_SIZE).fill(-1);
  private readonly ringCollections: string[] = new Array<string>(RING_SIZE).fill('');
  /** requestId → collection name, for requests whose ring slot was taken. */
  private readonly overflow = new Map<number, string>();
  /** requestId → what a change-stream command does; only change-stream commands are here. */
  private readonly special = new Map<number, Special>();
  /** Ids of open change-stream cursors, as decimal strings. */
  private readonly changeStreamCursors = new Set<string>();

  constructor(private readonly instruments: MongoInstruments) {}

  readonly started = (event: CommandStartedLike): void => {
    const name = event.commandName;
    const command = event.command;
    let collection = '';
    if (name === 'getMore') {
      const target = command.collection;
      if (typeof target === 'string') collection = target;
      if (this.changeStreamCursors.size > 0) {
        const cursor = cursorKey(command.getMore);
        if (this.changeStreamCursors.has(cursor)) {
          evictOldest(this.special, MAX_IN_FLIGHT);
          this.special.set(event.requestId, { kind: POLLS_CHANGE_STREAM, cursor });
        }
      }
    } else if (COLLECTION_COMMANDS.has(name)) {
      const target = command[name];
      if (typeof target === 'string') collection = target;
      if (name === 'aggregate' && opensChangeStream(command.pipeline)) {
        evictOldest(this.special, MAX_IN_FLIGHT);
        this.special.set(event.requestId, { kind: OPENS_CHANGE_STREAM, cursor: '' });
      } else if (
        name === 'killCursors' &&
        this.changeStreamCursors.size > 0 &&
        Array.isArray(command.cursors)
      ) {
        for (const id of command.cursors) this.changeStreamCursors.delete(cursorKey(id));
      }
    }
    this.remember(event.requestId, collection);
  };

  readonly succeeded = (event: CommandSucceededLike): void => {
    const collection = this.take(event.requestId);
    const seconds = event.duration / 1000;
    const special = this.special.size === 0 ? undefined : this.takeSpecial(event.requestId);
    if (special !== undefined) {
      if (special.kind === POLLS_CHANGE_STREAM) {
        // A cursor id of 0 in the reply means the server closed the cursor (after an invalidate, say).
        if (replyCursorId(event.reply) === '0') this.changeStreamCursors.delete(special.cursor);
        this.instruments.changeStreamPoll(collection, '', seconds);
        return;
      }
      const cursor = replyCursorId(event.reply);
      if (cursor !== '0') {
        evictOldest(this.changeStreamCursors, MAX_CHANGE_STREAM_CURSORS);
        this.changeStreamCursors.add(cursor);
      }
    }
    const name = event.commandName;
    const failed = WRITE_COMMANDS.has(name) ? writeReplyErrorType(event.reply) : '';
    this.instruments.command(name, collection, failed, seconds);
  };

  readonly failed = (event: CommandFailedLike): void => {
    const collection = this.take(event.requestId);
    const seconds = event.duration / 1000;
    const type = errorType(event.failure);
    const special = this.special.size === 0 ? undefined : this.takeSpecial(event.requestId);
    if (special?.kind === POLLS_CHANGE_STREAM) {
      // The driver resumes with a new cursor after a failed poll; this one is gone or about to be killed.
      this.changeStreamCursors.delete(special.cursor);
      this.instruments.changeStreamPoll(collection, type, seconds);
      return;
    }
    this.instruments.command(event.commandName, collection, type, seconds);
  };

  /** Open change-stream cursors known from command events, for tests and diagnostics. */
  get openChangeStreamCursors(): number {
    return this.changeStreamCursors.size;
  }

  attach(source: EventSource): () => void {
    source.on('commandStarted', this.started);
    source.on('commandSucceeded', this.succeeded);
    source.on('commandFailed', this.failed);
    return () => {
      source.off('commandStarted', this.started);
      source.off('commandSucceeded', this.succeeded);
      source.off('commandFailed', this.failed);
      this.ringIds.fill(-1);
      this.overflow.clear();
      this.special.clear();
      this.changeStreamCursors.clear();
    };
  }

  private remember(requestId: number, collection: string): void {
    const slot = requestId & RING_MASK;
    const held = this.ringIds[slot]!;
    if (held === -1 || Math.abs(requestId - held) > STALE_DISTANCE) {
      this.ringIds[slot] = requestId;
      this.ringCollections[slot] = collection;
      return;
    }
    evictOldest(this.overflow, MAX_IN_FLIGHT);
    this.overflow.set(requestId, collection);
  }

  private take(requestId: number): string {
    const slot = requestId & RING_MASK;
    if (this.ringIds[slot] === requestId) {
      this.ringIds[slot] = -1;
      return this.ringCollections[slot]!;
    }
    if (this.overflow.size === 0) return '';
    const collection = this.overflow.get(requestId);
    if (collection === undefined) return '';
    this.overflow.delete(requestId);
    return collection;
  }

  private takeSpecial(requestId: number): Special | undefined {
    const special = this.special.get(requestId);
    if (special !== undefined) this.special.delete(requestId);
    return special;
  }
}

/** The fields of CMAP events this package reads. `durationMS` exists on checkout events since driver 6.9. */
export interface PoolEventLike {
  address: string;
  connectionId?: number | string;
  reason?: string;
  durationMS?: number;
}

interface PoolState {
  ready: Set<number | string>;
  checkedOut: Set<number | string>;
}

/**
 * Turns connection pool (CMAP) events into pool metrics: connections by state (idle, used) per server, checkout
 * wait times, checkout failures by reason, and pool clears. Counts are kept per connection id, so a connection
 * closed while checked out is not counted twice.
 */
export class PoolMetrics {
  private readonly pools = new Map<string, PoolState>();

  constructor(private readonly instruments: MongoInstruments) {}

  private pool(address: string): PoolState {
    let pool = this.pools.get(address);
    if (pool === undefined) {
      pool = { ready: new Set(), checkedOut: new Set() };
      this.pools.set(address, pool);
    }
    return pool;
  }

  readonly connectionReady = (event: PoolEventLike): void => {
    if (event.connectionId !== undefined) this.pool(event.address).ready.add(event.connectionId);
  };

  readonly connectionClosed = (event: PoolEventLike): void => {
    const pool = this.pools.get(event.address);
    if (pool === undefined || event.connectionId === undefined) return;
    pool.ready.delete(event.connectionId);
    pool.checkedOut.delete(event.connectionId);
  };

  readonly connectionCheckedOut = (event: PoolEventLike): void => {
    if (event.connectionId !== undefined) this.pool(event.address).checkedOut.add(event.connectionId);
    if (typeof event.durationMS === 'number') this.instruments.poolWait(event.durationMS / 1000);
  };

  readonly connectionCheckedIn = (event: PoolEventLike): void => {
    if (event.connectionId !== undefined)
      this.pools.get(event.address)?.checkedOut.delete(event.connectionId);
  };

  readonly connectionCheckOutFailed = (event: PoolEventLike): void => {
    this.instruments.checkoutFailure(event.reason ?? 'unknown');
    if (typeof event.durationMS === 'number') this.instruments.poolWait(event.durationMS / 1000);
  };

  readonly connectionPoolCleared = (): void => {
    this.instruments.poolCleared();
  };

  readonly connectionPoolClosed = (event: PoolEventLike): void => {
    this.pools.delete(event.address);
  };

  snapshot(): PoolSnapshot[] {
    const snapshot: PoolSnapshot[] = [];
    for (const [serverAddress, pool] of this.pools) {
      const used = pool.checkedOut.size;
      snapshot.push({ serverAddress, used, idle: Math.max(0, pool.ready.size - used) });
    }
    return snapshot;
  }

  attach(source: EventSource): () => void {
    const listeners: Array<[string, (event: PoolEventLike) => void]> = [
      ['connectionReady', this.connectionReady],
      ['connectionClosed', this.connectionClosed],
      ['connectionCheckedOut', this.connectionCheckedOut],
      ['connectionCheckedIn', this.connectionCheckedIn],
      ['connectionCheckOutFailed', this.connectionCheckOutFailed],
      ['connectionPoolCleared', this.connectionPoolCleared],
      ['connectionPoolClosed', this.connectionPoolClosed],
    ];
    for (const [event, listener] of listeners) source.on(event, listener);
    const stopCollecting = this.instruments.onCollectPool(() => this.snapshot());
    return () => {
      for (const [event, listener] of listeners) source.off(event, listener);
      stopCollecting();
      this.pools.clear();
    };
  }
}
