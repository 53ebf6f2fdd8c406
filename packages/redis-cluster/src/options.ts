import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { ClusterOptions, NatMap, RedisOptions } from 'ioredis';
import { RedisConfigError } from './errors.js';

/** A cluster seed node: `"host:port"` or `{ host, port }`. */
export type SeedNode = string | { host: string; port: number };

export interface ClusterConnectionOptions {
  /** Seed nodes. The client discovers the rest of the cluster from any one that answers. */
  nodes: SeedNode[];
  /** Maps the addresses the cluster announces to addresses this host can reach (Docker, NAT, port-forward). */
  natMap?: NatMap;
  /**
   * Where read-only commands go: `master` (default, read-your-writes), `slave` or `all`.
   * Replicas lag their master, so only send reads there when stale data is acceptable.
   */
  scaleReads?: 'master' | 'slave' | 'all';
  /**
   * The servers' `cluster-node-timeout` in milliseconds (Redis default 15000). The client checks that its
   * retry budget (`retryDelayOnFailoverMs × maxRedirections`) outlasts a failover of that length.
   */
  clusterNodeTimeoutMs?: number;
  /** Wait between retries of a command whose node connection closed during a failover. Default 500. */
  retryDelayOnFailoverMs?: number;
  /** Wait between retries after a CLUSTERDOWN reply. Default 300. */
  retryDelayOnClusterDownMs?: number;
  /** Redirections and failover retries allowed per command before it fails. Default 64. */
  maxRedirections?: number;
  /** Extra ioredis Cluster options, applied last. Prefer the named options above. */
  clusterOptions?: ClusterOptions;
}

export interface RedisClientOptions {
  /** `redis://` or `rediss://` (TLS) URL of a standalone server. Credentials in the URL are used. */
  url?: string;
  /** Standalone host. Ignored when `url` or `cluster` is set. Default `127.0.0.1`. */
  host?: string;
  /** Standalone port. Default 6379. */
  port?: number;
  /** Standalone database number. Redis Cluster only has database 0. */
  db?: number;
  /** Redis Cluster connection. When set, the client is an ioredis `Cluster`. */
  cluster?: ClusterConnectionOptions;
  /** ACL user name (Redis 6+). */
  username?: string;
  /** Password for the ACL user, or the legacy `requirepass`. */
  password?: string;
  /** `true` for TLS with Node's defaults, or Node TLS options (ca, servername, rejectUnauthorized…). */
  tls?: boolean | ConnectionOptions;
  /**
   * Name of this client in metric labels (`client`) and in `CLIENT SETNAME` (`austa:<name>`), so operators can
   * find its connections in `CLIENT LIST`. A short fixed word, never a user or tenant id. Default `default`.
   */
  name?: string;
  /**
   * Upper bound on any command, from the moment it is issued, including time in offline queues and redirections.
   * A command that takes longer rejects with `Command timed out`, so no caller waits forever. Default 5000.
   */
  commandTimeoutMs?: number;
  /** Time allowed to open a connection. Default 5000. */
  connectTimeoutMs?: number;
  /**
   * Queue commands while disconnected (default `true`). `commandTimeoutMs` still bounds them. Set `false` on
   * request paths that should fail at once when Redis is unreachable.
   */
  enableOfflineQueue?: boolean;
  /** Batch the commands issued in one event-loop tick into one write (ioredis auto-pipelining). Default `false`. */
  enableAutoPipelining?: boolean;
  /**
   * Hold each connection's socket until the end of the tick in which a command was issued, so the tick's commands
   * leave in one write instead of one syscall each. Unlike auto-pipelining, every command stays an ordinary command
   * (routed, redirected and retried on its own), and none waits past the current tick. Default `true`.
   */
  corkWrites?: boolean;
  /** Standalone only: reconnect attempts a queued command survives before failing. Default 3. */
  maxRetriesPerRequest?: number | null;
  /**
   * What happens to a write that was on the wire when its connection closed, before its reply came: Redis may or may
   * not have run it. `true` (default, as ioredis): it is sent again once reconnected, so it may run twice. `false`:
   * it fails with `E_MAYBE_APPLIED` and is never sent again, so an INCR or an RPUSH cannot silently run twice; the
   * caller decides (retry when the write is idempotent, or read back first). Use `false` where a duplicate write
   * matters (patient records, counters that bill). Reads and commands that change nothing are sent again either way.
   * An explicit `redisOptions.autoResendUnfulfilledCommands: false` means `false` here too.
   */
  resendInFlightWrites?: boolean;
  /** Extra ioredis options for every connection, applied last. Prefer the named options above. */
  redisOptions?: RedisOptions;
}

