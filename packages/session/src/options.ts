import type { Codec } from '@austa/codec';
import type { Metrics } from '@austa/metrics';
import type { Cluster, Redis } from 'ioredis';
import { SessionError } from './errors.js';

/** Where a session was opened from. Every field is optional; strings are stored (encrypted when the codec encrypts). */
export interface DeviceInfo {
  /** The User-Agent header, up to 512 characters. */
  userAgent?: string;
  /** The client IP, stored per the `ipAddress` option. */
  ip?: string;
  /** An id the app gives the device (push token id, installation id), up to 128 characters. */
  deviceId?: string;
  /** `web`, `ios`, `android`…, up to 32 characters. */
  platform?: string;
}

/** An audit event. Carries no token: `sessionRef` is the SHA-256 (or HMAC) reference also used as `handle`. */
export interface SessionAuditEvent {
  type: 'create' | 'touch' | 'extend' | 'update' | 'revoke' | 'evict' | 'expire';
  sessionRef: string;
  /** Undefined only for `expire` events of users whose name key expired with their last session. */
  userId: string | undefined;
  /** Undefined for `expire` events: the session is gone when the cleanup finds its index entry. */
  device: DeviceInfo | undefined;
  /** When it happened, by the Redis clock where Redis decided (ms since epoch). */
  atMs: number;
  /** For `revoke`: `logout` (deleteSession), `revoke-all` (deleteUserSessions), `revoke-handle` (deleteUserSession). */
  reason?: 'logout' | 'revoke-all' | 'revoke-handle';
}

export interface SessionStoreOptions {
  /** Any ioredis `Redis` or `Cluster`, e.g. `createRedisClient(...).client`. `close()` never quits it. */
  redis: Redis | Cluster;
  /** Sliding timeout: a session unused for this long expires. OWASP suggests 2-5 min for high-value apps, 15-30 for others. */
  idleTimeoutSeconds: number;
  /** Hard limit from creation, however active the session is. */
  absoluteTimeoutSeconds: number;
  /** Creating a session past this many evicts the user's oldest. */
  maxSessionsPerUser: number;
  /** Key prefix. Default `austa:session`. */
  prefix?: string;
  /** Serializes (and encrypts, when it has keys) session data and device info. Default: `createCodec()` in clear. */
  codec?: Codec;
  /** Largest encoded session data, in bytes. Default 65536. */
  maxDataBytes?: number;
  /** HMAC-SHA-256 key (32+ bytes) for hashing tokens and user ids. Default: plain SHA-256. */
  tokenSecret?: string | Uint8Array;
  /** A read touches (writes) a session only when it was last touched this long ago. Default idle / 10. */
  touchIntervalSeconds?: number;
  /**
   * How the IP of `device.ip` is stored. Default `truncate` (IPv4 /24, IPv6 /48). `hash` (an HMAC) needs
   * `tokenSecret`: an unkeyed hash of an IP is reversed by enumeration.
   */
  ipAddress?: 'store' | 'truncate' | 'hash' | 'omit';
  /** `replicated`: every write waits for one replica (WAIT 1) before it is acknowledged. Default `default`. */
  durability?: 'default' | 'replicated';
  /** WAIT timeout for `replicated`. Keep it below the client's command timeout. Default 1000. */
  replicationTimeoutMs?: number;
  /** `@austa/metrics`; silent without it. */
  metrics?: Metrics;
  /** Called for create, touch, extend, update, revoke, evict and expire; errors it throws are swallowed. */
  onAudit?: (event: SessionAuditEvent) => void;
}

export interface ResolvedOptions {
  redis: Redis | Cluster;
  idleMs: number;
  absoluteMs: number;
  maxSessionsPerUser: number;
  prefix: string;
  codec: Codec | undefined;
  maxDataBytes: number;
  tokenSecret: Buffer | undefined;
  touchIntervalMs: number;
  ipAddress: 'store' | 'truncate' | 'hash' | 'omit';
  replicated: boolean;
  replicationTimeoutMs: number;
  metrics: Metrics | undefined;
  onAudit: ((event: SessionAuditEvent) => void) | undefined;
}

export const DEFAULTS = {
  prefix: 'austa:session',
  maxDataBytes: 64 * 1024,
  ipAddress: 'truncate',
  durability: 'default',
  replicationTimeoutMs: 1000,
} as const;

const PREFIX = /^[A-Za-z0-9_.:-]{1,64}$/;
const MAX_TIMEOUT_SECONDS = 366 * 24 * 3600;

function config(message: string): SessionError {
  return new SessionError('E_INVALID_CONFIG', message);
}

function seconds(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TIMEOUT_SECONDS) {
    throw config(
      `${name} must be a finite number of seconds > 0 and at most one year (got ${String(value)}).`,
    );
  }
  const ms = Math.round(value * 1000);
  if (ms < 1) throw config(`${name} must be at least 1 ms.`);
  return ms;
}

