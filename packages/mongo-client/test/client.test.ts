import { createMetrics, type Metrics } from '@austa/metrics';
import type { Document } from 'mongodb';
import { afterEach, describe, expect, it } from 'vitest';
import { type AustaMongoClient, createMongoClient } from '../src/client.js';
import { MongoArgumentError, MongoClientClosedError, UnsafeFilterError } from '../src/errors.js';
import {
  activeTimers,
  changeEvent,
  FakeChangeStream,
  FakeMongoClient,
  recordingLogger,
  recordingStore,
  token,
  until,
  updateEvent,
} from './fakes.js';
import { observations, sample, untilAsync } from './support.js';

const open: AustaMongoClient[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((client) => client.close()));
});

function wrap(options: { metrics?: Metrics; sanitizeFilters?: boolean | { allowOperators: string[] } } = {}) {
  const fake = new FakeMongoClient();
  const logger = recordingLogger();
  const mongo = createMongoClient({ client: fake as never, dbName: 'app', logger, ...options });
  open.push(mongo);
  return { fake, mongo, logger };
}

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('nothing thrown');
}

const noop = async () => {};

describe('bad input', () => {
  it.each([
    ['an empty name', ''],
    ['a name with $', 'a$b'],
    ['a name with NUL', 'a\u0000b'],
    ['a name with a newline', 'a\nb'],
    ['a name longer than a namespace', 'x'.repeat(256)],
    ['a number', 42],
    ['undefined', undefined],
  ])('collection() refuses %s with E_INVALID_ARGUMENT and sends nothing', (_label, name) => {
    const { fake, mongo } = wrap();
    const error = thrown(() => mongo.collection(name as string));
    expect(MongoArgumentError.isInstance(error)).toBe(true);
    expect((error as MongoArgumentError).code).toBe('E_INVALID_ARGUMENT');
    expect(fake.calls).toEqual([]);
  });

  it('db() refuses an invalid database name', () => {
    const { fake, mongo } = wrap();
    for (const name of ['', 'a.b', 'a/b', 'a b', 'x'.repeat(64)]) {
      expect(thrown(() => mongo.db(name))).toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    }
    expect(fake.calls).toEqual([]);
  });

  it.each([
    ['a pipeline that is not an array', 'patients', { $match: {} }, { handler: noop }],
    ['a pipeline stage that is not an object', 'patients', ['$match'], { handler: noop }],
    ['a stage with two keys', 'patients', [{ $match: {}, $project: {} }], { handler: noop }],
    ['a stage that is not an operator', 'patients', [{ match: {} }], { handler: noop }],
    ['an empty collection name', '', [], { handler: noop }],
    ['no handler', 'patients', [], {}],
    ['no options at all', 'patients', [], undefined],
    ['a stream name with a hash tag', 'patients', [], { handler: noop, name: 'a{b}' }],
    ['a zero maxHandlerAttempts', 'patients', [], { handler: noop, maxHandlerAttempts: 0 }],
    ['an unknown invalidate policy', 'patients', [], { handler: noop, onInvalidate: 'ignore' }],
    ['a deadLetter that is not a function', 'patients', [], { handler: noop, deadLetter: 'queue' }],
    ['a token store without load()', 'patients', [], { handler: noop, tokenStore: {} }],
    ['a negative restart delay', 'patients', [], { handler: noop, restartDelayMs: -5 }],
  ])('createChangeStream() refuses %s and opens nothing', (_label, collection, pipeline, options) => {
    const { fake, mongo } = wrap();
    const store = recordingStore();
    const error = thrown(() =>
      mongo.createChangeStream(
        collection as string,
        pipeline as Document[],
        { tokenStore: store.store, ...(options as object) } as never,
      ),
    );
    expect(error).toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    expect(fake.watches).toEqual([]);
    expect(store.calls).toEqual([]);
  });

  it.each([
    ['a $ operator', ['$set']],
    ['a positional path', ['items.$.price']],
    ['an empty list', []],
    ['an empty segment', ['a..b']],
  ])('watchFields() refuses %s and opens nothing', (_label, fields) => {
    const { fake, mongo } = wrap();
    expect(thrown(() => mongo.watchFields('patients', fields, noop))).toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
    expect(fake.watches).toEqual([]);
  });

  it('watchOperations() refuses unknown operation types and invalidate', () => {
    const { fake, mongo } = wrap();
    for (const operations of [[], ['insertt'], ['invalidate'], 'insert']) {
      expect(thrown(() => mongo.watchOperations('patients', operations as never, noop))).toMatchObject({
        code: 'E_INVALID_ARGUMENT',
      });
    }
    expect(fake.watches).toEqual([]);
  });

  it('refuses a second stream of the same name on one client', () => {
    const { mongo } = wrap();
    mongo.watchOperations('patients', ['insert'], noop);
    expect(thrown(() => mongo.watchOperations('patients', ['update'], noop))).toMatchObject({
      code: 'E_INVALID_ARGUMENT',
      message: expect.stringContaining('name option'),
    });
    expect(mongo.watchOperations('patients', ['update'], noop, { name: 'patients-updates' }).name).toBe(
      'patients-updates',
    );
  });

  it('executeWithMetrics() refuses an operation name that could be an id and runs nothing', async () => {
    const { mongo } = wrap({ metrics: createMetrics() });
    let ran = false;
    const run = async () => {
      ran = true;
    };
    for (const operation of ['', 'find patient', 'user:42:lookup'.repeat(10), '9lives']) {
      await expect(mongo.executeWithMetrics('patients', operation, run)).rejects.toMatchObject({
        code: 'E_INVALID_ARGUMENT',
      });
    }
    await expect(mongo.executeWithMetrics('', 'find', run)).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
    await expect(
      mongo.executeWithMetrics('patients', 'find', 'not a function' as never),
    ).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
    expect(ran).toBe(false);
  });
});