/** Defaults, exported so the README and tests cite the same numbers the code uses. */
export const DEFAULTS = {
  name: 'default',
  commandTimeoutMs: 5000,
  connectTimeoutMs: 5000,
  enableOfflineQueue: true,
  enableAutoPipelining: false,
  corkWrites: true,
  resendInFlightWrites: true,
  maxRetriesPerRequest: 3,
  clusterNodeTimeoutMs: 15_000,
  retryDelayOnFailoverMs: 500,
  retryDelayOnClusterDownMs: 300,
  maxRedirections: 64,
  slotsRefreshTimeoutMs: 2000,
} as const;

const NAME_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
const MAX_TIMEOUT_MS = 2_147_483_647;

export interface ResolvedOptions {
  name: string;
  commandTimeoutMs: number;
  resendInFlightWrites: boolean;
  corkWrites: boolean;
  topology: 'standalone' | 'cluster';
  redis: RedisOptions;
  cluster?: { nodes: Array<{ host: string; port: number }>; options: ClusterOptions };
}

/** Every duration option is a timer delay in the end: a longer one would fire after 1 ms. */
function positiveInteger(value: number | undefined, fallback: number, field: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0 || value > MAX_TIMEOUT_MS) {
    throw new RedisConfigError(
      `${field} must be a positive integer of at most ${MAX_TIMEOUT_MS} (got ${String(value)}).`,
    );
  }
  return value;
}

function optionalBoolean(value: unknown, fallback: boolean, field: string): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    throw new RedisConfigError(`${field} must be true or false (got ${JSON.stringify(value)}).`);
  }
  return value;
}

function validPort(port: unknown): port is number {
  return Number.isInteger(port) && (port as number) > 0 && (port as number) <= 65535;
}

function validHost(host: unknown): host is string {
  return typeof host === 'string' && host.trim() !== '' && !/[\s/]/.test(host);
}

export function parseSeedNode(node: SeedNode): { host: string; port: number } {
  if (typeof node === 'object' && node !== null) {
    if (!validHost(node.host) || !validPort(node.port)) {
      throw new RedisConfigError('A cluster seed node needs a host and a port between 1 and 65535.');
    }
    return { host: node.host, port: node.port };
  }
  if (typeof node !== 'string') throw new RedisConfigError('A cluster seed node must be "host:port".');
  const index = node.lastIndexOf(':');
  const host = node.slice(0, index).replace(/^\[(.*)\]$/, '$1');
  const port = Number(node.slice(index + 1));
  if (index <= 0 || host === '' || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new RedisConfigError(`Cluster seed node "${node}" is not "host:port".`);
  }
  return { host, port };
}

function tlsOption(tls: boolean | ConnectionOptions | undefined): ConnectionOptions | undefined {
  if (tls === undefined || tls === false) return undefined;
  return tls === true ? {} : tls;
}

function scaleReadsOf(value: unknown): 'master' | 'slave' | 'all' {
  if (value === undefined) return 'master';
  if (value === 'master' || value === 'slave' || value === 'all') return value;
  throw new RedisConfigError(
    `cluster.scaleReads must be "master", "slave" or "all" (got ${JSON.stringify(value)}).`,
  );
}

