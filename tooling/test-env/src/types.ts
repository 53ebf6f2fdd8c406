/**
 * Descriptors are plain, structured-cloneable objects: globalSetup hands them to test workers through
 * `project.provide()`, and the fault helpers in those workers act on them alone (ports and the state
 * directory), never on process handles that live in another process.
 */

export type RedisTopology = 'standalone' | 'cluster';

export interface RedisNodeAddress {
  host: string;
  port: number;
}

/** Where a server came from. `env` servers belong to someone else: never flushed, killed or faulted. */
export type RedisSource = 'env' | 'process' | 'docker';

export interface RedisStandaloneTarget {
  topology: 'standalone';
  /** `redis://host:port` for servers we started; the `REDIS_URL` value otherwise. */
  url: string;
  host: string;
  port: number;
  /** True when this run started the server, so fault helpers may harm it. */
  owned: boolean;
  source: RedisSource;
  /** Per-run directory holding the node's config, pidfile and log; null when we run no process. */
  stateDir: string | null;
}

export interface RedisClusterTarget {
  topology: 'cluster';
  /** Every node this run knows of, masters and replicas, in start order. */
  nodes: RedisNodeAddress[];
  owned: boolean;
  source: RedisSource;
  stateDir: string | null;
}

export type RedisTarget = RedisStandaloneTarget | RedisClusterTarget;

export interface RedisTargets {
  standalone: RedisStandaloneTarget;
  cluster: RedisClusterTarget;
}

export type MongoTarget =
  | {
      available: true;
      /** A connection string for a single-node replica set (change streams and transactions work). */
      url: string;
      source: 'env' | 'memory-server' | 'docker';
      owned: boolean;
    }
  | {
      available: false;
      /** Why each way of getting a MongoDB failed, for the skip message. */
      reason: string;
    };
