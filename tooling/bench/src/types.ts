export type Topology = 'standalone' | 'cluster';

export interface BenchTarget {
  topology: Topology;
  /** Standalone: `redis://host:port`. */
  url?: string;
  /** Cluster: seed nodes. */
  nodes?: Array<{ host: string; port: number }>;
}

export interface BenchContext {
  target: BenchTarget;
  /** The keys every case uses, made before timing starts. */
  keys: readonly string[];
  /** A unique prefix for this run; every key a case writes starts with it. */
  prefix: string;
  /** The value every SET-like case writes, the same size for every library. */
  value: string;
}

export interface PreparedCase {
  /** One operation; `i` picks the key (`keys[i % keys.length]`). */
  run(i: number): Promise<unknown>;
  teardown(): Promise<void>;
}

export interface BenchCase {
  /** Operation name, e.g. `GET:autopipeline-off`. Cases with the same op are compared. */
  op: string;
  /** Library under test, e.g. `@austa/redis-cluster` or `ioredis`. */
  lib: string;
  /** The rival library this case is compared to, measured in the same run. */
  vs?: string;
  setup(context: BenchContext): Promise<PreparedCase>;
}

/** An in-process case, set up in its own worker process. */
export interface PreparedMicroCase {
  /**
   * One operation; `i` counts up over the whole run. Synchronous cases return anything but a promise (return what
   * the operation produced, so the optimiser cannot drop it). When the first call returns a promise, every call is
   * awaited one after the other: the await costs the same for every case of the op, and is in its figures.
   */
  run(i: number): unknown;
  teardown?(): void | Promise<void>;
}

/**
 * A micro-benchmark: no Redis, no I/O. The harness reports ns and bytes allocated per operation and the ratio to the
 * `vs` case of the same op, e.g. `@austa/codec` encode+decode against `JSON.stringify`+`JSON.parse`.
 */
export interface MicroCase {
  /** Operation name, e.g. `encode+decode:1KiB`. Cases with the same op are compared. */
  op: string;
  /** What runs, e.g. `@austa/codec` or `JSON`. */
  lib: string;
  /** The baseline case (its `lib`) this one is compared to, measured in the same run. */
  vs?: string;
  /** Builds the inputs (outside the timed loop) and returns the operation. */
  setup(): PreparedMicroCase | Promise<PreparedMicroCase>;
}

export interface BenchDefinition {
  /** Package name without scope, e.g. `redis-cluster`. */
  package: string;
  /** Cases against real Redis, run on each topology. A file with none (only `micro`) never starts Redis. */
  cases?: BenchCase[];
  /** In-process cases that need no Redis, run once per file. */
  micro?: MicroCase[];
  /** Topologies to run on. Default both. */
  topologies?: Topology[];
}

/** What one timed run of a case measured. */
export interface Measurement {
  ops: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  /** CPU time (user + system) of the client process per operation, in microseconds: free of server noise. */
  cpuUsPerOp: number;
}

/** What one round of a micro case measured. */
export interface MicroMeasurement {
  /** Operations timed in this round (all batches). */
  ops: number;
  /** Median over the round's timed batches of wall time per operation, in nanoseconds. */
  nsPerOp: number;
  opsPerSec: number;
  /**
   * JS heap bytes allocated per operation, from a batch during which no garbage collection ran (checked); null when
   * every attempt saw one.
   */
  bytesPerOp: number | null;
  /** ArrayBuffer backing-store bytes per operation (Buffers live there, outside the JS heap); same batch. */
  externalBytesPerOp: number | null;
}

/** One JSON line: medians over the rounds of one (package, op, lib, topology). */
export interface BenchResult extends Measurement {
  package: string;
  op: string;
  lib: string;
  topology: Topology;
  concurrency: number;
  /**
   * `ratio`: our ops/s over the rival's, the median of per-round ratios (each round runs both back to back, so
   * machine noise hits both alike). `cpuRatio`: our CPU per operation over the rival's, same method.
   */
  vs?: { lib: string; ratio: number; cpuRatio: number };
}

/** One JSON line of a micro case: medians over the rounds. */
export interface MicroResult {
  package: string;
  op: string;
  lib: string;
  /** Always `in-process`: these lines are told apart from Redis lines by it. */
  topology: 'in-process';
  ops: number;
  opsPerSec: number;
  nsPerOp: number;
  bytesPerOp: number | null;
  externalBytesPerOp: number | null;
  /**
   * `ratio`: our ops/s over the baseline's (so 0.9 = 10% slower), the median of per-round ratios, as for Redis
   * lines. `extraBytesPerOp`: our heap bytes per operation minus the baseline's (null when either is unknown).
   */
  vs?: { lib: string; ratio: number; extraBytesPerOp: number | null };
}
