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

export interface BenchDefinition {
  /** Package name without scope, e.g. `redis-cluster`. */
  package: string;
  cases: BenchCase[];
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
