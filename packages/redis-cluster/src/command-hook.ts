import { exists, hasFlag } from '@ioredis/commands';
import type { Cluster, Command, Redis } from 'ioredis';
import { connectionCorker } from './cork.js';
import { TIMEOUT_MESSAGE } from './error-type.js';
import { RedisClientClosedError, RedisMaybeAppliedError } from './errors.js';
import { type CommandTracker, isScriptCommand, NO_TIMER, recordPipeline } from './tracker.js';

/*
 * Every connection this package creates (the client, each cluster node connection, duplicates, subscribers) has its
 * `sendCommand` wrapped here, never ioredis' prototype. The wrapper enforces three rules ioredis does not:
 * - A command's time runs from the moment it is first issued, across offline queues, redirections and retries, and
 *   blocking commands (BLPOP, XREAD BLOCK, WAIT…) get their own block time plus `commandTimeoutMs`.
 * - A command whose caller was told it timed out is never sent afterwards: ioredis keeps such commands in offline
 *   queues and in the cluster's retry queue and sends them once a connection comes back, so a caller that retries
 *   would apply a write twice. Every later send of such a command is dropped here.
 * - Each command the caller issued is measured once, with the outcome the caller saw (see tracker.ts); pipelines
 *   and MULTI are measured as a whole when their final results are known, because a cluster re-sends them after
 *   MOVED, ASK or a closed connection.
 */

type InternalCommand = Command;
/** ioredis' own fields of a Command that this file reads: the per-command timer slot, and a pipeline's index. */
type CommandFields = { _commandTimeoutTimer?: unknown; pipelineIndex?: number };
const fields = (command: Command) => command as unknown as CommandFields;

/** The pseudo-stream an ioredis Pipeline passes to sendCommand; it counts one write per command. */
type PipelineStream = { isPipeline?: boolean; destination?: { redis?: unknown }; write(data: string): void };

type SendCommand = (command: Command, stream?: unknown, node?: unknown) => unknown;

/** ioredis' Pipeline, as far as this file reads and wraps it. */
interface PipelineInternals {
  promise: Promise<unknown>;
  sendCommand: (command: InternalCommand) => unknown;
  _transactions: number;
  _queue: Array<InternalCommand & { inTransaction?: boolean }>;
  _result: Array<[Error | null, unknown?]>;
  replyPending: number;
  exec: (...args: unknown[]) => unknown;
  resolve: (results: unknown) => void;
  reject: (error: Error) => void;
}

export interface HookContext {
  readonly commandTimeoutMs: number;
  isClosed(): boolean;
  /** Present only with metrics: without them the command path carries no measurement at all. */
  readonly tracker: CommandTracker | undefined;
  /** Commands whose caller was told they timed out; they must never be written afterwards. */
  readonly dead: WeakSet<Command>;
  /**
   * Commands that were written on a connection that then closed before their reply: Redis may have run them. ioredis
   * sends them again (its offline resend, a cluster's retry); only read-only ones may go.
   */
  readonly inFlight: WeakSet<Command>;
  /** Commands ioredis sent on its own, seen at the Cluster before they reach a node connection. */
  readonly untracked: WeakSet<Command>;
  /** Called after a command timed out; the connections use it to cut off a command stuck behind a blocking one. */
  onExpire: ((command: Command) => void) | undefined;
  /** Set when the connection cannot be used safely (a database that does not exist): every command gets it. */
  fatal: Error | undefined;
  /** Fails a command whose deadline passed, and marks it so that it is never written afterwards. */
  readonly expire: (command: Command) => void;
  /** True while `close()` sends its own QUITs. */
  quitting: boolean;
  /** Corks a ready connection's socket until the end of the tick (see createHookContext); a no-op when off. */
  readonly corkTick: (connection: unknown) => void;
}

export function createHookContext(options: {
  commandTimeoutMs: number;
  isClosed: () => boolean;
  tracker?: CommandTracker | undefined;
  /** Cork each connection's socket for the rest of the tick at its first command. Default `false`. */
  corkWrites?: boolean;
}): HookContext {
  // A tick's commands leave in one write per connection, each still an ordinary command (see cork.ts).
  const corkTick = options.corkWrites === true ? connectionCorker() : () => {};
  const context: HookContext = {
    commandTimeoutMs: options.commandTimeoutMs,
    isClosed: options.isClosed,
    tracker: options.tracker,
    dead: new WeakSet(),
    inFlight: new WeakSet(),
    untracked: new WeakSet(),
    onExpire: undefined,
    fatal: undefined,
    quitting: false,
    corkTick,
    expire(command) {
      if (command.isResolved) return;
      context.dead.add(command);
      command.reject(timeoutError());
      context.onExpire?.(command);
    },
  };
  return context;
}

