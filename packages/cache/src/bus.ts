import { Cluster, type Redis } from 'ioredis';
import type { Instruments } from './instruments.js';
import type { KeyLayout } from './keys.js';
import type { RedisIo } from './redis-io.js';

/*
 * The L1 invalidation bus: Redis pub/sub on a connection the cache opens itself (`redis.duplicate()`), ended by
 * close(). Every set, delete, tag invalidation or clear publishes what changed; other instances evict it from their
 * L1. Pub/sub delivers at most once, so the bus also watches itself:
 *   - a heartbeat goes out every `heartbeatIntervalMs` on a channel only this instance listens to, through the
 *     command connection, and must come back through the subscriber: proof that the whole path delivers;
 *   - a closed subscriber connection, a subscriber that ioredis moved to another cluster node, or a heartbeat that
 *     came back out of sequence is a gap: messages may have been lost then.
 * The L1 trusts an entry only while the bus is confirmed (a heartbeat came back within `toleranceMs`), and an entry
 * read before a gap only until `toleranceMs` after the gap began. So a missed invalidation is served from L1 for at
 * most `toleranceMs` plus one heartbeat interval.
 */

/** The parts of an ioredis client (and of a Cluster's subscriber) that hold the process open. */
interface BusHandles {
  stream?: { unref?(): void };
  slotsTimer?: { unref?(): void } | null;
  subscriber?: { getInstance?(): { stream?: { unref?(): void } } | undefined };
}

/** Message kinds: k = keys, t = tags, c = clear (and pattern deletes). */
export type BusKind = 'k' | 't' | 'c';

export interface BusHandlers {
  onKeys(keys: string[]): void;
  onTags(tags: string[]): void;
  onClear(): void;
  /**
   * A gap: in-flight reads must not fill the L1 (they may have missed an invalidation). `afterConfirmation`: the bus
   * had delivered before, so a running getOrSet may have missed a message it would have seen; before the first
   * confirmation nothing relied on the bus yet (a cluster subscriber's connection setup can look like a gap).
   */
  onGap(afterConfirmation: boolean): void;
}

export interface BusOptions {
  heartbeatIntervalMs: number;
  toleranceMs: number;
  logger: { warn(message: string): void };
}

const VERSION = '1';
/** Items per message: a large deleteMany is split so no message grows past a few hundred KiB. */
const ITEMS_PER_MESSAGE = 1000;
/** Items kept for a publish retry; past this the retry is a clear of every L1. */
const RETRY_ITEMS_MAX = 5000;

export class InvalidationBus {
  /** Incremented at every gap; L1 entries remember the generation they were read under. */
  generation = 0;
  /** When each past generation ended (performance.now()). */
  private readonly gapAt = new Map<number, number>();
  /** When the last heartbeat came back (performance.now()); -Infinity until the first. */
  private confirmedAt = Number.NEGATIVE_INFINITY;
  /** Whether a heartbeat ever came back. */
  private everConfirmed = false;
  private subscriber: Redis | Cluster | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private heartbeatSeq = 0;
  private lastSeqSeen = 0;
  private subscriberInstance: unknown;
  private closed = false;
  private awaitingConfirmation = false;
  private pending = { keys: new Set<string>(), tags: new Set<string>(), clear: false, scheduled: false };
  private readonly heartbeatChannel: string;
  /** An invalidation publish failed and was not yet followed by one that went through (one warning per streak). */
  private publishFailing = false;

  constructor(
    private readonly client: Redis | Cluster,
    private readonly io: RedisIo,
    private readonly layout: KeyLayout,
    private readonly instanceId: string,
    private readonly handlers: BusHandlers,
    private readonly instruments: Instruments,
    private readonly options: BusOptions,
  ) {
    this.heartbeatChannel = layout.heartbeatChannel(instanceId);
  }

