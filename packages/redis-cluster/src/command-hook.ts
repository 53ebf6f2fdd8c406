import type { Cluster, Command, Redis } from 'ioredis';
import { RedisClientClosedError } from './errors.js';

/** Receives one call per command, when its final outcome is known. */
export interface CommandObserver {
  ok(name: string, seconds: number): void;
  error(name: string, seconds: number, error: unknown): void;
}

type SendCommand = (command: Command, stream?: unknown, node?: unknown) => unknown;

const REDIRECT = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /;

/*
 * ioredis re-sends the same Command object after a reconnect, from an offline queue, or on a redirect, and it
 * must be measured once, from first send to outcome. Benchmarks of the built package decided the shape of this
 * code (client CPU per command, GET at concurrency 100 on the test cluster):
 * - extra properties on Command objects made ioredis' own property accesses polymorphic (+25%);
 * - two closures per command cost +5-15% in allocation and garbage collection;
 * - a Map from Command to its state kept settled entries reachable until rehash (+50% without auto-pipelining);
 * - a WeakMap, with the two wrappers shared by every command of a client, stayed within the noise.
 */

interface Probe {
  start: number;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

type PipelinedCommand = Command & { pipelineIndex?: number };

export interface HookOptions {
  isCluster: boolean;
  isClosed: () => boolean;
  commandTimeoutMs: number;
  tracker?: CommandTracker;
}

/**
 * Hooks the one path every command takes (`sendCommand`) on an instance this package created, instead of wrapping
 * each command method: pipelines, MULTI, auto-pipelined commands, scripts and redirected commands all pass here.
 */
export function hookSendCommand(client: Redis | Cluster, options: HookOptions): void {
  const target = client as unknown as { sendCommand: SendCommand };
  const original = target.sendCommand;
  const { tracker, isClosed, isCluster, commandTimeoutMs } = options;

  target.sendCommand = function sendCommand(
    this: unknown,
    command: Command,
    stream?: unknown,
    node?: unknown,
  ) {
    if (isClosed()) {
      command.reject(new RedisClientClosedError());
      return command.promise;
    }
    // A Cluster that is not ready queues commands without arming ioredis' commandTimeout, which is only armed when
    // a node connection takes the command; arm it here so nothing waits forever. A ready Cluster hands the command
    // to a node at once, which arms it.
    if (isCluster && (this as { status?: string }).status !== 'ready') command.setTimeout(commandTimeoutMs);
    if (tracker !== undefined) tracker.track(command);
    return original.call(this, command, stream, node);
  };
}

/** Per-client command tracking, shared by the client's own connection and the node connections of a cluster. */
export interface CommandTracker {
  /** Starts measuring `command`, unless this tracker already does (a re-send, or a cluster node's own hook). */
  track(command: Command): void;
  /** Commands sent and not yet settled. */
  readonly pending: number;
}

export function createTracker(observer: CommandObserver, isCluster: boolean): CommandTracker {
  const probes = new WeakMap<Command, Probe>();
  let pending = 0;

  // ioredis calls these as methods of the command (`command.resolve(x)`, `reject.call(command, e)`), so `this`
  // is the command. A command without a probe was already recorded: a late reply after a timeout is not counted.
  const wrappers = {
    resolve(this: Command, value: unknown): void {
      const probe = probes.get(this);
      if (probe === undefined) return;
      probes.delete(this);
      pending -= 1;
      observer.ok(this.name, (performance.now() - probe.start) / 1000);
      probe.resolve.call(this, value);
    },
    reject(this: PipelinedCommand, error: Error): void {
      const probe = probes.get(this);
      if (probe === undefined) return;
      // A cluster pipeline answers MOVED/ASK by re-initialising and re-sending the same Command objects; the retry
      // is measured as part of this command (the probe stays), so the redirect itself is not its outcome.
      if (!(isCluster && this.pipelineIndex !== undefined && REDIRECT.test(error?.message))) {
        probes.delete(this);
        pending -= 1;
        observer.error(this.name, (performance.now() - probe.start) / 1000, error);
      }
      probe.reject.call(this, error);
    },
  };
  const { resolve, reject } = wrappers;

  return {
    track(command) {
      if (command.resolve === resolve) return;
      const probe = probes.get(command);
      if (probe === undefined) {
        probes.set(command, { start: performance.now(), resolve: command.resolve, reject: command.reject });
        pending += 1;
      } else {
        // Re-initialised by a cluster pipeline after a redirect: keep the first start time.
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
