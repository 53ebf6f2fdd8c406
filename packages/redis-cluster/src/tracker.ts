import type { Command } from 'ioredis';
import { clusterErrorKind, isNoScript } from './error-type.js';

/** Receives one call per command the caller issued, when its final outcome is known. */
export interface CommandObserver {
  ok(name: string, seconds: number): void;
  error(name: string, seconds: number, error: unknown): void;
  /** A MOVED/ASK reply that reached the caller because ioredis did not follow it (inside some pipelines). */
  unfollowedRedirect?(kind: 'moved' | 'ask'): void;
}

/*
 * ioredis re-sends the same Command object after a reconnect, from an offline queue, or on a redirect, and it must
 * be measured once, from first send to outcome. The no-I/O micro-benchmark (bench/command-hook.bench.ts) and
 * end-to-end runs decided the shape of this code:
 * - extra properties on Command objects made ioredis' own property accesses polymorphic (+25%);
 * - two closures per command cost +5-15% in allocation and garbage collection;
 * - a Map from Command to its state kept settled entries reachable until rehash (+50% without auto-pipelining);
 * - a WeakMap from Command to its state cost about 250 ns per command, a quarter of all the client-side work: four
 *   ephemeron-table operations per command, and every garbage collection walks the table.
 * So a command's state (its probe) lives in the one slot of a Command that ioredis reserves for per-command timing
 * and that the hook already owns: `_commandTimeoutTimer`. The probe keeps the timer that was there (or the no-timer
 * marker) and clears it on the outcome, since ioredis' own `clearTimeout(probe)` is a no-op on it. ioredis only tests
 * the slot for truthiness and deletes it when the command settles, which is when the probe is done anyway.
 * The wrappers always pass the call through to ioredis (a reply transformer that throws rejects the command, as plain
 * ioredis does); only the measurement is skipped when the outcome was already recorded.
 */
class Probe {
  constructor(
    readonly start: number,
    readonly name: string,
    public resolve: (value: unknown) => unknown,
    public reject: (error: Error) => unknown,
    /** False for script commands of a pipeline: the pipeline records them; the probe only watches for NOSCRIPT. */
    readonly record: boolean,
    /** What the slot held before: the command's deadline timer, a no-timer marker, or nothing. */
    public timer: unknown,
  ) {}
  done = false;
  /** The shared deadline this command waits in, and its place there. */
  batch: DeadlineBatch | undefined = undefined;
  index = 0;
  /** When its deadline passes (this clock), `null` for none, `undefined` when it is kept elsewhere (a pipeline's). */
  endAt: number | null | undefined = undefined;
}

/*
 * A timer per command was a fifth of all the client-side work of a command (Node's timer list insert and removal on
 * every reply): plain ioredis with `commandTimeout` pays it too. Commands with the same deadline length that are
 * issued within GROUP_MS of each other share one timer, armed at the first of them, so a command times out at most
 * GROUP_MS before a timer of its own would have fired. Node's timers count whole milliseconds from the event loop's
 * cached time, so any timer may fire up to about 1 ms early: GROUP_MS is kept well under that. Under load, one timer
 * still serves the commands of a tick (they are issued within microseconds of each other).
 */
const GROUP_MS = 0.1;

class DeadlineBatch {
  readonly commands: Array<Command | undefined> = [];
  open = 0;
  timer: NodeJS.Timeout | undefined = undefined;
  constructor(
    readonly start: number,
    readonly ms: number,
    readonly expire: (command: Command) => void,
  ) {}
}

/** A script call that got NOSCRIPT, waiting for ioredis to send it again as a new command of the same class. */
interface Carried {
  args: readonly unknown[];
  start: number;
  record: boolean;
  endAt: number | null | undefined;
}

/** The same script call: the same arguments after the first (the SHA, or the script itself once sent as EVAL). */
function sameCall(args: readonly unknown[], other: readonly unknown[]): boolean {
  if (args.length !== other.length) return false;
  for (let i = 1; i < args.length; i++) if (args[i] !== other[i]) return false;
  return true;
}

