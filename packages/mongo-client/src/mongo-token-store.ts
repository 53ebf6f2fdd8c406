import type { Collection, Document } from 'mongodb';
import { MongoConfigError } from './errors.js';
import {
  DEFAULT_TOKEN_TTL_SECONDS,
  parseToken,
  type ResumeTokenStore,
  serializeToken,
} from './token-store.js';
import { assertStreamName } from './validation.js';

/** Options of {@link createMongoTokenStore}. */
export interface MongoTokenStoreOptions {
  /**
   * The collection holding one document per stream: `{ _id: <stream>, token, updatedAt, expiresAt }`. Use a
   * collection of its own. Writes use the collection's write concern; keep it `majority` so a saved token survives a
   * failover.
   */
  collection: Collection<Document>;
  /**
   * Sets `expiresAt` to now plus this many seconds on every save. Documents only expire once a TTL index exists on
   * `expiresAt`: create it with `ensureTtlIndex()`. Default 2,592,000 (30 days), as for the Redis store.
   */
  ttlSeconds?: number;
}

/** A token store on a MongoDB collection, with `ensureTtlIndex()` to make saved tokens expire. */
export interface MongoTokenStore extends ResumeTokenStore {
  /** Creates the TTL index on `expiresAt` (idempotent). */
  ensureTtlIndex(): Promise<void>;
}

interface TokenDocument {
  _id: string;
  token: string;
  updatedAt: Date;
  expiresAt: Date;
}

/**
 * A token store on a MongoDB collection. The token is kept as canonical Extended JSON text, so it comes back with
 * exactly the BSON types it had whatever the collection's codec options.
 */
export function createMongoTokenStore(options: MongoTokenStoreOptions): MongoTokenStore {
  const collection = options?.collection as unknown as Collection<TokenDocument> | undefined;
  if (typeof collection !== 'object' || collection === null || typeof collection.findOne !== 'function') {
    throw new MongoConfigError(
      'createMongoTokenStore needs { collection }: a Collection from the mongodb package.',
    );
  }
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new MongoConfigError(`ttlSeconds must be a positive integer (got ${String(ttlSeconds)}).`);
  }
  return {
    async load(stream) {
      assertStreamName(stream);
      const document = await collection.findOne({ _id: stream });
      if (document === null) return undefined;
      return parseToken(typeof document.token === 'string' ? document.token : '');
    },
    async save(stream, token) {
      assertStreamName(stream);
      const text = serializeToken(token);
      const now = Date.now();
      await collection.updateOne(
        { _id: stream },
        { $set: { token: text, updatedAt: new Date(now), expiresAt: new Date(now + ttlSeconds * 1000) } },
        { upsert: true },
      );
    },
    async delete(stream) {
      assertStreamName(stream);
      await collection.deleteOne({ _id: stream });
    },
    async ensureTtlIndex() {
      await collection.createIndex({ expiresAt: 1 }, { expireAfterSeconds: 0, name: 'austa_token_expiry' });
    },
  };
}
