import { MongoClient } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { findFreePortBlock } from '../src/ports.js';
import { mongoRequired, mongoTarget, resolveMongo } from '../src/vitest.js';

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

describe('REQUIRE_MONGO and MONGODB_URL', () => {
  it('REQUIRE_MONGO accepts true/false/1/0/yes/no in any case and refuses anything else', () => {
    for (const word of ['true', 'TRUE', '1', 'yes', ' Yes '])
      expect(mongoRequired({ REQUIRE_MONGO: word })).toBe(true);
    for (const word of ['false', '0', 'no', 'No', ''])
      expect(mongoRequired({ REQUIRE_MONGO: word })).toBe(false);
    expect(mongoRequired({})).toBe(false);
    for (const word of ['on', 'y', 'required', '2']) {
      expect(() => mongoRequired({ REQUIRE_MONGO: word })).toThrow(
        /REQUIRE_MONGO must be one of true, false/,
      );
    }
  });

  it('resolveMongo() refuses a REQUIRE_MONGO value it does not understand before trying any source', async () => {
    await expect(resolveMongo({ REQUIRE_MONGO: 'on', MONGODB_URL: 'mongodb://127.0.0.1:1' })).rejects.toThrow(
      /REQUIRE_MONGO must be one of/,
    );
  });

  it('resolveMongo() fails, never skips, when MONGODB_URL is set but nothing answers there', async () => {
    const port = await findFreePortBlock(1);
    const url = `mongodb://tester:secret@127.0.0.1:${port}/austa`;
    // Both at once: each waits out the driver's server selection timeout.
    const failures = await Promise.all(
      [{ MONGODB_URL: url }, { MONGODB_URL: url, REQUIRE_MONGO: '1' }].map((env) =>
        resolveMongo(env).then(
          () => undefined,
          (error: unknown) => error as Error,
        ),
      ),
    );
    for (const failure of failures) {
      expect(failure?.message).toMatch(
        new RegExp(
          `^MONGODB_URL=mongodb://\\*\\*\\*@127\\.0\\.0\\.1:${port}/austa is set but MongoDB there did not answer`,
        ),
      );
      // The password never reaches a log.
      expect(failure?.message).not.toContain('secret');
    }
  });

  it('resolveMongo() with REQUIRE_MONGO=1 either finds a MongoDB or fails saying why, never returns unavailable', async () => {
    const outcome = await resolveMongo({ REQUIRE_MONGO: '1' }).then(
      (handle) => ({ handle }),
      (error: unknown) => ({ error: error as Error }),
    );
    if ('handle' in outcome) {
      try {
        expect(outcome.handle.target.available).toBe(true);
      } finally {
        await outcome.handle.stop();
      }
    } else {
      expect(outcome.error.message).toMatch(
        /^REQUIRE_MONGO=1 but no MongoDB could be had \(mongodb-memory-server: .+MONGODB_URL not set\)/,
      );
    }
  });
});
