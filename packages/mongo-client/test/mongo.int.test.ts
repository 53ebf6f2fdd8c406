import { randomBytes } from 'node:crypto';
import { createMetrics } from '@austa/metrics';
import {
  createTestClient,
  deleteByPrefix,
  keysWithoutTtl,
  mongoTarget,
  redisTargets,
  uniquePrefix,
} from '@austa/test-env/vitest';
import type { Redis } from 'ioredis';
import { type ChangeStreamDocument, type Document, MongoClient, MongoServerError } from 'mongodb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedChangeStream } from '../src/change-stream.js';
import { type AustaMongoClient, createMongoClient } from '../src/client.js';
import { createMongoTokenStore } from '../src/mongo-token-store.js';
import { type CreateMongoClientOptions, fromEnv } from '../src/options.js';
import { createRedisTokenStore } from '../src/redis-token-store.js';
import { createMemoryTokenStore, type ResumeTokenStore } from '../src/token-store.js';
import { recordingLogger, until } from './fakes.js';
import { observations, sample, untilAsync } from './support.js';
import { tokenStoreContract } from './token-store-contract.js';

/** The `_id` of the changed document (insert, update, replace and delete events carry `documentKey`). */
function idOf(change: ChangeStreamDocument): unknown {
  return (change as { documentKey?: { _id?: unknown } }).documentKey?._id;
}

// When no MongoDB could be had, global-setup-mongo printed one line saying why, and this whole file is reported
// skipped. A MONGODB_URL that does not answer fails the run in that setup instead.
const mongo = mongoTarget();
const url = mongo.available ? mongo.url : '';
// Fail points and step-downs disturb the server: only on one this run started, or when its owner opts in.
const mayFault = mongo.available && (mongo.owned || process.env.MONGODB_ALLOW_FAULTS === '1');
// Polls answer quickly, so a test waits milliseconds for "stream is open" rather than the server's 1 s default.
const FAST_POLLS = { maxAwaitTimeMs: 100, restartDelayMs: 50, maxRestartDelayMs: 1000 } as const;