function isClient(value: unknown): value is Redis | Cluster {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Redis).evalsha === 'function' &&
    typeof (value as Redis).pipeline === 'function'
  );
}

export function resolveOptions(options: SessionStoreOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null)
    throw config('createSessionStore needs an options object.');
  if (!isClient(options.redis)) {
    throw config('redis must be an ioredis Redis or Cluster (for example createRedisClient(...).client).');
  }
  const idleMs = seconds(options.idleTimeoutSeconds, 'idleTimeoutSeconds');
  const absoluteMs = seconds(options.absoluteTimeoutSeconds, 'absoluteTimeoutSeconds');
  if (absoluteMs < idleMs) {
    throw config(
      'absoluteTimeoutSeconds must be at least idleTimeoutSeconds (the absolute limit is the outer one).',
    );
  }
  const max = options.maxSessionsPerUser;
  if (!Number.isSafeInteger(max) || max < 1 || max > 1000) {
    throw config(`maxSessionsPerUser must be an integer from 1 to 1000 (got ${String(max)}).`);
  }
  const prefix = options.prefix ?? DEFAULTS.prefix;
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    throw config('prefix must be 1-64 characters of A-Z a-z 0-9 _ . : - (no glob characters, no braces).');
  }
  const maxDataBytes = options.maxDataBytes ?? DEFAULTS.maxDataBytes;
  if (!Number.isSafeInteger(maxDataBytes) || maxDataBytes < 64 || maxDataBytes > 16 * 1024 * 1024) {
    throw config('maxDataBytes must be an integer from 64 to 16777216.');
  }
  let tokenSecret: Buffer | undefined;
  if (options.tokenSecret !== undefined) {
    const secret = options.tokenSecret;
    tokenSecret =
      typeof secret === 'string'
        ? Buffer.from(secret, 'utf8')
        : secret instanceof Uint8Array
          ? Buffer.from(secret)
          : undefined;
    if (!tokenSecret || tokenSecret.length < 32) {
      throw config('tokenSecret must be a string or bytes of at least 32 bytes (openssl rand -base64 32).');
    }
  }
  const touchIntervalMs =
    options.touchIntervalSeconds === undefined
      ? Math.floor(idleMs / 10)
      : options.touchIntervalSeconds === 0
        ? 0
        : seconds(options.touchIntervalSeconds, 'touchIntervalSeconds');
  if (touchIntervalMs >= idleMs) throw config('touchIntervalSeconds must be below idleTimeoutSeconds.');
  const ipAddress = options.ipAddress ?? DEFAULTS.ipAddress;
  if (!['store', 'truncate', 'hash', 'omit'].includes(ipAddress)) {
    throw config("ipAddress must be 'store', 'truncate', 'hash' or 'omit'.");
  }
  const durability = options.durability ?? DEFAULTS.durability;
  if (durability !== 'default' && durability !== 'replicated') {
    throw config("durability must be 'default' or 'replicated'.");
  }
  const replicationTimeoutMs = options.replicationTimeoutMs ?? DEFAULTS.replicationTimeoutMs;
  if (
    !Number.isSafeInteger(replicationTimeoutMs) ||
    replicationTimeoutMs < 1 ||
    replicationTimeoutMs > 60_000
  ) {
    throw config('replicationTimeoutMs must be an integer from 1 to 60000.');
  }
  const codec = options.codec;
  if (codec !== undefined && (typeof codec?.encode !== 'function' || typeof codec?.decode !== 'function')) {
    throw config('codec must come from createCodec() of @austa/codec.');
  }
  if (ipAddress === 'hash' && tokenSecret === undefined) {
    // A plain SHA-256 of an IP is reversed by hashing all 2^32 IPv4 addresses in minutes: it would be stored as if
    // anonymised while it is not.
    throw config(
      "ipAddress 'hash' needs tokenSecret (32+ bytes): without a key the hash of an IP address is reversed by " +
        "enumerating addresses. Set tokenSecret, or use 'truncate' or 'omit'.",
    );
  }
  const metrics = options.metrics;
  if (
    metrics !== undefined &&
    (typeof metrics !== 'object' ||
      metrics === null ||
      typeof (metrics as Partial<Metrics>).packageInstruments !== 'function' ||
      typeof (metrics as Partial<Metrics>).operationDuration !== 'function')
  ) {
    throw config('metrics must come from createMetrics() of @austa/metrics.');
  }
  if (options.onAudit !== undefined && typeof options.onAudit !== 'function') {
    throw config('onAudit must be a function.');
  }
  return {
    redis: options.redis,
    idleMs,
    absoluteMs,
    maxSessionsPerUser: max,
    prefix,
    codec,
    maxDataBytes,
    tokenSecret,
    touchIntervalMs,
    ipAddress,
    replicated: durability === 'replicated',
    replicationTimeoutMs,
    metrics,
    onAudit: options.onAudit,
  };
}