  /** Opens the subscriber connection and starts the heartbeat. Never throws: a bus that is down only disables L1. */
  start(): void {
    const subscriber = this.client.duplicate() as Redis | Cluster;
    this.subscriber = subscriber;
    subscriber.on('error', () => {
      // Connection errors show up as closes and missing heartbeats; ioredis needs a listener to not crash.
    });
    subscriber.on('close', () => this.gap('closed'));
    subscriber.on('ready', () => this.unrefHandles());
    subscriber.on('message', (channel: string, message: string) => this.receive(channel, message));
    (subscriber as Redis)
      .subscribe(this.layout.busChannel, this.heartbeatChannel)
      // Confirm at once rather than at the next interval: the L1 is off until the first heartbeat comes back.
      .then(() => this.beat())
      .catch((error: Error) => {
        if (!this.closed) this.options.logger.warn(`[@austa/cache] bus subscribe failed: ${error.message}`);
      });
    this.heartbeatTimer = setInterval(() => this.beat(), this.options.heartbeatIntervalMs);
    this.heartbeatTimer.unref();
    void this.beat();
  }

  /** Whether an L1 entry read under `generation` may be served at `now`. */
  trusts(generation: number, now: number): boolean {
    if (now - this.confirmedAt > this.options.toleranceMs) return false;
    if (generation === this.generation) return true;
    const endedAt = this.gapAt.get(generation);
    return endedAt !== undefined && now - endedAt <= this.options.toleranceMs;
  }

  /** Whether the bus is confirmed right now (entries stored now are trusted until their expiry). */
  confirmed(now: number): boolean {
    return now - this.confirmedAt <= this.options.toleranceMs;
  }