/**
 * Commands that change no data though Redis does not flag them read-only. ioredis sends a fire-and-forget PING or a
 * SUBSCRIBE in flight again after a reconnect; failing them as "maybe applied" would reject what cannot have applied.
 * An allowlist, not "no write flag": PUBLISH, EVAL and SCRIPT carry no write flag in the command table and do act.
 */
const NO_EFFECT = new Set([
  'ping',
  'echo',
  'time',
  'info',
  'role',
  'lastsave',
  'select',
  'subscribe',
  'psubscribe',
  'ssubscribe',
  'unsubscribe',
  'punsubscribe',
  'sunsubscribe',
]);

/** A command Redis flags read-only, a script defined read-only, or one that changes nothing: safe to send again. */
export function isSafeToResend(command: Command): boolean {
  if ((command as { isReadOnly?: boolean }).isReadOnly === true) return true;
  const name = command.name.toLowerCase();
  return NO_EFFECT.has(name) || (exists(name) && hasFlag(name, 'readonly'));
}

const SECONDS_LAST = new Set(['blpop', 'brpop', 'brpoplpush', 'blmove', 'bzpopmin', 'bzpopmax']);
const SECONDS_FIRST = new Set(['blmpop', 'bzmpop']);
const MILLISECONDS_LAST = new Set(['wait', 'waitaof']);
const BLOCK_OPTION = new Set(['xread', 'xreadgroup']);

function numberArg(value: unknown): number {
  return typeof value === 'number' ? value : Number(String(value));
}

/** The longest delay `setTimeout` honours: a larger one fires after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * How long a blocking command may block, in ms: `null` for "forever" (a timeout of 0), `undefined` when the command
 * does not block. Redis answers a blocking command only when its block ends, so it must not be timed like others.
 */
export function blockingMs(name: string, args: readonly unknown[]): number | null | undefined {
  // Every blocking command starts with b, w or x: the common case leaves after one comparison, allocating nothing.
  const first = name.charCodeAt(0) | 0x20;
  if (first !== 98 && first !== 119 && first !== 120) return undefined;
  const lower = name.toLowerCase();
  let ms: number;
  if (SECONDS_LAST.has(lower)) ms = numberArg(args[args.length - 1]) * 1000;
  else if (SECONDS_FIRST.has(lower)) ms = numberArg(args[0]) * 1000;
  else if (MILLISECONDS_LAST.has(lower)) ms = numberArg(args[args.length - 1]);
  else if (BLOCK_OPTION.has(lower)) {
    // Options come before STREAMS; after it every argument is a key or an id, whatever it spells.
    let index = -1;
    for (let i = 0; i < args.length; i++) {
      const word = String(args[i]).toUpperCase();
      if (word === 'STREAMS') break;
      if (word === 'BLOCK') {
        index = i;
        break;
      }
    }
    if (index < 0) return undefined;
    ms = numberArg(args[index + 1]);
  } else return undefined;
  if (!Number.isFinite(ms) || ms < 0) return undefined;
  return ms === 0 ? null : ms;
}

/** The deadline of a command in ms from its first send, or `undefined` for none (it blocks forever). */
export function commandDeadlineMs(command: Command, commandTimeoutMs: number): number | undefined {
  const block = blockingMs(command.name, command.args);
  if (block === undefined) return commandTimeoutMs;
  if (block === null) return undefined;
  // A block so long that no timer can hold it is, for a client, a block without end.
  const deadline = block + commandTimeoutMs;
  return deadline > MAX_TIMER_MS ? undefined : deadline;
}

const ROUTING = new Set(['asking', 'readonly', 'readwrite']);
const HANDSHAKE = new Set(['auth', 'hello', 'select', 'client', 'info', 'cluster']);

/**
 * Commands ioredis sends on its own, which no caller issued and which must not count as the caller's: the setup of a
 * connection (AUTH, HELLO, SELECT, CLIENT SETNAME/SETINFO, the INFO or CLUSTER INFO ready check, written while the
 * connection is still `connect`), the ASKING/READONLY/READWRITE of cluster routing, and the QUIT a Cluster sends to
 * each of its nodes.
 */
export function isInternalCommand(name: string, status: string | undefined, node: boolean): boolean {
  if (ROUTING.has(name)) return true;
  if (node && name === 'quit') return true;
  return status === 'connect' && HANDSHAKE.has(name);
}

function timeoutError(): Error {
  return new Error(TIMEOUT_MESSAGE);
}