/** At most this many NOSCRIPT calls per script wait for their re-send; older ones are forgotten. */
const MAX_CARRIED = 1000;

function fire(batch: DeadlineBatch): void {
  batch.timer = undefined;
  if (batch.open === 0) return;
  const { commands } = batch;
  for (let index = 0; index < commands.length; index++) {
    const command = commands[index];
    if (command !== undefined) batch.expire(command);
  }
}

type Slot = { _commandTimeoutTimer?: unknown };

/**
 * Stands in ioredis' per-command timer slot for commands whose deadline is kept elsewhere (a pipeline's, a batch's)
 * or that have none (a block without timeout), so that ioredis' own `commandTimeout` does not arm a second, shorter
 * one. `clearTimeout()` ignores it.
 */
export const NO_TIMER = Object.freeze({ austa: 'no-timer' });

/** The deadline timer of a command, whether or not a tracker measures it (tests and the hook read it). */
export function deadlineOf(command: Command): unknown {
  const slot = (command as unknown as Slot)._commandTimeoutTimer;
  return slot instanceof Probe ? slot.timer : slot;
}

type ScriptCommandClass = abstract new (...args: never[]) => Command;

/** Commands of `defineCommand` scripts: ioredis builds one Command subclass per script. */
export function isScriptCommand(command: Command): boolean {
  return command.constructor.name === 'CustomScriptCommand';
}

/** The operation name a command is recorded under. Script calls are `evalsha` whichever form ioredis sent. */
export function operationName(command: Command): string {
  return isScriptCommand(command) ? 'evalsha' : command.name;
}

export interface CommandTracker {
  /**
   * Starts measuring `command`, unless this tracker already does (a re-send, or a node connection's own hook).
   * With `deadline`, also arms the command's deadline (`ms`, or `null` for none), which calls `expire` when it passes;
   * without it, the deadline already in the command's timer slot is kept.
   */
  track(command: Command, deadline?: { ms: number | null; expire: (command: Command) => void }): void;
  /** Commands being measured whose outcome is not known yet. */
  readonly pending: number;
  readonly observer: CommandObserver;
}

const now = () => performance.now();