  publish(kind: BusKind, items: readonly string[] = []): void {
    if (this.closed) return;
    const pending = this.pending;
    if (kind === 'c') pending.clear = true;
    else {
      const target = kind === 'k' ? pending.keys : pending.tags;
      for (const item of items) target.add(item);
    }
    if (!pending.scheduled) {
      pending.scheduled = true;
      // Coalesce what one tick of the event loop changed into one message per kind.
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    const { keys, tags, clear } = this.pending;
    this.pending = { keys: new Set(), tags: new Set(), clear: false, scheduled: false };
    if (clear) this.send('c', []);
    for (const [kind, set] of [
      ['k', keys],
      ['t', tags],
    ] as const) {
      const items = [...set];
      for (let i = 0; i < items.length; i += ITEMS_PER_MESSAGE) {
        this.send(kind, items.slice(i, i + ITEMS_PER_MESSAGE));
      }
    }
  }

  private send(kind: BusKind, items: string[]): void {
    // Items never contain control characters (keys and tags are validated), so a newline separates them.
    const message = `${VERSION}|${this.instanceId}|${Date.now()}|${kind}|${items.join('\n')}`;
    this.instruments.invalidationMessage('sent');
    this.io.send('publish', [this.layout.busChannel, message], undefined).then(
      () => {
        this.publishFailing = false;
      },
      (error: Error) => {
        if (this.closed) return;
        if (!this.publishFailing) {
          this.options.logger.warn(
            `[@austa/cache] invalidation publish failed (sent again until it goes through): ${error.message}`,
          );
        }
        this.publishFailing = true;
        this.retry(kind, items);
      },
    );
  }

  /**
   * A lost invalidation would let other instances serve the old value from their L1 until it expires there: their
   * bus stays confirmed, only our connection failed. And the change it announces may have happened even though its
   * write reported a failure (a timed-out or maybe-applied SET). So it is queued again, merged with later ones, and
   * sent every heartbeat interval until Redis takes it or the cache is closed. A backlog past a few thousand items
   * goes as one "clear": cheaper, and just as safe.
   */
  private retry(kind: BusKind, items: string[]): void {
    const pending = this.pending;
    if (kind === 'c' || pending.keys.size + pending.tags.size + items.length > RETRY_ITEMS_MAX) {
      pending.clear = true;
      pending.keys.clear();
      pending.tags.clear();
    } else if (!pending.clear) {
      const target = kind === 'k' ? pending.keys : pending.tags;
      for (const item of items) target.add(item);
    }
    if (!pending.scheduled) {
      pending.scheduled = true;
      setTimeout(() => this.flush(), this.options.heartbeatIntervalMs).unref();
    }
  }

  /**
   * The bus must not keep the process alive: an app that quits its own client and never calls close() still exits.
   * Its sockets (and a cluster subscriber's slot-refresh timer) are unref'd; new ones after a reconnect by the next
   * heartbeat.
   */
  private unrefHandles(): void {
    const client = this.subscriber;
    if (client === undefined) return;
    const handles = client as unknown as BusHandles;
    handles.stream?.unref?.();
    handles.slotsTimer?.unref?.();
    if (client instanceof Cluster) {
      for (const node of client.nodes('all')) (node as unknown as BusHandles).stream?.unref?.();
      handles.subscriber?.getInstance?.()?.stream?.unref?.();
    }
  }

  private beat(): void {
    if (this.closed) return;
    this.unrefHandles();
    this.checkSubscriberIdentity();
    if (!this.awaitingConfirmation && performance.now() - this.confirmedAt > this.options.toleranceMs) {
      if (this.confirmedAt !== Number.NEGATIVE_INFINITY) this.gap('silent');
    }
    const seq = ++this.heartbeatSeq;
    this.io.send('publish', [this.heartbeatChannel, `${seq}`], undefined).catch(() => {
      // A lost heartbeat is the signal; nothing else to do.
    });
  }

  /** ioredis moves a Cluster's subscriber to another node when its node goes away: messages in between are lost. */
  private checkSubscriberIdentity(): void {
    if (!(this.subscriber instanceof Cluster)) return;
    const current = (
      this.subscriber as unknown as { subscriber?: { getInstance?: () => unknown } }
    ).subscriber?.getInstance?.();
    if (this.subscriberInstance !== undefined && current !== this.subscriberInstance)
      this.gap('resubscribed');
    this.subscriberInstance = current;
  }

  private receive(channel: string, message: string): void {
    const now = performance.now();
    if (channel === this.heartbeatChannel) {
      const seq = Number(message);
      if (this.lastSeqSeen !== 0 && seq !== this.lastSeqSeen + 1 && seq > this.lastSeqSeen) this.gap('gap');
      if (seq > this.lastSeqSeen) this.lastSeqSeen = seq;
      if (this.awaitingConfirmation) {
        this.awaitingConfirmation = false;
        this.endGeneration(Number.NEGATIVE_INFINITY);
      }
      this.confirmedAt = now;
      this.everConfirmed = true;
      return;
    }
    const first = message.indexOf('|');
    const second = message.indexOf('|', first + 1);
    const third = message.indexOf('|', second + 1);
    const fourth = message.indexOf('|', third + 1);
    if (first < 0 || fourth < 0 || message.slice(0, first) !== VERSION) return;
    if (message.slice(first + 1, second) === this.instanceId) return;
    const sentAt = Number(message.slice(second + 1, third));
    const kind = message.slice(third + 1, fourth);
    const body = message.slice(fourth + 1);
    if (kind === 'c') this.handlers.onClear();
    else if (kind === 'k') this.handlers.onKeys(body.split('\n'));
    else if (kind === 't') this.handlers.onTags(body.split('\n'));
    else return;
    this.instruments.invalidationMessage('received', (Date.now() - sentAt) / 1000);
  }

  private gap(reason: 'closed' | 'silent' | 'gap' | 'resubscribed'): void {
    if (this.closed) return;
    const now = performance.now();
    // Messages may have been lost since the last confirmation: entries read before are trusted until then plus the
    // tolerance (trusts() also stops everything once confirmations stop).
    this.endGeneration(this.confirmedAt === Number.NEGATIVE_INFINITY ? now : Math.min(now, this.confirmedAt));
    // After a closed or silent connection, entries read while it was down may have missed messages too: they are
    // dropped when the bus confirms again. A sequence gap is detected on a heartbeat that confirms at once.
    if (reason !== 'gap') this.awaitingConfirmation = true;
    this.lastSeqSeen = 0;
    this.instruments.busDrop(reason);
  }

  private endGeneration(trustedFrom: number): void {
    this.gapAt.set(this.generation, trustedFrom);
    this.generation++;
    for (const generation of this.gapAt.keys()) {
      if (this.gapAt.size <= 64) break;
      this.gapAt.delete(generation);
    }
    this.handlers.onGap(this.everConfirmed);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    if (subscriber === undefined) return;
    // quit() waits for the server; a dead server must not hold close() up.
    await Promise.race([
      subscriber.quit().catch(() => undefined),
      new Promise((resolve) => setTimeout(resolve, 1000).unref()),
    ]);
    subscriber.disconnect();
  }
}