/** Turns the public options into ioredis options, failing early on anything that cannot work. */
export function resolveOptions(options: RedisClientOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new RedisConfigError(
      'createRedisClient needs an options object: { url } or { cluster: { nodes } }.',
    );
  }
  const name = options.name ?? DEFAULTS.name;
  if (!NAME_PATTERN.test(name)) {
    throw new RedisConfigError(
      `Client name "${name}" must be 1-32 characters of a-z, 0-9, "_" or "-", starting with a letter.`,
    );
  }
  const commandTimeoutMs = positiveInteger(
    options.commandTimeoutMs,
    DEFAULTS.commandTimeoutMs,
    'commandTimeoutMs',
  );
  const resendInFlightWrites = optionalBoolean(
    options.resendInFlightWrites,
    options.redisOptions?.autoResendUnfulfilledCommands !== false && DEFAULTS.resendInFlightWrites,
    'resendInFlightWrites',
  );
  const corkWrites = optionalBoolean(options.corkWrites, DEFAULTS.corkWrites, 'corkWrites');

  const redis: RedisOptions = {
    connectionName: `austa:${name}`,
    commandTimeout: commandTimeoutMs,
    connectTimeout: positiveInteger(options.connectTimeoutMs, DEFAULTS.connectTimeoutMs, 'connectTimeoutMs'),
    enableOfflineQueue: optionalBoolean(
      options.enableOfflineQueue,
      DEFAULTS.enableOfflineQueue,
      'enableOfflineQueue',
    ),
    enableAutoPipelining: optionalBoolean(
      options.enableAutoPipelining,
      DEFAULTS.enableAutoPipelining,
      'enableAutoPipelining',
    ),
    maxRetriesPerRequest:
      options.maxRetriesPerRequest === undefined
        ? DEFAULTS.maxRetriesPerRequest
        : options.maxRetriesPerRequest,
  };
  if (options.username !== undefined) redis.username = options.username;
  if (options.password !== undefined) redis.password = options.password;
  const retries = options.maxRetriesPerRequest;
  if (retries !== undefined && retries !== null && (!Number.isInteger(retries) || retries < 0)) {
    throw new RedisConfigError(
      `maxRetriesPerRequest must be a non-negative integer or null (got ${String(retries)}).`,
    );
  }
  if (
    options.tls !== undefined &&
    typeof options.tls !== 'boolean' &&
    (typeof options.tls !== 'object' || options.tls === null)
  ) {
    throw new RedisConfigError('tls must be true, false or Node TLS options (an object).');
  }
  const tls = tlsOption(options.tls);
  if (tls) redis.tls = tls;

  if (options.cluster) {
    const cluster = options.cluster;
    if (!Array.isArray(cluster.nodes) || cluster.nodes.length === 0) {
      throw new RedisConfigError('cluster.nodes needs at least one seed node ("host:port").');
    }
    if (options.db !== undefined && options.db !== 0) {
      throw new RedisConfigError('Redis Cluster only has database 0; remove the db option.');
    }
    const retryDelayOnFailover = positiveInteger(
      cluster.retryDelayOnFailoverMs,
      DEFAULTS.retryDelayOnFailoverMs,
      'cluster.retryDelayOnFailoverMs',
    );
    const maxRedirections = positiveInteger(
      cluster.maxRedirections,
      DEFAULTS.maxRedirections,
      'cluster.maxRedirections',
    );
    const nodeTimeout = positiveInteger(
      cluster.clusterNodeTimeoutMs,
      DEFAULTS.clusterNodeTimeoutMs,
      'cluster.clusterNodeTimeoutMs',
    );
    // A failover takes about cluster-node-timeout plus an election. If retries run out first, every command in
    // flight fails even though the cluster heals, so refuse a budget that cannot outlast one.
    if (retryDelayOnFailover * maxRedirections <= nodeTimeout) {
      throw new RedisConfigError(
        `cluster.retryDelayOnFailoverMs × cluster.maxRedirections (${retryDelayOnFailover} × ${maxRedirections}) must exceed ` +
          `cluster-node-timeout (${nodeTimeout} ms) so commands survive a master failover. Raise one of them.`,
      );
    }
    const clusterOptions: ClusterOptions = {
      redisOptions: redis,
      scaleReads: scaleReadsOf(cluster.scaleReads),
      retryDelayOnFailover,
      retryDelayOnClusterDown: positiveInteger(
        cluster.retryDelayOnClusterDownMs,
        DEFAULTS.retryDelayOnClusterDownMs,
        'cluster.retryDelayOnClusterDownMs',
      ),
      retryDelayOnTryAgain: 100,
      maxRedirections,
      enableOfflineQueue: redis.enableOfflineQueue,
      enableAutoPipelining: redis.enableAutoPipelining,
      slotsRefreshTimeout: DEFAULTS.slotsRefreshTimeoutMs,
      ...(cluster.natMap ? { natMap: cluster.natMap } : {}),
      // ioredis resolves seed hostnames to IPs before connecting, and a TLS certificate names the host, not the IP;
      // skipping the lookup keeps certificate checks working on managed TLS clusters.
      ...(tls
        ? { dnsLookup: (address: string, callback: (e: null, a: string) => void) => callback(null, address) }
        : {}),
      ...cluster.clusterOptions,
    };
    if (options.redisOptions) clusterOptions.redisOptions = { ...redis, ...options.redisOptions };
    return {
      name,
      commandTimeoutMs,
      resendInFlightWrites,
      corkWrites,
      topology: 'cluster',
      redis: clusterOptions.redisOptions ?? redis,
      cluster: { nodes: cluster.nodes.map(parseSeedNode), options: clusterOptions },
    };
  }

  if (options.url !== undefined) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch (cause) {
      throw new RedisConfigError('url is not a valid URL; expected redis://[user:password@]host:port[/db].', {
        cause,
      });
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new RedisConfigError(`url must start with redis:// or rediss:// (got ${url.protocol}//).`);
    }
    redis.host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    redis.port = url.port === '' ? 6379 : Number(url.port);
    if (url.username && redis.username === undefined) redis.username = decodeURIComponent(url.username);
    if (url.password && redis.password === undefined) redis.password = decodeURIComponent(url.password);
    const db = url.pathname.replace(/^\//, '');
    if (db !== '') redis.db = Number(db);
    if (url.protocol === 'rediss:' && !redis.tls) redis.tls = {};
  } else {
    redis.host = options.host ?? '127.0.0.1';
    redis.port = options.port ?? 6379;
    if (!validHost(redis.host))
      throw new RedisConfigError(`host must be a host name or address (got ${JSON.stringify(redis.host)}).`);
  }
  if (!validPort(redis.port)) {
    throw new RedisConfigError(`port must be an integer between 1 and 65535 (got ${String(redis.port)}).`);
  }
  if (options.db !== undefined) redis.db = options.db;
  if (redis.db !== undefined && (!Number.isInteger(redis.db) || redis.db < 0)) {
    throw new RedisConfigError(`db must be a non-negative integer (got ${String(redis.db)}).`);
  }
  return {
    name,
    commandTimeoutMs,
    resendInFlightWrites,
    corkWrites,
    topology: 'standalone',
    redis: { ...redis, ...options.redisOptions },
  };
}

