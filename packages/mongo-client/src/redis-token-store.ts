import type { Cluster, Redis } from 'ioredis';
import { MongoConfigError } from './errors.js';
import {
  DEFAULT_TOKEN_TTL_SECONDS,
  parseToken,
  type ResumeTokenStore,
  serializeToken,
} from './token-store.js';
import { assertStreamName } from './validation.js';

/** Options of {@link createRedisTokenStore}. */
export interface RedisTokenStoreOptions {
  /** Any ioredis client, standalone or Cluster. The store never connects, quits or reconfigures it. */
  redis: Redis | Cluster;
  /** Key prefix. Keys are `<prefix>:token:{<stream>}`. Default `austa:mongo`. */
  prefix?: string;
  /**
   * Lifetime of a saved token, in seconds, renewed on every save. Default 2,592,000 (30 days): far longer than the
   * oplog window of most deployments (hours to days), so a token only expires once it could no longer be resumed
   * anyway. A running stream renews it at least every `idleCheckpointIntervalMs`, even without events.
   */
  ttlSeconds?: number;
}

const PREFIX_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/**
 * A token store on Redis. Each stream's token is one string key holding canonical Extended JSON, written with
 * `SET … EX`, so every key expires. The stream name sits inside the key's hash tag: each token is a single-key
 * operation on a Cluster, and stream names are validated (no `{`, `}`, glob characters or control characters), so a
 * name can neither pick another key's slot nor match another stream's key.
 */
export function createRedisTokenStore(options: RedisTokenStoreOptions): ResumeTokenStore {
  const redis = options?.redis as (Redis | Cluster) | undefined;
  if (typeof redis !== 'object' || redis === null || typeof redis.set !== 'function') {
    throw new MongoConfigError('createRedisTokenStore needs { redis }: an ioredis Redis or Cluster client.');
  }
  const prefix = options.prefix ?? 'austa:mongo';
  if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) {
    throw new MongoConfigError(
      'prefix must be 1-64 characters of A-Z, a-z, 0-9, ".", "_", ":" or "-", starting with a letter or digit.',
    );
  }
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new MongoConfigError(`ttlSeconds must be a positive integer (got ${String(ttlSeconds)}).`);
  }
  const key = (stream: string) => `${prefix}:token:{${stream}}`;
  return {
    async load(stream) {
      assertStreamName(stream);
      const text = await redis.get(key(stream));
      return text === null ? undefined : parseToken(text);
    },
    async save(stream, token) {
      assertStreamName(stream);
      await redis.set(key(stream), serializeToken(token), 'EX', ttlSeconds);
    },
    async delete(stream) {
      assertStreamName(stream);
      await redis.del(key(stream));
    },
  };
}