function maybeApplied(command: Command, stream: unknown): unknown {
  command.reject(new RedisMaybeAppliedError(command.name));
  const pipelineStream = stream as PipelineStream | undefined;
  // The rest of this batch is still written when every command has passed: keep the pipeline's count, where it
  // already knows its connection (a re-send; before routing a cluster has not chosen one).
  if (pipelineStream?.isPipeline && pipelineStream.destination?.redis !== undefined) pipelineStream.write('');
  return command.promise;
}

/** Hooks one connection (client, cluster node, duplicate or subscriber) with the shared per-client context. */
export function hookSendCommand(
  connection: Redis | Cluster,
  context: HookContext,
  options: { node?: boolean } = {},
): void {
  const isNode = options.node === true;
  const target = connection as unknown as { sendCommand: SendCommand };
  const original = target.sendCommand;
  const { tracker, dead, inFlight, untracked, isClosed, commandTimeoutMs, expire } = context;
  // Pipeline batches in which a write was refused: the rest of the batch must not run without it (a MULTI would).
  const poisoned = new WeakSet<object>();

  target.sendCommand = function sendCommand(
    this: unknown,
    command: InternalCommand,
    stream?: unknown,
    node?: unknown,
  ) {
    // Timed out: never written again. A pipeline is timed out whole, so no batch is left half written.
    if (dead.has(command)) return command.promise;
    if (isClosed()) {
      command.reject(new RedisClientClosedError());
      return command.promise;
    }
    if (context.fatal !== undefined) {
      command.reject(context.fatal);
      return command.promise;
    }
    if (typeof stream === 'object' && stream !== null && poisoned.has(stream))
      return maybeApplied(command, stream);
    if (inFlight.has(command)) {
      inFlight.delete(command);
      if (!isSafeToResend(command)) {
        if ((stream as PipelineStream | undefined)?.isPipeline) poisoned.add(stream as object);
        return maybeApplied(command, stream);
      }
    }
    const own = fields(command);
    if (own.pipelineIndex === undefined) {
      // The first send arms the deadline; a re-send keeps it.
      const fresh = own._commandTimeoutTimer === undefined;
      let measured = false;
      if (tracker !== undefined) {
        if (
          isInternalCommand(command.name, (this as { status?: string }).status, isNode) ||
          (context.quitting && command.name === 'quit')
        )
          untracked.add(command);
        else measured = !isNode || !untracked.has(command);
      }
      if (measured) {
        // The tracker keeps the deadline with its measurement, in the command's timer slot.
        const deadline = fresh
          ? { ms: commandDeadlineMs(command, commandTimeoutMs) ?? null, expire }
          : undefined;
        (tracker as CommandTracker).track(command, deadline);
      } else if (fresh) {
        const ms = commandDeadlineMs(command, commandTimeoutMs);
        own._commandTimeoutTimer = ms === undefined ? NO_TIMER : setTimeout(expire, ms, command);
      }
    } else {
      if (own._commandTimeoutTimer === undefined) own._commandTimeoutTimer = NO_TIMER;
      if (tracker !== undefined && isScriptCommand(command)) tracker.track(command);
    }
    // A pipeline writes its commands to the socket in one go already.
    if (stream === undefined) context.corkTick(this);
    return original.call(this, command, stream, node);
  };
}

/**
 * Wraps `pipeline()` and `multi()` of a connection so that each Pipeline it returns has one deadline for all its
 * commands, and is measured when its final results are known.
 */
export function hookPipelines(connection: Redis | Cluster, context: HookContext): void {
  const target = connection as unknown as {
    pipeline: (...args: unknown[]) => unknown;
    multi: (...args: unknown[]) => unknown;
  };
  const { pipeline, multi } = target;
  target.pipeline = function (this: unknown, ...args: unknown[]) {
    const created = pipeline.apply(this, args);
    instrumentPipeline(created as PipelineInternals, context, 'pipeline');
    return created;
  };
  target.multi = function (this: unknown, ...args: unknown[]) {
    const created = multi.apply(this, args);
    // multi({ pipeline: false }) sends MULTI as a plain command and returns its promise.
    if (created !== null && typeof created === 'object' && '_queue' in created) {
      instrumentPipeline(created as PipelineInternals, context, 'multi');
    }
    return created;
  };
}