type Env = Record<string, string | undefined>;

const TRUE_WORDS = new Set(['true', '1', 'yes']);
const FALSE_WORDS = new Set(['false', '0', 'no']);

/**
 * A boolean variable: unset is `undefined`; `true/false/1/0/yes/no` in any case; anything else (`""`, `on`, `y`)
 * throws, because guessing would fail open: a mistyped `REDIS_TLS_REJECT_UNAUTHORIZED` must not turn off checks.
 */
export function envBoolean(env: Env, name: string): boolean | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const value = raw.trim().toLowerCase();
  if (TRUE_WORDS.has(value)) return true;
  if (FALSE_WORDS.has(value)) return false;
  throw new RedisConfigError(
    `${name} must be one of true, false, 1, 0, yes, no (got ${JSON.stringify(raw)}); unset it for the default.`,
  );
}

/**
 * Reads connection options from the environment:
 * - `REDIS_CLUSTER_NODES` (`host:port,host:port`) for a cluster, else `REDIS_URL` for a standalone server;
 * - `REDIS_USERNAME`, `REDIS_PASSWORD` for ACL users (override URL credentials);
 * - `REDIS_TLS=true` for TLS, `REDIS_TLS_CA_FILE` for a private CA, `REDIS_TLS_SERVERNAME` for SNI,
 *   `REDIS_TLS_REJECT_UNAUTHORIZED=false` only for local testing.
 * Boolean variables accept only `true/false/1/0/yes/no` (any case); anything else throws `E_INVALID_CONFIG`
 * naming the variable, so a typo never disables TLS or certificate checks.
 * @example createRedisClient(fromEnv(), { metrics })
 */