describe('watch helpers', () => {
  it('watchOperations() matches operation types on the server and always keeps invalidate', async () => {
    const { fake, mongo } = wrap();
    mongo.watchOperations('patients', ['insert', 'delete'], noop);
    mongo.watchOperations('patients', ['createIndexes'], noop, { name: 'ddl' });
    await until(() => fake.watches.length === 2);
    expect(fake.watches[0]?.pipeline).toEqual([
      { $match: { operationType: { $in: ['insert', 'delete', 'invalidate'] } } },
    ]);
    expect(fake.watches[0]?.options.showExpandedEvents).toBeUndefined();
    expect(fake.watches[1]?.options.showExpandedEvents).toBe(true);
  });

  it('createChangeStream() passes the pipeline and driver options through', async () => {
    const { fake, mongo } = wrap();
    mongo.createChangeStream('patients', [{ $match: { 'fullDocument.kind': 'lab' } }], {
      handler: noop,
      fullDocument: 'updateLookup',
      maxAwaitTimeMs: 500,
      batchSize: 10,
      dbName: 'care',
    });
    await until(() => fake.watches.length === 1);
    expect(fake.watches[0]).toMatchObject({
      collection: 'patients',
      pipeline: [{ $match: { 'fullDocument.kind': 'lab' } }],
      options: { fullDocument: 'updateLookup', maxAwaitTimeMS: 500, batchSize: 10 },
    });
    expect(fake.calls).toContain('db:care');
  });

  it('watchFields() delivers updates touching nested and array paths, and inserts only when asked', async () => {
    const { fake, mongo } = wrap();
    const stream = new FakeChangeStream([
      { change: updateEvent('u1', { name: 'Ada' }) },
      { change: updateEvent('u2', { 'address.city': 'Paris' }) },
      { change: updateEvent('u3', { 'items.4.price': 10 }) },
      { change: updateEvent('u4', { 'items.4.qty': 1 }) },
      { change: updateEvent('u5', {}, ['address']) },
      { change: changeEvent('i1', 'insert') },
    ]);
    fake.streams.push(stream);
    const seen: string[] = [];
    const watch = mongo.watchFields(
      'patients',
      ['address.city', 'items.price'],
      async (change) => {
        seen.push((change._id as { _data: string })._data);
      },
      { includeInserts: true },
    );
    await until(() => seen.length === 4);
    expect(seen).toEqual(['u2', 'u3', 'u5', 'i1']);
    expect(fake.watches[0]?.pipeline).toEqual([
      { $match: { operationType: { $in: ['update', 'insert', 'invalidate'] } } },
    ]);
    await watch.close();
  });
});

