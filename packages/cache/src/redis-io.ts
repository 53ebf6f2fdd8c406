import { createHash } from 'node:crypto';
import { type TickCorker, tickCorker, withoutCommandArguments } from '@austa/redis-cluster';
import calculateSlot from 'cluster-key-slot';
import { Cluster, Command, type Redis } from 'ioredis';
import { Breaker } from './breaker.js';
import { CacheUnavailableError } from './errors.js';

/*
 * Every command the cache sends goes through here, as an ioredis `Command` it builds itself, with its own deadline.
 * Why not `client.get()`: the cache must bound every call (nothing hangs, whatever the client's options), and a
 * command whose caller was told it timed out must never run later. ioredis keeps commands in its offline queue, in
 * the cluster's retry queue and (autoResendUnfulfilledCommands) re-sends unanswered ones after a reconnect, so a SET
 * that timed out could land seconds later and overwrite a newer value. When our deadline passes, the command is
 * rejected and its wire form is replaced by PING: any later send by ioredis is then a harmless PING whose reply is
 * ignored. A command already written to a server that then stops answering (a paused node) may still run when it
 * resumes; no client can take back bytes it has sent.
 *
 * The client is never patched: only the Command objects we create are touched.
 */

export type RedisClient = Redis | Cluster;
export type Arg = string | Buffer | number;

const PING_WRITABLE = '*1\r\n$4\r\nPING\r\n';
const TIMEOUT = 'Command timed out';

/** Hooks for metrics: one call per command with its outcome. */
export type CommandObserver = (name: string, seconds: number, error: unknown) => void;

export interface RedisIoOptions {
  timeoutMs: number;
  failureThreshold: number;
  openMs: number;
  /** Called when a shard's breaker opens or closes. */
  onBreaker?: (open: boolean) => void;
  observe?: CommandObserver | undefined;
}

/** A Lua script sent with EVALSHA, falling back to EVAL after NOSCRIPT (a restarted or failed-over server). */
export class LuaScript {
  readonly sha: string;
  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}

/** Errors that say the shard is unhealthy (as opposed to a bad command): they count against the breaker. */
function isShardFailure(error: Error): boolean {
  if (error.name === 'ReplyError') {
    return /^(CLUSTERDOWN|LOADING|MASTERDOWN|TRYAGAIN|BUSY)/.test(error.message);
  }
  return true;
}

function reasonOf(error: Error): 'timeout' | 'connection' | 'redis_error' {
  if (error.message === TIMEOUT) return 'timeout';
  return error.name === 'ReplyError' ? 'redis_error' : 'connection';
}

/** Our deadline and settled flag ride on the Command itself: a Set of wrappers cost more than the GET it timed. */
interface Pending {
  austaDeadline: number;
  austaSettled: boolean;
  /** Position in `pending` while unsettled. */
  austaIndex: number;
}

const passReply = <T>(reply: T): T => reply;
const rethrow = (error: Error): never => {
  throw error;
};

/** Rejects a command as timed out; from now on, whatever ioredis still holds of it is a PING. */
function expire(command: Command): void {
  (command as unknown as { toWritable: () => string }).toWritable = () => PING_WRITABLE;
  if (!command.isResolved) command.reject(new Error(TIMEOUT));
}

export class RedisIo {
  /**
   * The commands the cache sends in one tick leave in one write per connection instead of one syscall each: that
   * halved the client CPU of a GET and more than doubled throughput at 100 callers in flight in our measurements.
   */
  private readonly corker: TickCorker;
  /**
   * Commands in flight, unordered. A settled command leaves at once (the last one takes its place): kept until the
   * next sweep, tens of thousands of answered commands outlived the young generation and the garbage collector's
   * copying of them was the biggest cost of a hit in profiles.
   */
  private pending: Array<Command & Pending> = [];
  private sweeper: NodeJS.Timeout | undefined;
  readonly isCluster: boolean;
  private readonly standaloneBreaker: Breaker;
  private readonly breakers = new Map<string, Breaker>();
  private readonly observe: CommandObserver | undefined;
  private openBreakers = 0;

  constructor(
    readonly client: RedisClient,
    private readonly options: RedisIoOptions,
  ) {
    this.isCluster = client instanceof Cluster;
    this.corker = tickCorker(client);
    this.standaloneBreaker = new Breaker(options.failureThreshold, options.openMs);
    this.observe = options.observe;
  }

  get timeoutMs(): number {
    return this.options.timeoutMs;
  }

  /** Number of shards whose breaker is open now. */
  get breakersOpen(): number {
    return this.openBreakers;
  }

  /** The master the client's slot map names for `key` (cluster), or undefined. */
  private nodeOf(key: string | Buffer | undefined): string | undefined {
    if (!this.isCluster || key === undefined) return undefined;
    const slots = (this.client as unknown as { slots: Array<string[] | undefined> }).slots;
    return slots[calculateSlot(key)]?.[0];
  }

  /** The breaker of the shard serving `key`: on a cluster, the master the client's slot map names. */
  private breakerFor(key: string | Buffer | undefined, node = this.nodeOf(key)): Breaker {
    if (!this.isCluster || key === undefined) return this.standaloneBreaker;
    if (node === undefined) node = 'unknown';
    let breaker = this.breakers.get(node);
    if (breaker === undefined) {
      breaker = new Breaker(this.options.failureThreshold, this.options.openMs);
      this.breakers.set(node, breaker);
    }
    return breaker;
  }