export function createTracker(observer: CommandObserver): CommandTracker {
  // A script whose EVALSHA got NOSCRIPT is sent again by ioredis as a new Command of the same class with the same
  // arguments, soon after the rejection: the first attempt is not an outcome, and the second inherits its start,
  // whether to record, and what is left of its deadline. Another call of the script may be issued in between, so the
  // re-send is recognised by its arguments.
  const carried = new WeakMap<ScriptCommandClass, Carried[]>();

  function takeCarried(command: Command): Carried | undefined {
    const queue = carried.get(command.constructor as ScriptCommandClass);
    if (queue === undefined || queue.length === 0) return undefined;
    const index = queue.findIndex((entry) => sameCall(entry.args, command.args));
    return index < 0 ? undefined : queue.splice(index, 1)[0];
  }
  let pending = 0;
  // ioredis' resolve empties the slot before it runs the reply transformer, which may throw and reject at once: the
  // probe of the command being resolved is kept here for that nested call.
  let resolving: Command | undefined;
  let resolvingProbe: Probe | undefined;
  // The batch new commands join while it is young enough.
  let current: DeadlineBatch | undefined;
  let dropScheduled = false;
  const dropIfEmpty = () => {
    dropScheduled = false;
    const batch = current;
    if (batch === undefined || batch.open !== 0 || batch.timer === undefined) return;
    clearTimeout(batch.timer);
    batch.timer = undefined;
    current = undefined;
  };

  function settle(probe: Probe): boolean {
    if (probe.done) return false;
    probe.done = true;
    const batch = probe.batch;
    if (batch !== undefined) {
      batch.commands[probe.index] = undefined;
      batch.open -= 1;
      if (batch.open === 0 && batch.timer !== undefined) {
        // Commands of this same tick may still join it (a caller that sends and is answered in one tick); past the
        // tick an empty batch's timer goes, so nothing waits on it or keeps a closed client reachable. process.nextTick
        // runs before the promise reactions of the reply that emptied it, so the caller already sees no timer left.
        if (current !== batch) clearTimeout(batch.timer);
        else if (!dropScheduled) {
          dropScheduled = true;
          process.nextTick(dropIfEmpty);
        }
      }
    } else if (probe.timer !== undefined) clearTimeout(probe.timer as NodeJS.Timeout);
    if (probe.record) pending -= 1;
    return probe.record;
  }

  function join(
    probe: Probe,
    command: Command,
    at: number,
    ms: number,
    expire: (command: Command) => void,
  ): void {
    let batch = current;
    if (
      batch === undefined ||
      batch.timer === undefined ||
      batch.ms !== ms ||
      batch.expire !== expire ||
      at - batch.start >= GROUP_MS
    ) {
      if (batch !== undefined && batch.open === 0 && batch.timer !== undefined) clearTimeout(batch.timer);
      batch = new DeadlineBatch(at, ms, expire);
      batch.timer = setTimeout(fire, ms, batch);
      current = batch;
    }
    probe.batch = batch;
    probe.index = batch.commands.push(command) - 1;
    batch.open += 1;
  }

  function probeOf(command: Command): Probe | undefined {
    const slot = (command as unknown as Slot)._commandTimeoutTimer;
    if (slot instanceof Probe) return slot;
    return resolving === command ? resolvingProbe : undefined;
  }

  // Once the outcome is recorded the command gets its own functions back: a later call (a late reply after a
  // timeout) then goes straight to ioredis.
  const release = (command: Command, probe: Probe) => {
    command.resolve = probe.resolve as Command['resolve'];
    command.reject = probe.reject as Command['reject'];
  };

  // ioredis calls these as methods of the command (`command.resolve(x)`), so `this` is the command.
  const wrappers = {
    resolve(this: Command, value: unknown): unknown {
      const probe = probeOf(this);
      if (probe === undefined) return undefined;
      const at = now();
      const outer = resolving;
      const outerProbe = resolvingProbe;
      resolving = this;
      resolvingProbe = probe;
      let result: unknown;
      try {
        // May call this.reject synchronously: ioredis rejects when a reply transformer throws.
        result = probe.resolve.call(this, value);
      } finally {
        resolving = outer;
        resolvingProbe = outerProbe;
      }
      if (settle(probe)) observer.ok(probe.name, (at - probe.start) / 1000);
      if (this.resolve === resolve) release(this, probe);
      return result;
    },
    reject(this: Command, error: Error): unknown {
      const probe = probeOf(this);
      if (probe === undefined) return undefined;
      if (!probe.done) {
        if (isScriptCommand(this) && isNoScript(error)) {
          settle(probe);
          const key = this.constructor as ScriptCommandClass;
          let queue = carried.get(key);
          if (queue === undefined) {
            queue = [];
            carried.set(key, queue);
          }
          if (queue.length >= MAX_CARRIED) queue.shift();
          queue.push({ args: this.args, start: probe.start, record: probe.record, endAt: probe.endAt });
        } else if (settle(probe)) {
          observer.error(probe.name, (now() - probe.start) / 1000, error);
        }
      }
      release(this, probe);
      return probe.reject.call(this, error);
    },
  };
  const { resolve, reject } = wrappers;

  return {
    observer,
    track(command, deadline) {
      if (command.resolve === resolve) return;
      const slot = command as unknown as Slot;
      const held = slot._commandTimeoutTimer;
      if (held instanceof Probe && !held.done) {
        // The promise was initialised again (a pipeline retry): wrap the new functions, keep the start.
        held.resolve = command.resolve;
        held.reject = command.reject;
      } else {
        const at = now();
        let start = at;
        let record = (command as { pipelineIndex?: number }).pipelineIndex === undefined;
        const script = isScriptCommand(command);
        const previous = script ? takeCarried(command) : undefined;
        if (previous !== undefined) {
          start = previous.start;
          record = previous.record;
        }
        const probe = new Probe(
          start,
          script ? 'evalsha' : command.name,
          command.resolve,
          command.reject,
          record,
          held instanceof Probe ? held.timer : held,
        );
        probe.endAt = held instanceof Probe ? held.endAt : undefined;
        slot._commandTimeoutTimer = probe;
        if (deadline !== undefined) {
          if (previous !== undefined && previous.endAt !== undefined) {
            // A re-send after NOSCRIPT keeps what was left of the first attempt's deadline, not a new one.
            probe.endAt = previous.endAt;
            probe.timer =
              previous.endAt === null
                ? NO_TIMER
                : setTimeout(deadline.expire, Math.max(0, previous.endAt - at), command);
          } else if (deadline.ms === null) {
            probe.endAt = null;
            probe.timer = NO_TIMER;
          } else {
            probe.endAt = at + deadline.ms;
            join(probe, command, at, deadline.ms, deadline.expire);
          }
        }
        if (record) pending += 1;
      }
      command.resolve = resolve;
      command.reject = reject;
    },
    get pending() {
      return pending;
    },
  };
}