describe('close()', () => {
  it('closes its streams, removes its listeners and never closes a client it did not create', async () => {
    const { fake, mongo } = wrap({ metrics: createMetrics() });
    const before = activeTimers();
    const stream = new FakeChangeStream([]);
    fake.streams.push(stream);
    const watch = mongo.watchOperations('patients', ['insert'], noop);
    await until(() => stream.polls === 1);
    expect(fake.listenerCount('commandStarted')).toBe(1);
    await mongo.close();
    expect(await watch.done).toEqual({ reason: 'closed' });
    expect(stream.closeCalls).toBeGreaterThanOrEqual(1);
    expect(fake.closeCalls).toBe(0);
    expect(fake.eventNames()).toEqual([]);
    expect(mongo.changeStreams()).toEqual([]);
    expect(activeTimers()).toBeLessThanOrEqual(before);
  });

  it('makes later calls fail with E_CLIENT_CLOSED, while health() still answers', async () => {
    const { mongo } = wrap();
    await mongo.close();
    await mongo.close();
    expect(MongoClientClosedError.isInstance(thrown(() => mongo.collection('patients')))).toBe(true);
    expect(thrown(() => mongo.db())).toMatchObject({ code: 'E_CLIENT_CLOSED' });
    expect(thrown(() => mongo.watchOperations('patients', ['insert'], noop))).toMatchObject({
      code: 'E_CLIENT_CLOSED',
    });
    await expect(mongo.executeWithMetrics('patients', 'find', noop)).rejects.toMatchObject({
      code: 'E_CLIENT_CLOSED',
    });
    await expect(mongo.withTransaction(noop)).rejects.toMatchObject({ code: 'E_CLIENT_CLOSED' });
    await expect(mongo.connect()).rejects.toMatchObject({ code: 'E_CLIENT_CLOSED' });
    expect(await mongo.health()).toMatchObject({ healthy: false, problems: ['the client is closed'] });
  });

  it('forgets a stream closed on its own, and a new stream of that name resumes from the client’s default store', async () => {
    const { fake, mongo } = wrap();
    fake.streams.push(new FakeChangeStream([{ change: changeEvent('t1') }]));
    let handled = 0;
    const first = mongo.watchOperations('patients', ['insert'], async () => {
      handled++;
    });
    await until(() => handled === 1);
    await first.close();
    expect(mongo.changeStreams()).toEqual([]);
    expect(mongo.watchOperations('patients', ['insert'], noop).name).toBe('patients');
    await until(() => fake.watches.length === 2);
    expect(fake.watches[1]?.options.startAfter).toEqual(token('t1'));
  });
});

