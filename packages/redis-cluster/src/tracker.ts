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
 * be measured once, from first send to outcome. Benchmarks of the built package decided the shape of this code
 * (client CPU per command, GET at concurrency 100 on the test cluster):
 * - extra properties on Command objects made ioredis' own property accesses polymorphic (+25%);
 * - two closures per command cost +5-15% in allocation and garbage collection;
 * - a Map from Command to its state kept settled entries reachable until rehash (+50% without auto-pipelining);
 * - a WeakMap, with the two wrappers shared by every command of a client, stayed within the noise.
 * The wrappers always pass the call through to ioredis (a reply transformer that throws rejects the command, as plain
 * ioredis does); only the measurement is skipped when the outcome was already recorded.
 */
interface Probe {
  start: number;
  name: string;
  resolve: (value: unknown) => unknown;
  reject: (error: Error) => unknown;
  done: boolean;
  /** False for script commands of a pipeline: the pipeline records them; the probe only watches for NOSCRIPT. */
  record: boolean;
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
  /** Starts measuring `command`, unless this tracker already does (a re-send, or a node connection's own hook). */
  track(command: Command): void;
  /** Commands being measured whose outcome is not known yet. */
  readonly pending: number;
  readonly observer: CommandObserver;
}

const now = () => performance.now();

export function createTracker(observer: CommandObserver): CommandTracker {
  const probes = new WeakMap<Command, Probe>();
  // A script whose EVALSHA got NOSCRIPT is sent again by ioredis as a new Command of the same class, right after the
  // rejection: the first attempt is not an outcome, and the second inherits its start (and whether to record).
  const carried = new WeakMap<ScriptCommandClass, Array<{ start: number; record: boolean }>>();
  let pending = 0;

  function settle(probe: Probe): boolean {
    if (probe.done) return false;
    probe.done = true;
    if (probe.record) pending -= 1;
    return probe.record;
  }

  // Once the outcome is recorded the command gets its own functions back and its probe is dropped: a later call (a
  // late reply after a timeout) then goes straight to ioredis, and the WeakMap stays small (a WeakMap that keeps an
  // entry per command ever sent made every garbage collection pay for it).
  const release = (command: Command, probe: Probe) => {
    command.resolve = probe.resolve as Command['resolve'];
    command.reject = probe.reject as Command['reject'];
    probes.delete(command);
  };

  // ioredis calls these as methods of the command (`command.resolve(x)`), so `this` is the command.
  const wrappers = {
    resolve(this: Command, value: unknown): unknown {
      const probe = probes.get(this);
      if (probe === undefined) return undefined;
      const at = now();
      // May call this.reject synchronously: ioredis rejects when a reply transformer throws.
      const result = probe.resolve.call(this, value);
      if (settle(probe)) observer.ok(probe.name, (at - probe.start) / 1000);
      if (probes.get(this) === probe) release(this, probe);
      return result;
    },
    reject(this: Command, error: Error): unknown {
      const probe = probes.get(this);
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
          queue.push({ start: probe.start, record: probe.record });
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
    track(command) {
      if (command.resolve === resolve) return;
      let probe = probes.get(command);
      if (probe === undefined) {
        let start = now();
        let record = (command as { pipelineIndex?: number }).pipelineIndex === undefined;
        const script = isScriptCommand(command);
        if (script) {
          const previous = carried.get(command.constructor as ScriptCommandClass)?.shift();
          if (previous !== undefined) {
            start = previous.start;
            record = previous.record;
          }
        }
        probe = {
          start,
          name: script ? 'evalsha' : command.name,
          resolve: command.resolve,
          reject: command.reject,
          done: false,
          record,
        };
        probes.set(command, probe);
        if (record) pending += 1;
      } else {
        // The promise was initialised again (a pipeline retry): wrap the new functions, keep the start.
        probe.resolve = command.resolve;
        probe.reject = command.reject;
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
      if (!command.ignore) observer.error(operationName(command), seconds, outcome.error);
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
    if (command === undefined || command.ignore) continue;
    const error = fromExec.has(index) ? fromExec.get(index) : (results[index]?.[0] ?? null);
    const name = operationName(command);
    if (error) {
      const kind = clusterErrorKind(error.message);
      if (kind === 'moved' || kind === 'ask') observer.unfollowedRedirect?.(kind);
      observer.error(name, seconds, error);
    } else observer.ok(name, seconds);
  }
}
