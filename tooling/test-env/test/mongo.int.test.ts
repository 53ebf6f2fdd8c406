import { MongoClient } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { mongoTarget } from '../src/vitest.js';

const mongo = mongoTarget();

// When no MongoDB could be had, global-setup-mongo printed why and this suite is reported skipped.
describe.runIf(mongo.available)('MongoDB from global-setup-mongo', () => {
  it('answers ping and runs as a replica set (change streams need one)', async () => {
    if (!mongo.available) throw new Error('unreachable');
    const client = new MongoClient(mongo.url, { serverSelectionTimeoutMS: 5_000 });
    try {
      expect(await client.db('admin').command({ ping: 1 })).toMatchObject({ ok: 1 });
      const hello = await client.db('admin').command({ hello: 1 });
      expect(hello.setName).toEqual(expect.any(String));
    } finally {
      await client.close();
    }
  });
});

describe('mongoTarget()', () => {
  it('says why MongoDB is unavailable instead of pretending', () => {
    if (mongo.available) expect(mongo.url).toMatch(/^mongodb(\+srv)?:\/\//);
    else expect(mongo.reason).toMatch(/mongodb-memory-server: .+/);
  });
});