describe('health()', () => {
  it('reports a healthy replica set with its primary and stream states', async () => {
    const { fake, mongo } = wrap();
    fake.commandReply = async () => ({
      ok: 1,
      setName: 'rs0',
      primary: 'db-0:27017',
      hosts: ['db-0:27017', 'db-1:27017'],
    });
    fake.emit('topologyDescriptionChanged', {
      newDescription: {
        type: 'ReplicaSetWithPrimary',
        setName: 'rs0',
        servers: new Map([
          ['db-0:27017', { type: 'RSPrimary' }],
          ['db-1:27017', { type: 'RSSecondary' }],
        ]),
      },
    });
    mongo.watchOperations('patients', ['insert'], noop);
    const health = await mongo.health();
    expect(health).toMatchObject({
      healthy: true,
      ping: { ok: true },
      primary: 'db-0:27017',
      topology: {
        type: 'ReplicaSetWithPrimary',
        setName: 'rs0',
        servers: [
          { address: 'db-0:27017', type: 'RSPrimary' },
          { address: 'db-1:27017', type: 'RSSecondary' },
        ],
      },
      problems: [],
    });
    expect(health.changeStreams).toEqual([
      expect.objectContaining({ name: 'patients', collection: 'patients' }),
    ]);
    expect(fake.calls).toContain('command:hello');
  });

  it('says when a replica set has no primary', async () => {
    const { fake, mongo } = wrap();
    fake.commandReply = async () => ({ ok: 1, setName: 'rs0', hosts: ['db-0:27017'] });
    const health = await mongo.health();
    expect(health.healthy).toBe(false);
    expect(health.primary).toBeNull();
    expect(health.problems.join()).toContain('no primary');
  });

  it('never throws: a failing server is reported by error type, without its message', async () => {
    const { fake, mongo } = wrap();
    fake.commandReply = async () => {
      throw Object.assign(new Error('auth failed for ada:secret'), { name: 'MongoServerSelectionError' });
    };
    const health = await mongo.health();
    expect(health).toMatchObject({ healthy: false, ping: { ok: false, errorType: 'server_selection' } });
    expect(JSON.stringify(health)).not.toContain('secret');
  });

  it('gives up after timeoutMs on a server that does not answer, leaving no timer', async () => {
    const { fake, mongo } = wrap();
    fake.commandReply = () => new Promise<Document>(() => {});
    const before = activeTimers();
    const started = Date.now();
    const health = await mongo.health({ timeoutMs: 50 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(health.healthy).toBe(false);
    expect(health.problems).toEqual(['no server answered hello within 50 ms']);
    expect(activeTimers()).toBeLessThanOrEqual(before);
  });

  it('reports a standalone server as its own primary and a bad timeout without throwing', async () => {
    const { fake, mongo } = wrap();
    fake.commandReply = async () => ({ ok: 1, isWritablePrimary: true, me: 'db-0:27017' });
    expect(await mongo.health()).toMatchObject({
      healthy: true,
      primary: 'db-0:27017',
      topology: { type: 'Single' },
    });
    expect(await mongo.health({ timeoutMs: -1 })).toMatchObject({ healthy: false });
  });

  it('is unhealthy while a change stream has failed for good', async () => {
    const { fake, mongo } = wrap();
    fake.commandReply = async () => ({ ok: 1, setName: 'rs0', primary: 'db-0:27017' });
    fake.streams.push(
      new FakeChangeStream([
        { error: Object.assign(new Error('x'), { name: 'MongoServerError', code: 286 }) },
      ]),
    );
    const stream = mongo.watchOperations('patients', ['insert'], noop);
    expect((await stream.done).reason).toBe('fatal');
    const health = await mongo.health();
    expect(health.healthy).toBe(false);
    expect(health.problems).toEqual(['change stream "patients" failed (history_lost) and needs an operator']);
  });
});

describe('executeWithMetrics()', () => {
  it('times the operation, returns its result and rethrows its error with an error_type', async () => {
    const metrics = createMetrics();
    const { mongo } = wrap({ metrics });
    expect(
      await mongo.executeWithMetrics(
        'patients',
        'findPatientByEmail',
        async (patients) => patients.collectionName,
      ),
    ).toBe('patients');
    const failure = Object.assign(new Error('dup'), { name: 'MongoServerError', code: 11000 });
    await expect(
      mongo.executeWithMetrics('patients', 'createPatient', async () => {
        throw failure;
      }),
    ).rejects.toBe(failure);
    const labels = (operation: string, errorType: string) => ({
      operation,
      db_collection_name: 'patients',
      error_type: errorType,
    });
    expect(
      await observations(metrics, 'austa_mongo_operation_duration_seconds', labels('findPatientByEmail', '')),
    ).toBe(1);
    expect(
      await observations(
        metrics,
        'austa_mongo_operation_duration_seconds',
        labels('createPatient', 'DuplicateKey'),
      ),
    ).toBe(1);
    // Application operations never reach the shared histogram: the commands they send are measured there.
    expect(await metrics.text()).not.toContain('db_operation_name="createPatient"');
  });

  it('without metrics just runs the function', async () => {
    const { mongo } = wrap();
    expect(await mongo.executeWithMetrics('patients', 'count', async () => 3)).toBe(3);
  });
});

describe('sanitizeFilters option', () => {
  it('checks the filter argument of collection methods before the driver sees it', async () => {
    const { fake, mongo } = wrap({ sanitizeFilters: true });
    const patients = mongo.collection('patients');
    await expect(patients.findOne({ email: { $ne: null } })).rejects.toSatisfy((error) =>
      UnsafeFilterError.isInstance(error),
    );
    await expect(patients.distinct('email', { $where: '1' })).rejects.toMatchObject({
      code: 'E_UNSAFE_FILTER',
    });
    // find() returns a cursor rather than a promise, so it throws.
    expect(thrown(() => patients.find({ age: { $gt: 1 } }))).toMatchObject({ code: 'E_UNSAFE_FILTER' });
    expect(fake.calls.filter((call) => /^(find|findOne|distinct):/.test(call))).toEqual([]);
    await patients.findOne({ email: 'ada@example.org' });
    // Inserts carry documents, not filters.
    await patients.insertOne({ note: { $literal: 'kept as data' } });
    expect(fake.calls).toContain('findOne:patients:{"email":"ada@example.org"}');
    expect(fake.calls).toContain('insertOne:patients:{"note":{"$literal":"kept as data"}}');
  });

  it('accepts the operators it is told to', async () => {
    const { fake, mongo } = wrap({ sanitizeFilters: { allowOperators: ['$in'] } });
    await mongo.collection('patients').findOne({ status: { $in: ['a'] } });
    expect(fake.calls).toContain('findOne:patients:{"status":{"$in":["a"]}}');
  });
});

describe('withTransaction()', () => {
  it('returns the result, counts a commit and always ends the session', async () => {
    const metrics = createMetrics();
    const { fake, mongo } = wrap({ metrics });
    let seen: unknown;
    expect(
      await mongo.withTransaction(async (session) => {
        seen = session;
        return 'done';
      }),
    ).toBe('done');
    expect(seen).toBe(fake.session);
    expect(fake.session.ended).toBe(true);
    expect(await sample(metrics, 'austa_mongo_transactions_total', { result: 'committed' })).toBe(1);
  });

  it('rethrows the callback error, counts an abort and ends the session', async () => {
    const metrics = createMetrics();
    const { fake, mongo } = wrap({ metrics });
    const failure = new Error('rollback');
    await expect(
      mongo.withTransaction(async () => {
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(fake.session.ended).toBe(true);
    expect(await sample(metrics, 'austa_mongo_transactions_total', { result: 'aborted' })).toBe(1);
  });

  it('counts a transaction the callback aborted itself as aborted', async () => {
    const metrics = createMetrics();
    const { fake, mongo } = wrap({ metrics });
    fake.session.transaction.isCommitted = false;
    await mongo.withTransaction(async () => undefined);
    expect(await sample(metrics, 'austa_mongo_transactions_total', { result: 'aborted' })).toBe(1);
  });
});

describe('resume across clients', () => {
  it('a second client with the same token store resumes after the last event the first one handled', async () => {
    const store = recordingStore();
    const first = wrap();
    first.fake.streams.push(
      new FakeChangeStream([{ change: changeEvent('t1') }, { change: changeEvent('t2') }]),
    );
    const handled: string[] = [];
    first.mongo.watchOperations(
      'patients',
      ['insert'],
      async (change) => {
        handled.push((change._id as { _data: string })._data);
      },
      { tokenStore: store.store },
    );
    await until(() => store.calls.includes('save:t2'));
    await first.mongo.close();

    const second = wrap();
    second.mongo.watchOperations('patients', ['insert'], noop, { tokenStore: store.store });
    await until(() => second.fake.watches.length === 1);
    expect(second.fake.watches[0]?.options.startAfter).toEqual(token('t2'));
    expect(handled).toEqual(['t1', 't2']);
  });
});

describe('with the real driver and no server', () => {
  it('keeps reopening a stream and reconnecting the client it created, and close() leaves nothing running', async () => {
    const before = activeTimers();
    const metrics = createMetrics();
    const logger = recordingLogger();
    const mongo = createMongoClient({
      url: 'mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=100&connectTimeoutMS=100',
      metrics,
      logger,
    });
    const stream = mongo.watchOperations('patients', ['insert'], noop, {
      restartDelayMs: 10,
      maxRestartDelayMs: 50,
    });
    // The first attempt fails server selection; the driver then keeps its topology closed (MongoTopologyClosedError)
    // until connect() is called again, which this client does in the background.
    await until(() => stream.status().restarts >= 2, 10_000, 'two reopen attempts');
    expect(stream.status().state).toBe('restarting');
    const errors = async () =>
      (await sample(metrics, 'austa_mongo_change_stream_errors_total', {
        stream: 'patients',
        kind: 'resumable',
      })) +
      (await sample(metrics, 'austa_mongo_change_stream_errors_total', {
        stream: 'patients',
        kind: 'non_resumable',
      }));
    expect(await errors()).toBeGreaterThanOrEqual(2);
    expect(logger.lines.some((line) => line.details?.errorType === 'server_selection')).toBe(true);
    await untilAsync(
      async () => (await sample(metrics, 'austa_mongo_reconnect_attempts_total', { result: 'failed' })) >= 1,
      10_000,
      'a background reconnect attempt',
    );
    expect(logger.lines.some((line) => line.message.includes('cannot connect; retrying'))).toBe(true);
    await mongo.close();
    expect(await stream.done).toEqual({ reason: 'closed' });
    await until(() => activeTimers() <= before, 5000, 'the driver’s timers to clear');
  });
});