describe.runIf(mongo.available)('@austa/mongo-client on a real MongoDB replica set', () => {
  const dbName = `austa_mc_${randomBytes(4).toString('hex')}`;
  let admin: MongoClient;
  const clients: AustaMongoClient[] = [];

  const newClient = (options: Partial<CreateMongoClientOptions> = {}) => {
    const client = createMongoClient({ url, dbName, logger: recordingLogger(), ...options });
    clients.push(client);
    return client;
  };
  const collection = (name: string) => admin.db(dbName).collection<Document>(name);
  const running = (stream: ManagedChangeStream) => stream.ready();
  /** Watches inserts into `name`, collecting the inserted ids in order, and waits until the stream is open. */
  const watchInserts = async (
    client: AustaMongoClient,
    name: string,
    options: Parameters<AustaMongoClient['watchOperations']>[3],
  ) => {
    const seen: unknown[] = [];
    const stream = client.watchOperations(
      name,
      ['insert'],
      async (change) => {
        seen.push(idOf(change));
      },
      options,
    );
    await running(stream);
    return { stream, seen };
  };
  const shared = (operation: string, errorType = '') => ({
    db_system_name: 'mongodb',
    db_operation_name: operation,
    error_type: errorType,
  });

  beforeAll(async () => {
    admin = new MongoClient(url, { serverSelectionTimeoutMS: 30_000 });
    await admin.connect();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });

  afterAll(async () => {
    await admin?.db(dbName).dropDatabase();
    await admin?.close();
  });

  describe('metrics from driver events', () => {
    it('measures insertOne, findOne, updateOne and deleteOne exactly once each', async () => {
      const metrics = createMetrics();
      const client = newClient({ metrics });
      const patients = client.collection('crud');
      await patients.insertOne({ _id: 1 as never, name: 'Ada' });
      expect(await patients.findOne({ _id: 1 as never })).toMatchObject({ name: 'Ada' });
      await patients.updateOne({ _id: 1 as never }, { $set: { name: 'Grace' } });
      await patients.deleteOne({ _id: 1 as never });
      for (const operation of ['insert', 'find', 'update', 'delete']) {
        expect(await observations(metrics, 'db_client_operation_duration_seconds', shared(operation))).toBe(
          1,
        );
        expect(
          await observations(metrics, 'db_client_operation_duration_seconds', {
            db_operation_name: operation,
            db_collection_name: 'crud',
            error_type: '',
          }),
        ).toBe(1);
      }
    });

    it('labels a duplicate key error as DuplicateKey', async () => {
      const metrics = createMetrics();
      const client = newClient({ metrics });
      const patients = client.collection('duplicates');
      await patients.insertOne({ _id: 'same' as never });
      const error = await patients.insertOne({ _id: 'same' as never }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(MongoServerError);
      expect((error as MongoServerError).code).toBe(11000);
      expect(
        await observations(metrics, 'db_client_operation_duration_seconds', shared('insert', 'DuplicateKey')),
      ).toBe(1);
      expect(await observations(metrics, 'db_client_operation_duration_seconds', shared('insert'))).toBe(1);
    });

    it('reports pool connections, waits and no failures under maxPoolSize: 1', async () => {
      const metrics = createMetrics();
      const client = newClient({ metrics, maxPoolSize: 1, name: 'pool' });
      const pool = client.collection('pool');
      await Promise.all(Array.from({ length: 20 }, (_, i) => pool.findOne({ _id: i as never })));
      expect(
        await observations(metrics, 'austa_mongo_pool_wait_seconds', { client: 'pool' }),
      ).toBeGreaterThanOrEqual(20);
      const idle = await sample(metrics, 'austa_mongo_pool_connections', { client: 'pool', state: 'idle' });
      const used = await sample(metrics, 'austa_mongo_pool_connections', { client: 'pool', state: 'used' });
      expect(used).toBe(0);
      expect(idle).toBe(1);
      expect(await sample(metrics, 'austa_mongo_pool_checkout_failures_total', { client: 'pool' })).toBe(0);
      // Nineteen of the twenty finds queued behind the one connection: some waited longer than the fastest bucket.
      const fast = await sample(metrics, 'austa_mongo_pool_wait_seconds_bucket', {
        client: 'pool',
        le: '0.0001',
      });
      expect(fast).toBeLessThan(20);
    });

    it('keeps change-stream polls out of the operation histograms', async () => {
      const metrics = createMetrics();
      const client = newClient({ metrics });
      await collection('polls').insertOne({ seed: true });
      const stream = client.watchOperations('polls', ['insert'], async () => {}, FAST_POLLS);
      await running(stream);
      const polls = () =>
        observations(metrics, 'austa_mongo_change_stream_poll_duration_seconds', {
          db_collection_name: 'polls',
          error_type: '',
        });
      await untilAsync(async () => (await polls()) >= 3, 30_000, 'three change-stream polls');
      expect(await observations(metrics, 'db_client_operation_duration_seconds', shared('getmore'))).toBe(0);
      expect(await observations(metrics, 'db_client_operation_duration_seconds', shared('aggregate'))).toBe(
        1,
      );
    });
  });

  describe('health()', () => {
    it('reports ping, the replica set and its primary', async () => {
      const client = newClient();
      await client.connect();
      const health = await client.health();
      expect(health.problems).toEqual([]);
      expect(health).toMatchObject({ healthy: true, ping: { ok: true } });
      expect(health.topology.setName).toEqual(expect.any(String));
      expect(health.primary).toMatch(/:\d+$/);
    });
  });

  describe('review scenarios', () => {
    it('health(null) answers instead of throwing', async () => {
      const client = newClient();
      await client.connect();
      expect(await client.health(null as never)).toMatchObject({ healthy: true, ping: { ok: true } });
    });

    it('fromEnv() builds a client that reaches the server, and refuses an unreadable TLS flag', async () => {
      const client = createMongoClient(
        fromEnv({ MONGODB_URL: url, MONGODB_DB: dbName }, { logger: recordingLogger() }),
      );
      clients.push(client);
      await client.connect();
      expect((await client.health()).ping.ok).toBe(true);
      expect(() => fromEnv({ MONGODB_URL: url, MONGODB_TLS: 'ture' })).toThrow(/MONGODB_TLS/);
    });

    it('leaves a client that connected once closed after .client.close(), instead of reopening it', async () => {
      const client = newClient();
      await client.connect();
      await client.client.close();
      // Past the background reconnect's first attempt (500 ms, jitter down to half) with room to spare.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await expect(client.client.db(dbName).command({ ping: 1 })).rejects.toMatchObject({
        name: expect.stringMatching(/MongoTopologyClosedError|MongoNotConnectedError/),
      });
    });

    it('refuses a forged BSON value and a misspelt option before the server sees anything', async () => {
      const metrics = createMetrics();
      const client = newClient({ metrics, sanitizeFilters: true });
      await client.connect();
      const forged = JSON.parse('{"email":{"_bsontype":"ObjectId","$where":"sleep(1000)"}}');
      await expect(client.collection('forged').findOne(forged)).rejects.toMatchObject({
        code: 'E_UNSAFE_FILTER',
      });
      expect(() =>
        client.watchOperations('forged', ['insert'], async () => {}, { onInvalidated: 'restart' } as never),
      ).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
      expect(
        await observations(metrics, 'db_client_operation_duration_seconds', {
          db_collection_name: 'forged',
        }),
      ).toBe(0);
    });

    it('keeps delivering while the token store hangs on every save', async () => {
      const metrics = createMetrics();
      const client = newClient({ metrics });
      const memory = createMemoryTokenStore();
      const hanging: ResumeTokenStore = { ...memory, save: () => new Promise<void>(() => {}) };
      await collection('hung_store').insertOne({ _id: 'seed' as never });
      const { seen } = await watchInserts(client, 'hung_store', {
        ...FAST_POLLS,
        tokenStore: hanging,
        tokenStoreTimeoutMs: 50,
      });
      await collection('hung_store').insertMany([{ _id: 'h1' }, { _id: 'h2' }] as never[]);
      await until(() => seen.length === 2, 30_000, 'both inserts past the hanging store');
      expect(seen).toEqual(['h1', 'h2']);
      await untilAsync(
        async () =>
          (await sample(metrics, 'austa_mongo_change_stream_token_save_failures_total', {
            stream: 'hung_store',
          })) >= 1,
        10_000,
        'a timed-out save',
      );
    });

    it('keeps the lag growing while a handler is stuck on an event', async () => {
      const metrics = createMetrics();
      const client = newClient({ metrics });
      await collection('stuck').insertOne({ _id: 'seed' as never });
      let release: () => void = () => {};
      const stuck = new Promise<void>((resolve) => {
        release = resolve;
      });
      let entered = false;
      const stream = client.watchOperations(
        'stuck',
        ['insert'],
        async () => {
          entered = true;
          await stuck;
        },
        { ...FAST_POLLS, name: 'stuck-lag' },
      );
      await running(stream);
      await collection('stuck').insertOne({ _id: 'poison' as never });
      await until(() => entered, 30_000, 'the handler to start');
      const lag = () => sample(metrics, 'austa_mongo_change_stream_lag_seconds', { stream: 'stuck-lag' });
      const first = await lag();
      await untilAsync(async () => (await lag()) >= first + 1, 10_000, 'the lag to grow by a second');
      release();
      await until(() => stream.status().handled === 1, 30_000, 'the event to be handled');
    });

    it('reports an unnamed stream on a collection outside the allowlist as other, never by name', async () => {
      const metrics = createMetrics();
      const client = newClient({ metrics, collectionLabels: ['patients'] });
      const name = 'notes_8f3a9c2e';
      await collection(name).insertOne({ _id: 'seed' as never });
      const { seen } = await watchInserts(client, name, FAST_POLLS);
      await collection(name).insertOne({ _id: 'n1' as never });
      await until(() => seen.length === 1, 30_000, 'the insert');
      const text = await metrics.text();
      expect(text).not.toContain('8f3a9c2e');
      expect(
        await sample(metrics, 'mongodb_change_stream_events_total', {
          collection: 'other',
          operation_type: 'insert',
        }),
      ).toBe(1);
    });
  });

  describe('change streams', () => {
    it('delivers updates touching nested and array paths to watchFields, and nothing else', async () => {
      const client = newClient();
      const target = collection('fields');
      await target.insertOne({
        _id: 'p1' as never,
        name: 'Ada',
        address: { city: 'London' },
        items: [{ price: 1, qty: 1 }],
      });
      const seen: string[] = [];
      const stream = client.watchFields(
        'fields',
        ['address.city', 'items.price'],
        async (change) => {
          if (change.operationType === 'update')
            seen.push(Object.keys(change.updateDescription.updatedFields ?? {}).join() || 'removed');
        },
        FAST_POLLS,
      );
      await running(stream);
      await target.updateOne({ _id: 'p1' as never }, { $set: { name: 'Grace' } });
      await target.updateOne({ _id: 'p1' as never }, { $set: { 'address.city': 'Paris' } });
      await target.updateOne({ _id: 'p1' as never }, { $set: { 'items.0.qty': 5 } });
      await target.updateOne({ _id: 'p1' as never }, { $set: { 'items.0.price': 9 } });
      await target.updateOne({ _id: 'p1' as never }, { $unset: { address: '' } });
      await until(() => seen.length === 3, 30_000, 'three matching updates');
      expect(seen).toEqual(['address.city', 'items.0.price', 'removed']);
    });

    describe.each(['memory', 'redis', 'mongo'] as const)('with the %s token store', (kind) => {
      let redis: Redis | undefined;
      const prefix = uniquePrefix('mongo-client-int');
      let store: ResumeTokenStore;

      beforeAll(() => {
        if (kind === 'memory') store = createMemoryTokenStore();
        else if (kind === 'redis') {
          redis = createTestClient(redisTargets(), 'standalone');
          store = createRedisTokenStore({ redis, prefix, ttlSeconds: 600 });
        } else store = createMongoTokenStore({ collection: collection('austa_tokens') });
      });

      afterAll(async () => {
        if (redis) {
          expect(await keysWithoutTtl(redis, prefix)).toEqual([]);
          await deleteByPrefix(redis, prefix);
          await redis.quit();
        }
      });

      it('a restarted stream receives every event missed while it was down, once and in order', async () => {
        const name = `resume-${kind}`;
        const target = collection(name);
        await target.insertOne({ _id: 'seed' as never });
        const before = newClient();
        const { seen: first } = await watchInserts(before, name, { ...FAST_POLLS, name, tokenStore: store });
        await target.insertOne({ _id: 'a' as never });
        await until(() => first.includes('a'), 30_000, 'event a');
        await before.close();

        await target.insertMany([{ _id: 'b' }, { _id: 'c' }, { _id: 'd' }] as never[]);

        const { seen: second } = await watchInserts(newClient(), name, {
          ...FAST_POLLS,
          name,
          tokenStore: store,
        });
        await until(() => second.length >= 3, 30_000, 'the three missed events');
        await target.insertOne({ _id: 'e' as never });
        await until(() => second.includes('e'), 30_000, 'event e');
        expect(first).toEqual(['a']);
        expect(second).toEqual(['b', 'c', 'd', 'e']);
      });

      it('a stream that never saw an event still resumes from where it started', async () => {
        const name = `fresh-${kind}`;
        const options = { ...FAST_POLLS, name, tokenStore: store };
        const before = newClient();
        await watchInserts(before, name, options);
        await before.close();
        await collection(name).insertOne({ _id: 'while-down' as never });
        const { seen } = await watchInserts(newClient(), name, options);
        await until(() => seen.length === 1, 30_000, 'the event that happened while no stream ran');
        expect(seen).toEqual(['while-down']);
      });
    });

    it('resumes after its cursor is killed on the server, without losing or repeating events', async () => {
      const client = newClient();
      const target = collection('killed');
      await target.insertOne({ _id: 'seed' as never });
      const { seen } = await watchInserts(client, 'killed', FAST_POLLS);
      await target.insertOne({ _id: 'x1' as never });
      await until(() => seen.length === 1, 30_000, 'x1');
      let killed = 0;
      for (let attempt = 0; attempt < 50 && killed === 0; attempt++) {
        const cursors = await admin
          .db('admin')
          .aggregate([
            { $currentOp: { idleCursors: true, allUsers: true } },
            { $match: { ns: `${dbName}.killed`, 'cursor.cursorId': { $exists: true } } },
          ])
          .toArray();
        const ids = cursors.map((op) => (op.cursor as { cursorId: unknown }).cursorId);
        if (ids.length > 0) {
          const reply = await admin.db(dbName).command({ killCursors: 'killed', cursors: ids });
          killed = (reply.cursorsKilled as unknown[]).length;
        } else await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(killed).toBeGreaterThan(0);
      await target.insertOne({ _id: 'x2' as never });
      await until(() => seen.length === 2, 30_000, 'x2 after the cursor was killed');
      expect(seen).toEqual(['x1', 'x2']);
    });

    it.for([6, 91])(
      'resumes after the failGetMoreAfterCursorCheckout fail point with error code %i',
      async (errorCode, context) => {
        if (!mayFault)
          return context.skip(
            'fail points disturb a server this run does not own (set MONGODB_ALLOW_FAULTS=1)',
          );
        const configure = (mode: unknown) =>
          admin.db('admin').command({
            configureFailPoint: 'failGetMoreAfterCursorCheckout',
            mode,
            data: { errorCode },
          });
        try {
          await configure('off');
        } catch (error) {
          if ((error as MongoServerError).code === 59)
            return context.skip('test commands are not enabled on this server');
          throw error;
        }
        const client = newClient();
        const name = `failpoint-${errorCode}`;
        await collection(name).insertOne({ _id: 'seed' as never });
        const { stream, seen } = await watchInserts(client, name, FAST_POLLS);
        try {
          await configure({ times: 1 });
          await collection(name).insertOne({ _id: 'after-fail' as never });
          await until(() => seen.length === 1, 30_000, 'the event after the failed getMore');
        } finally {
          await configure('off');
        }
        expect(seen).toEqual(['after-fail']);
        expect(stream.status().state).toBe('running');
      },
    );

    it('keeps going through a primary step-down and delivers the next event', {
      timeout: 120_000,
    }, async (context) => {
      if (!mayFault)
        return context.skip(
          'a step-down disturbs a server this run does not own (set MONGODB_ALLOW_FAULTS=1)',
        );
      const client = newClient();
      await collection('stepdown').insertOne({ _id: 'seed' as never });
      const { seen } = await watchInserts(client, 'stepdown', FAST_POLLS);
      // A single member steps down for 5 s, then is elected again: the stream sees its getMore fail and no primary.
      await admin
        .db('admin')
        .command({ replSetStepDown: 5, secondaryCatchUpPeriodSecs: 0, force: true })
        .catch(() => undefined);
      await collection('stepdown').insertOne({ _id: 'after-stepdown' as never });
      await until(() => seen.includes('after-stepdown'), 90_000, 'the event after the step-down');
      expect(seen).toEqual(['after-stepdown']);
    });

    it('stops with reason invalidated when the collection is dropped (onInvalidate: stop)', async () => {
      const client = newClient();
      await collection('dropped').insertOne({ _id: 'seed' as never });
      const seen: string[] = [];
      const stream = client.watchOperations(
        'dropped',
        ['insert', 'drop'],
        async (change) => {
          seen.push(change.operationType);
        },
        FAST_POLLS,
      );
      await running(stream);
      await collection('dropped').insertOne({ _id: 'a' as never });
      await collection('dropped').drop();
      expect(await stream.done).toEqual({ reason: 'invalidated' });
      expect(seen).toEqual(['insert', 'drop']);
    });

    it('goes on with the recreated collection after a drop (onInvalidate: restart)', async () => {
      const client = newClient();
      await collection('recreated').insertOne({ _id: 'seed' as never });
      const { stream, seen } = await watchInserts(client, 'recreated', {
        ...FAST_POLLS,
        onInvalidate: 'restart',
      });
      await collection('recreated').drop();
      await until(() => stream.status().restarts === 1, 30_000, 'the restart after invalidate');
      await collection('recreated').insertOne({ _id: 'reborn' as never });
      await until(() => seen.includes('reborn'), 30_000, 'the insert into the recreated collection');
      expect(seen).toEqual(['reborn']);
    });

    it('fails for good, with a typed error, when the pipeline removes _id', async () => {
      const client = newClient();
      await collection('no_id').insertOne({ _id: 'seed' as never });
      const stream = client.createChangeStream('no_id', [{ $project: { _id: 0 } }], {
        handler: async () => {},
        ...FAST_POLLS,
      });
      await running(stream);
      await collection('no_id').insertOne({ _id: 'a' as never });
      const end = await stream.done;
      expect(end).toMatchObject({
        reason: 'fatal',
        error: { code: 'E_CHANGE_STREAM_FATAL', reason: 'missing_resume_token' },
      });
      expect((await client.health()).healthy).toBe(false);
    });
  });

  describe('withTransaction()', () => {
    it('commits every write of the callback, or none when it throws', async () => {
      const metrics = createMetrics();
      const client = newClient({ metrics });
      await admin.db(dbName).createCollection('ledger');
      const ledger = client.collection('ledger');
      const result = await client.withTransaction(async (session) => {
        await ledger.insertOne({ _id: 1 as never }, { session });
        await ledger.insertOne({ _id: 2 as never }, { session });
        return 'committed';
      });
      expect(result).toBe('committed');
      const failure = new Error('roll back');
      await expect(
        client.withTransaction(async (session) => {
          await ledger.insertOne({ _id: 3 as never }, { session });
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect(await collection('ledger').find().sort({ _id: 1 }).toArray()).toEqual([{ _id: 1 }, { _id: 2 }]);
      expect(await sample(metrics, 'austa_mongo_transactions_total', { result: 'committed' })).toBe(1);
      expect(await sample(metrics, 'austa_mongo_transactions_total', { result: 'aborted' })).toBe(1);
    });
  });

  describe('withTransaction() retries', () => {
    const failCommand = (data: Document, mode: unknown = { times: 1 }) =>
      admin.db('admin').command({ configureFailPoint: 'failCommand', mode, data });

    it.for([
      [
        'TransientTransactionError on an insert',
        { failCommands: ['insert'], errorCode: 112, errorLabels: ['TransientTransactionError'] },
        2,
      ],
      [
        'UnknownTransactionCommitResult on the commit',
        {
          failCommands: ['commitTransaction'],
          errorCode: 91,
          errorLabels: ['UnknownTransactionCommitResult'],
        },
        1,
      ],
    ] as const)('commits once after %s', async ([, data, callbacks], context) => {
      if (!mayFault)
        return context.skip(
          'fail points disturb a server this run does not own (set MONGODB_ALLOW_FAULTS=1)',
        );
      try {
        await failCommand({}, 'off');
      } catch (error) {
        if ((error as MongoServerError).code === 59)
          return context.skip('test commands are not enabled on this server');
        throw error;
      }
      const metrics = createMetrics();
      // The fail point only hits this client's commands (appName austa:txretry), never the admin client's.
      const client = newClient({ metrics, name: 'txretry' });
      const name = `tx_retry_${callbacks}`;
      await admin
        .db(dbName)
        .createCollection(name)
        .catch(() => undefined);
      const target = client.collection(name);
      let calls = 0;
      try {
        await failCommand({ ...data, appName: 'austa:txretry' });
        const result = await client.withTransaction(async (session) => {
          calls++;
          await target.insertOne({ _id: `row-${calls}` as never, attempt: calls }, { session });
          return 'done';
        });
        expect(result).toBe('done');
      } finally {
        await failCommand({}, 'off');
      }
      expect(calls).toBe(callbacks);
      expect(await collection(name).countDocuments()).toBe(1);
      expect(await sample(metrics, 'austa_mongo_transactions_total', { result: 'committed' })).toBe(1);
      expect(await sample(metrics, 'austa_mongo_transaction_retries_total')).toBe(callbacks - 1);
    });
  });

  describe('mongo token store on a real collection', () => {
    tokenStoreContract(() => ({
      store: createMongoTokenStore({ collection: collection('token_contract') }),
      written: () => collection('token_contract').countDocuments(),
      name: (suffix) => `contract-${suffix}`,
    }));

    it('creates its TTL index', async () => {
      await createMongoTokenStore({ collection: collection('token_ttl') }).ensureTtlIndex();
      const indexes = await collection('token_ttl').indexes();
      expect(indexes).toContainEqual(
        expect.objectContaining({ key: { expiresAt: 1 }, expireAfterSeconds: 0 }),
      );
    });
  });
});