  private noteBreaker(breaker: Breaker, wasOpen: boolean): void {
    if (breaker.open === wasOpen) return;
    this.openBreakers += breaker.open ? 1 : -1;
    this.options.onBreaker?.(breaker.open);
  }

  /**
   * Sends one command and resolves with its reply, or rejects with `CacheUnavailableError` at the deadline (default:
   * now + timeoutMs), on a connection failure, or at once while the shard's breaker is open. `key` picks the shard.
   */
  send<T>(
    name: string,
    args: Arg[],
    key: string | undefined,
    buffers = false,
    deadline?: number,
  ): Promise<T> {
    return this.call<T, T>(name, args, key, buffers, deadline, passReply, rethrow);
  }

  /**
   * `send` with the caller's continuation run in the same promise reaction: `onReply` gets the reply, `onError` the
   * `CacheUnavailableError` (also for an open breaker). A hit then costs one promise beyond ioredis' own instead of
   * one per layer, which showed in profiles of GET at 100 callers in flight as garbage-collector time.
   */
  call<T, R>(
    name: string,
    args: Arg[],
    key: string | undefined,
    buffers: boolean,
    deadline: number | undefined,
    onReply: (reply: T) => R | PromiseLike<R>,
    onError: (error: CacheUnavailableError) => R | PromiseLike<R>,
  ): Promise<R> {
    let slot: number | undefined;
    let node: string | undefined;
    let breaker = this.standaloneBreaker;
    if (this.isCluster && key !== undefined) {
      slot = calculateSlot(key);
      node = (this.client as unknown as { slots: Array<string[] | undefined> }).slots[slot]?.[0];
      breaker = this.breakerFor(key, node);
    }
    const now = performance.now();
    if (!breaker.allow(now)) {
      return Promise.reject(
        new CacheUnavailableError(
          'Redis is unavailable: the circuit breaker is open for this shard.',
          'circuit_open',
        ),
      ).then(undefined, onError);
    }
    const command = new Command(name, args, buffers ? {} : { replyEncoding: 'utf8' }) as Command & Pending;
    // ioredis would find the key and hash it again (its key-index lookup showed in profiles); we already did.
    if (slot !== undefined) (command as unknown as { slot: number }).slot = slot;
    command.austaDeadline = deadline ?? now + this.options.timeoutMs;
    command.austaSettled = false;
    command.austaIndex = this.pending.length;
    this.pending.push(command);
    if (this.sweeper === undefined) this.armSweeper();
    const settle = (error: Error | undefined) => {
      if (!command.austaSettled) this.unpend(command);
      const wasOpen = breaker.open;
      if (error === undefined || !isShardFailure(error)) {
        if (wasOpen || breaker.failing) breaker.success();
      } else breaker.failure(performance.now());
      if (wasOpen !== breaker.open) this.noteBreaker(breaker, wasOpen);
      if (this.observe !== undefined) this.observe(name, (performance.now() - now) / 1000, error);
    };
    const promise = command.promise.then(
      (value) => {
        settle(undefined);
        return onReply(value as T);
      },
      (error: Error) => {
        settle(error);
        return onError(
          new CacheUnavailableError(`Redis ${name.toUpperCase()} failed: ${error.message}`, reasonOf(error), {
            cause: withoutCommandArguments(error),
          }),
        );
      },
    );
    try {
      this.corker.corkNode(node);
      (this.client as unknown as { sendCommand(command: Command): unknown }).sendCommand(command);
    } catch (error) {
      command.reject(error as Error);
    }
    return promise;
  }

  /**
   * One timer for every command in flight (rather than one per command): it rejects the commands whose deadline
   * passed and turns whatever ioredis still holds of them into PING.
   */
  private armSweeper(): void {
    if (this.sweeper !== undefined) return;
    const period = Math.max(5, Math.min(50, Math.floor(this.options.timeoutMs / 10)));
    this.sweeper = setInterval(() => {
      const now = performance.now();
      // Backwards: expiring a command moves the last one into its place, which was already looked at.
      for (let index = this.pending.length - 1; index >= 0; index--) {
        const command = this.pending[index] as Command & Pending;
        if (command.austaDeadline <= now) {
          this.unpend(command);
          expire(command);
        }
      }
      if (this.pending.length === 0) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
      }
    }, period);
    this.sweeper.unref();
  }

  /** Takes a command out of `pending` (swap with the last): it is settled or expired, and no longer ours to watch. */
  private unpend(command: Command & Pending): void {
    command.austaSettled = true;
    const last = this.pending.pop() as Command & Pending;
    if (last !== command) {
      this.pending[command.austaIndex] = last;
      last.austaIndex = command.austaIndex;
    }
  }

  /** Runs a Lua script: EVALSHA, then EVAL once if the server does not know the script. */
  async eval<T>(script: LuaScript, keys: Arg[], args: Arg[], buffers = false, deadline?: number): Promise<T> {
    const end = deadline ?? performance.now() + this.options.timeoutMs;
    const first = keys[0];
    const key = first === undefined ? undefined : typeof first === 'string' ? first : String(first);
    try {
      return await this.send<T>('evalsha', [script.sha, keys.length, ...keys, ...args], key, buffers, end);
    } catch (error) {
      const cause = (error as { cause?: unknown }).cause;
      if (!(cause instanceof Error) || !cause.message.includes('NOSCRIPT')) throw error;
      return this.send<T>('eval', [script.source, keys.length, ...keys, ...args], key, buffers, end);
    }
  }
}