export function fromEnv(
  env: Env = process.env,
  overrides: Partial<RedisClientOptions> = {},
): RedisClientOptions {
  const options: RedisClientOptions = {};
  const nodes = env.REDIS_CLUSTER_NODES?.trim();
  const url = env.REDIS_URL?.trim();
  if (nodes) {
    options.cluster = {
      nodes: nodes
        .split(',')
        .map((node) => node.trim())
        .filter(Boolean),
    };
  } else if (url) {
    options.url = url;
  } else {
    throw new RedisConfigError(
      'Set REDIS_URL (redis://host:6379) for a standalone server or REDIS_CLUSTER_NODES (host:port,host:port) for a cluster.',
    );
  }
  if (env.REDIS_USERNAME) options.username = env.REDIS_USERNAME;
  if (env.REDIS_PASSWORD) options.password = env.REDIS_PASSWORD;
  const tlsFlag = envBoolean(env, 'REDIS_TLS');
  const rejectUnauthorized = envBoolean(env, 'REDIS_TLS_REJECT_UNAUTHORIZED');
  const wantsTls = tlsFlag === true || url?.startsWith('rediss://') === true;
  const tlsSettings = ['REDIS_TLS_CA_FILE', 'REDIS_TLS_SERVERNAME', 'REDIS_TLS_REJECT_UNAUTHORIZED'].filter(
    (name) => env[name] !== undefined && env[name] !== '',
  );
  if (!wantsTls && tlsSettings.length > 0) {
    // The operator asked for TLS settings; connecting in plaintext instead would be a silent downgrade.
    throw new RedisConfigError(
      `${tlsSettings.join(', ')} ${tlsSettings.length === 1 ? 'is' : 'are'} set but TLS is off: set REDIS_TLS=true or use a rediss:// URL${tlsFlag === false ? ' (REDIS_TLS is false)' : ''}.`,
    );
  }
  if (wantsTls) {
    const tls: ConnectionOptions = {};
    if (env.REDIS_TLS_CA_FILE) {
      try {
        tls.ca = readFileSync(env.REDIS_TLS_CA_FILE);
      } catch (cause) {
        throw new RedisConfigError(`REDIS_TLS_CA_FILE (${env.REDIS_TLS_CA_FILE}) cannot be read.`, { cause });
      }
    }
    if (env.REDIS_TLS_SERVERNAME) tls.servername = env.REDIS_TLS_SERVERNAME;
    if (rejectUnauthorized === false) tls.rejectUnauthorized = false;
    options.tls = tls;
  }
  return { ...options, ...overrides };
}
