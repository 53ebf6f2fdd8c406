import type { Cache } from '@austa/cache';
import { type AustaMongoClient, createRedisTokenStore, type ManagedChangeStream } from '@austa/mongo-client';
import type { Cluster, Redis } from 'ioredis';
import { PROFILES_COLLECTION, profileTag } from './routes/patients.js';

/** The stream's name: the key of its resume token and its metric label. Stable across deploys. */
export const PROFILE_STREAM = 'care-api-profiles';

/**
 * Every insert, update, replace or delete in the profiles collection invalidates that patient's cache tag, so a write
 * made anywhere is seen on the next read. The resume token is kept in Redis: after a restart the stream picks up
 * where it stopped, and writes made meanwhile still invalidate. A handler that fails (Redis away) is retried by the
 * stream; the token never moves past an event whose invalidation did not happen.
 */
export function startProfileSync(options: {
  mongo: AustaMongoClient;
  profiles: Cache;
  redis: Redis | Cluster;
  /** Server poll interval, in ms; tests shorten it. Default: the server's (1000). */
  maxAwaitTimeMs?: number;
}): ManagedChangeStream {
  const { mongo, profiles } = options;
  return mongo.watchOperations(
    PROFILES_COLLECTION,
    ['insert', 'update', 'replace', 'delete'],
    async (change) => {
      const id = (change as { documentKey?: { _id?: unknown } }).documentKey?._id;
      if (typeof id === 'string') await profiles.invalidateByTags([profileTag(id)]);
    },
    {
      name: PROFILE_STREAM,
      tokenStore: createRedisTokenStore({ redis: options.redis, prefix: 'care:mongo' }),
      ...(options.maxAwaitTimeMs !== undefined ? { maxAwaitTimeMs: options.maxAwaitTimeMs } : {}),
    },
  );
}