function instrumentPipeline(
  pipeline: PipelineInternals,
  context: HookContext,
  kind: 'pipeline' | 'multi',
): void {
  const { exec, resolve, reject, sendCommand } = pipeline;
  const { dead, inFlight, tracker, commandTimeoutMs } = context;
  // From the first command queued: an auto-pipeline waits there while the one before it to the same node is in flight,
  // and a deadline armed only at exec would let its commands wait up to twice the timeout.
  let started = -1;
  let executed = false;
  let timer: NodeJS.Timeout | undefined;
  let finished = false;

  pipeline.sendCommand = function (this: unknown, command: InternalCommand) {
    if (started < 0) started = performance.now();
    return sendCommand.call(this, command);
  };

  const finish = (error: Error | undefined) => {
    if (finished) return;
    finished = true;
    if (timer !== undefined) clearTimeout(timer);
    if (tracker === undefined || !executed) return;
    const seconds = (performance.now() - started) / 1000;
    const queue = pipeline._queue;
    if (error === undefined) {
      recordPipeline(tracker.observer, { queue, results: alignedResults(queue, pipeline._result) }, seconds);
      return;
    }
    recordPipeline(tracker.observer, { queue, error }, seconds);
    // A MULTI that failed before it was written has no EXEC in its queue yet; the caller issued one.
    if (pipeline._transactions > 0) tracker.observer.error('exec', seconds, error);
  };

  const failWhole = (error: Error) => {
    for (const command of pipeline._queue) dead.add(command);
    // MULTI's exec returns its own promise on some paths, so nobody may be listening to the pipeline's.
    pipeline.promise.catch(() => {});
    pipeline.reject(error);
  };

  const expire = () => {
    timer = undefined;
    if (finished) return;
    // Not written yet (waiting for a cluster's first slot map, or between a retry and its re-send): fail it whole.
    if (pipeline.replyPending === 0) {
      failWhole(timeoutError());
      return;
    }
    for (const command of pipeline._queue) dead.add(command);
    const error = timeoutError();
    for (const command of pipeline._queue) command.reject(error);
  };

  pipeline.exec = function (this: unknown, ...args: unknown[]) {
    // exec() on a plain pipeline inside multi() only queues EXEC; the caller's next exec() sends it all.
    if (kind === 'pipeline' && !executed && pipeline._transactions > 0) return exec.apply(this, args);
    if (!executed) {
      executed = true;
      const at = performance.now();
      if (started < 0) started = at;
      // Commands inside MULTI never block: the server runs them at EXEC.
      let ms: number | undefined = commandTimeoutMs;
      for (const command of pipeline._queue) {
        if (command.inTransaction) continue;
        const deadline = commandDeadlineMs(command, commandTimeoutMs);
        if (deadline === undefined) {
          ms = undefined;
          break;
        }
        if (deadline > ms) ms = deadline;
      }
      if (ms !== undefined) timer = setTimeout(expire, Math.max(0, started + ms - at));
    } else if (!finished) {
      // A cluster re-sends the whole pipeline after its connection closed: if a write of it may have run, none goes.
      const lost = pipeline._queue.find((command) => inFlight.has(command) && !isSafeToResend(command));
      if (lost !== undefined) {
        failWhole(new RedisMaybeAppliedError(lost.name));
        return pipeline.promise;
      }
    }
    const result = exec.apply(this, args);
    // MULTI on a cluster without a slot map fails its own promise and never the pipeline's.
    if (result !== pipeline.promise && result instanceof Promise) {
      result.then(undefined, (error: Error) => finish(error));
    }
    return result;
  };
  pipeline.resolve = (results: unknown) => {
    finish(undefined);
    resolve(results);
  };
  pipeline.reject = (error: Error) => {
    finish(error);
    reject(error);
  };
}

/**
 * A pipeline's results as the caller gets them leave out the commands ioredis added on its own (the ASKING before each
 * command re-sent after ASK): ioredis shifts the later results down over them in place. Back to one per queue entry.
 */
function alignedResults(
  queue: ReadonlyArray<InternalCommand & { ignore?: boolean }>,
  results: Array<[Error | null, unknown?]>,
): Array<[Error | null, unknown?] | undefined> {
  if (!queue.some((command) => command.ignore)) return results;
  const aligned: Array<[Error | null, unknown?] | undefined> = [];
  let next = 0;
  for (const command of queue) aligned.push(command.ignore ? undefined : results[next++]);
  return aligned;
}

/**
 * A Cluster without a slot map parks auto-pipelined commands and pipelines in `delayUntilReady` callbacks, with no
 * timer at all: they would wait forever for a cluster that never comes, then be sent. Bound each wait by
 * `commandTimeoutMs`; a callback that timed out is never called again, so its commands are never created.
 */
export function boundReadyWaits(cluster: Cluster, commandTimeoutMs: number): void {
  const target = cluster as unknown as { delayUntilReady: (callback: (error?: Error) => void) => void };
  const delay = target.delayUntilReady;
  target.delayUntilReady = function (this: unknown, callback: (error?: Error) => void) {
    let called = false;
    const timer = setTimeout(() => {
      if (called) return;
      called = true;
      callback(timeoutError());
    }, commandTimeoutMs);
    delay.call(this, (error?: Error) => {
      if (called) return;
      called = true;
      clearTimeout(timer);
      callback(error);
    });
  };
}