/** What the pipeline recorder reads from an ioredis Pipeline once it has its final results. */
export interface PipelineOutcome {
  queue: ReadonlyArray<Command & { ignore?: boolean; inTransaction?: boolean }>;
  /** `[error]` or `[null, value]` per queue entry, as ioredis' Pipeline keeps them. */
  results: ReadonlyArray<[Error | null, unknown?] | undefined>;
}

/** Commands of cluster routing that ioredis adds to pipelines on its own (auto-pipelined READONLY, say). */
const ROUTING = new Set(['asking', 'readonly', 'readwrite']);

const WATCH_ABORTED = new Error('Transaction aborted by WATCH: EXEC returned null and ran no command.');

/**
 * Records every command of a pipeline or MULTI once, with the outcome the caller saw: commands inside MULTI take
 * theirs from EXEC's reply, not from the QUEUED they got first.
 */
export function recordPipeline(
  observer: CommandObserver,
  outcome: PipelineOutcome | { queue: PipelineOutcome['queue']; error: Error },
  seconds: number,
): void {
  const { queue } = outcome;
  if ('error' in outcome) {
    for (const command of queue) {
      if (!command.ignore && !ROUTING.has(command.name))
        observer.error(operationName(command), seconds, outcome.error);
    }
    return;
  }
  const { results } = outcome;
  // Per queue index, the error EXEC gave the command (or null for success) when it ran inside MULTI.
  const fromExec = new Map<number, Error | null>();
  for (let index = 0; index < queue.length; index++) {
    if (queue[index]?.name !== 'exec') continue;
    const [execError, replies] = results[index] ?? [null];
    let first = index - 1;
    while (first >= 0 && queue[first]?.inTransaction && queue[first]?.name !== 'multi') first -= 1;
    for (let inner = first + 1; inner < index; inner++) {
      const own = results[inner]?.[0] ?? null;
      if (execError) fromExec.set(inner, own ?? execError);
      else if (Array.isArray(replies)) {
        const reply = replies[inner - index + replies.length];
        fromExec.set(inner, reply instanceof Error ? reply : null);
      } else fromExec.set(inner, own ?? WATCH_ABORTED);
    }
  }
  for (let index = 0; index < queue.length; index++) {
    const command = queue[index];
    if (command === undefined || command.ignore || ROUTING.has(command.name)) continue;
    const error = fromExec.has(index) ? fromExec.get(index) : (results[index]?.[0] ?? null);
    const name = operationName(command);
    if (error) {
      const kind = clusterErrorKind(error.message);
      if (kind === 'moved' || kind === 'ask') observer.unfollowedRedirect?.(kind);
      observer.error(name, seconds, error);
    } else observer.ok(name, seconds);
  }
}
