import type { Collection, Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { MongoConfigError, TokenStoreError } from '../src/errors.js';
import { createMongoTokenStore } from '../src/mongo-token-store.js';
import { createRedisTokenStore } from '../src/redis-token-store.js';
import {
  createMemoryTokenStore,
  DEFAULT_TOKEN_TTL_SECONDS,
  parseToken,
  tokenKey,
} from '../src/token-store.js';
import { tokenStoreContract } from './token-store-contract.js';

/** A stand-in for the four Collection methods the Mongo token store calls; the real one runs in the integration suite. */
function fakeCollection() {
  const documents = new Map<string, Document>();
  const indexes: Array<{ keys: Document; options: Document }> = [];
  const collection = {
    async findOne(filter: { _id: string }) {
      return documents.get(filter._id) ?? null;
    },
    async updateOne(filter: { _id: string }, update: { $set: Document }, options: { upsert?: boolean }) {
      const existing = documents.get(filter._id);
      if (existing === undefined && !options.upsert) return { matchedCount: 0 };
      documents.set(filter._id, { ...(existing ?? { _id: filter._id }), ...update.$set });
      return { matchedCount: existing ? 1 : 0 };
    },
    async deleteOne(filter: { _id: string }) {
      documents.delete(filter._id);
    },
    async createIndex(keys: Document, options: Document) {
      indexes.push({ keys, options });
      return 'austa_token_expiry';
    },
  };
  return { collection: collection as unknown as Collection<Document>, documents, indexes };
}

describe('memory token store', () => {
  const store = createMemoryTokenStore();
  const saved = new Set<string>();
  tokenStoreContract(() => ({
    store: {
      load: (stream) => store.load(stream),
      save: async (stream, token) => {
        await store.save(stream, token);
        saved.add(stream);
      },
      delete: (stream) => store.delete(stream),
    },
    written: async () => saved.size,
    name: (suffix) => `memory-${suffix}`,
  }));
});

describe('mongo token store (on a fake collection)', () => {
  const fake = fakeCollection();
  const store = createMongoTokenStore({ collection: fake.collection, ttlSeconds: 60 });
  tokenStoreContract(() => ({
    store,
    written: async () => fake.documents.size,
    name: (suffix) => `mongo-${suffix}`,
  }));

  it('keeps the token as Extended JSON with updatedAt and an expiresAt ttlSeconds ahead', async () => {
    const before = Date.now();
    await store.save('mongo-layout', { _data: '82AB' });
    const document = fake.documents.get('mongo-layout');
    expect(document?.token).toBe('{"_data":"82AB"}');
    expect(document?.updatedAt).toBeInstanceOf(Date);
    const expiresAt = (document?.expiresAt as Date | undefined)?.getTime() ?? 0;
    expect(expiresAt).toBeGreaterThanOrEqual(before + 60_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 60_000);
  });

  it('creates a TTL index on expiresAt', async () => {
    await store.ensureTtlIndex();
    expect(fake.indexes).toEqual([
      { keys: { expiresAt: 1 }, options: { expireAfterSeconds: 0, name: 'austa_token_expiry' } },
    ]);
  });

  it('reports a corrupt stored token as E_TOKEN_STORE instead of starting from now', async () => {
    fake.documents.set('mongo-corrupt', { _id: 'mongo-corrupt', token: '{not json' });
    await expect(store.load('mongo-corrupt')).rejects.toSatisfy((error) => TokenStoreError.isInstance(error));
    fake.documents.set('mongo-corrupt', { _id: 'mongo-corrupt', token: 42 });
    await expect(store.load('mongo-corrupt')).rejects.toMatchObject({ code: 'E_TOKEN_STORE' });
  });

  it('refuses options that cannot work', () => {
    expect(() => createMongoTokenStore({} as never)).toThrow(MongoConfigError);
    expect(() => createMongoTokenStore({ collection: fake.collection, ttlSeconds: 0 })).toThrow(
      MongoConfigError,
    );
    expect(DEFAULT_TOKEN_TTL_SECONDS).toBe(2_592_000);
  });
});

describe('redis token store options', () => {
  const redis = { get: async () => null, set: async () => 'OK', del: async () => 0 } as never;

  it.each([
    ['no client', {}],
    ['a prefix with a hash tag', { redis, prefix: 'austa:{x}' }],
    ['a prefix with glob characters', { redis, prefix: 'austa*' }],
    ['a zero TTL', { redis, ttlSeconds: 0 }],
    ['a fractional TTL', { redis, ttlSeconds: 1.5 }],
  ])('refuses %s with E_INVALID_CONFIG', (_label, options) => {
    expect(() => createRedisTokenStore(options as never)).toThrow(
      expect.objectContaining({ code: 'E_INVALID_CONFIG' }),
    );
  });
});

describe('token helpers', () => {
  it('compares tokens by their _data, and others by canonical Extended JSON', () => {
    expect(tokenKey({ _data: 'abc' })).toBe('abc');
    expect(tokenKey({ ts: 1, other: 'x' })).toBe(tokenKey({ ts: 1, other: 'x' }));
    expect(tokenKey({ ts: 1 })).not.toBe(tokenKey({ ts: 2 }));
  });

  it('refuses stored text that is not a document', () => {
    for (const text of ['', 'null', '[1]', '"x"', '{']) {
      expect(() => parseToken(text)).toThrow(expect.objectContaining({ code: 'E_TOKEN_STORE' }));
    }
  });
});
