import { createMetrics } from '@austa/metrics';
import { MongoClient, MongoServerError } from 'mongodb';
import { afterEach, describe, expect, it } from 'vitest';
import { ManagedStream } from '../src/change-stream.js';
import { isResumableChangeStreamError } from '../src/change-stream-errors.js';
import { type AustaMongoClient, createMongoClient } from '../src/client.js';
import { MongoConfigError } from '../src/errors.js';
import { collectionLabeler, createInstruments } from '../src/instruments.js';
import { fromEnv } from '../src/options.js';
import {
  changeEvent,
  FakeChangeStream,
  FakeMongoClient,
  recordingLogger,
  recordingStore,
  scriptedOpen,
  until,
} from './fakes.js';
import { sample, untilAsync } from './support.js';

/*
 * Scenarios a hostile review found unhandled. Each one drives the wrapper through injected fakes (a client-shaped
 * emitter, scripted change streams, a driver session whose server round trips are stubbed): never a fake server.
 */

const open: AustaMongoClient[] = [];
const streams: ManagedStream[] = [];
afterEach(async () => {
  await Promise.all(streams.splice(0).map((stream) => stream.close()));
  await Promise.all(open.splice(0).map((client) => client.close()));
});

function wrap(options: Partial<Parameters<typeof createMongoClient>[0]> = {}) {
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

describe('bad input reaches a typed error, never a TypeError', () => {
  it('health(null) answers instead of throwing', async () => {
    const { fake, mongo } = wrap();
    fake.commandReply = async () => ({ ok: 1, isWritablePrimary: true, me: 'db-0:27017' });
    const health = await mongo.health(null as never);
    expect(health.healthy).toBe(true);
  });

  it.each([
    ['null options', null],
    ['a string for includeInserts', { includeInserts: 'yes' }],
    ['a number for includeReplaces', { includeReplaces: 1 }],
  ])('watchFields() refuses %s with E_INVALID_ARGUMENT and opens nothing', (_label, options) => {
    const { fake, mongo } = wrap();
    expect(thrown(() => mongo.watchFields('patients', ['status'], noop, options as never))).toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
    expect(fake.watches).toEqual([]);
  });

  it.each([
    ['an unknown fullDocument', { fullDocument: 'everything' }],
    ['an unknown fullDocumentBeforeChange', { fullDocumentBeforeChange: 'always' }],
    ['a string for showExpandedEvents', { showExpandedEvents: 'true' }],
    ['a number for startAtOperationTime', { startAtOperationTime: 1_700_000_000 }],
  ])('createChangeStream() refuses %s before opening anything', (_label, options) => {
    const { fake, mongo } = wrap();
    const store = recordingStore();
    expect(
      thrown(() =>
        mongo.createChangeStream('patients', [], {
          handler: noop,
          tokenStore: store.store,
          ...(options as object),
        }),
      ),
    ).toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    expect(fake.watches).toEqual([]);
    expect(store.calls).toEqual([]);
  });
});

describe('fromEnv() refuses what it cannot read, naming the variable', () => {
  const url = 'mongodb://db-0/app';
  function envError(env: Record<string, string>): MongoConfigError {
    try {
      fromEnv(env);
    } catch (error) {
      if (MongoConfigError.isInstance(error)) return error;
      throw error;
    }
    throw new Error('fromEnv accepted it');
  }

  it.each([
    ['MONGODB_TLS', 'ture'],
    ['MONGODB_TLS', 'on-ish'],
    ['MONGODB_TLS_ALLOW_INVALID_CERTIFICATES', 'maybe'],
  ])('a %s of %j instead of silently turning TLS off', (name, value) => {
    expect(envError({ MONGODB_URL: url, [name]: value }).message).toContain(name);
  });

  it('leaves TLS to the URL under MONGODB_TLS=false, and refuses TLS files next to it', () => {
    // Never false: mongodb+srv:// and ?tls=true ask for TLS, and a leftover flag must not turn it off.
    expect(fromEnv({ MONGODB_URL: url, MONGODB_TLS: 'false' }).tls).toBeUndefined();
    expect(
      fromEnv({ MONGODB_URL: 'mongodb+srv://cluster0.example.net/app', MONGODB_TLS: '0' }).tls,
    ).toBeUndefined();
    expect(
      envError({ MONGODB_URL: url, MONGODB_TLS: 'false', MONGODB_TLS_CA_FILE: '/etc/ca.pem' }).message,
    ).toContain('MONGODB_TLS');
  });

  it.each([
    ['MONGODB_URL', 'http://db-0/app'],
    ['MONGODB_READ_PREFERENCE', 'Primary'],
    ['MONGODB_MAX_POOL_SIZE', '99999999999999999999'],
    ['MONGODB_DB', 'care.app'],
  ])('a bad %s (%j)', (name, value) => {
    const env: Record<string, string> = { MONGODB_URL: url, [name]: value };
    expect(envError(env).message).toContain(name);
  });
});

describe('secrets in connection strings', () => {
  it.each([
    ['a single slash after the scheme', 'mongodb:/ada:s3cret-pw@db-0/app'],
    ['no scheme at all', 'ada:s3cret-pw@db-0/app'],
    ['a password with an @', 'mongodb//ada:s3cret-pw@x@db-0/app'],
  ])('are never echoed for %s', (_label, url) => {
    let message = '';
    try {
      createMongoClient({ url });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).not.toBe('');
    expect(message).not.toContain('s3cret');
    expect(message).not.toContain('pw@');
  });
});

describe('close()', () => {
  it('removes its listeners even when closing the driver client fails', async () => {
    const mongo = createMongoClient({ url: 'mongodb://db-0:27017/app', metrics: createMetrics() });
    const failure = new Error('close failed');
    mongo.client.close = async () => {
      throw failure;
    };
    await expect(mongo.close()).rejects.toBe(failure);
    expect(mongo.client.listenerCount('commandStarted')).toBe(0);
    expect(mongo.client.listenerCount('connectionCheckedOut')).toBe(0);
    expect(mongo.client.listenerCount('topologyDescriptionChanged')).toBe(0);
    expect(mongo.client.listenerCount('topologyClosed')).toBe(0);
  });
});

describe('withTransaction() with the driver session retry loop', () => {
  // A real ClientSession from a real MongoClient that never connects; only its two server round trips are stubbed,
  // so the driver's own withTransaction state machine decides what to retry.
  function driverSessions() {
    const driver = new MongoClient('mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=50', {
      monitorCommands: true,
    });
    const script = { commits: [] as unknown[], commitCalls: 0, ended: 0, endError: undefined as unknown };
    const startSession = driver.startSession.bind(driver);
    driver.startSession = (options) => {
      const session = startSession(options);
      // startTransaction() replaces the session's transaction object, so it is read at each call.
      const transaction = () =>
        (session as unknown as { transaction: { transition(state: string): void } }).transaction;
      Object.assign(session, {
        async commitTransaction() {
          const outcome = script.commits[script.commitCalls++];
          if (outcome !== undefined) throw outcome;
          transaction().transition('TRANSACTION_COMMITTED');
        },
        async abortTransaction() {
          transaction().transition('TRANSACTION_ABORTED');
        },
      });
      const endSession = session.endSession.bind(session);
      session.endSession = async (endOptions) => {
        script.ended++;
        await endSession(endOptions);
        if (script.endError !== undefined) throw script.endError;
      };
      return session;
    };
    return { driver, script };
  }
  function labelled(code: number, label: string): MongoServerError {
    const error = new MongoServerError({ errmsg: `simulated ${code}`, code });
    error.addErrorLabel(label);
    return error;
  }

  it('runs the callback again after a TransientTransactionError and counts one commit', async () => {
    const metrics = createMetrics();
    const { driver, script } = driverSessions();
    const mongo = createMongoClient({ client: driver, metrics });
    open.push(mongo);
    let calls = 0;
    const result = await mongo.withTransaction(async () => {
      calls++;
      if (calls === 1) throw labelled(112, 'TransientTransactionError');
      return 'saved';
    });
    expect(result).toBe('saved');
    expect(calls).toBe(2);
    expect(script.ended).toBe(1);
    expect(await sample(metrics, 'austa_mongo_transactions_total', { result: 'committed' })).toBe(1);
    expect(await sample(metrics, 'austa_mongo_transactions_total', { result: 'aborted' })).toBe(0);
    expect(await sample(metrics, 'austa_mongo_transaction_retries_total')).toBe(1);
  });

  it('retries the commit alone after UnknownTransactionCommitResult', async () => {
    const metrics = createMetrics();
    const { driver, script } = driverSessions();
    script.commits = [labelled(91, 'UnknownTransactionCommitResult')];
    const mongo = createMongoClient({ client: driver, metrics });
    open.push(mongo);
    let calls = 0;
    await mongo.withTransaction(async () => {
      calls++;
    });
    expect(calls).toBe(1);
    expect(script.commitCalls).toBe(2);
    expect(await sample(metrics, 'austa_mongo_transactions_total', { result: 'committed' })).toBe(1);
  });

  it('does not turn a committed transaction into a failure when ending the session fails', async () => {
    const { driver, script } = driverSessions();
    script.endError = new Error('session pool gone');
    const logger = recordingLogger();
    const mongo = createMongoClient({ client: driver, logger });
    open.push(mongo);
    expect(await mongo.withTransaction(async () => 'committed')).toBe('committed');
    expect(logger.lines.map((line) => line.message)).toEqual([
      expect.stringContaining('could not end the session'),
    ]);
  });

  it('accepts a callback that returns a value instead of a promise', async () => {
    const { driver } = driverSessions();
    const mongo = createMongoClient({ client: driver });
    open.push(mongo);
    expect(await mongo.withTransaction((() => 7) as never)).toBe(7);
  });
});

describe('resumable or not, as the change-streams specification says', () => {
  it('reads the NonResumableChangeStreamError label over a resumable code', () => {
    const error = new MongoServerError({ errmsg: 'stepped down', code: 189 });
    error.addErrorLabel('NonResumableChangeStreamError');
    expect(isResumableChangeStreamError(error)).toBe(false);
  });

  it('reads CursorNotFound as resumable with or without a label', () => {
    expect(isResumableChangeStreamError(new MongoServerError({ errmsg: 'gone', code: 43 }))).toBe(true);
  });

  it('reads a labelled error as resumable whatever its code', () => {
    const error = new MongoServerError({ errmsg: 'x', code: 12345 });
    error.addErrorLabel('ResumableChangeStreamError');
    expect(isResumableChangeStreamError(error)).toBe(true);
  });

  it('trusts the labels of a server that sends labels: a listed code without the label is not resumable', () => {
    const error = new MongoServerError({
      errmsg: 'x',
      code: 262,
      errorLabels: ['TransientTransactionError'],
    });
    expect(isResumableChangeStreamError(error)).toBe(false);
  });
});

describe('change-stream lag', () => {
  it('keeps growing while the handler is stuck on an event, in the gauge and in status()', async () => {
    const metrics = createMetrics();
    const instruments = createInstruments(metrics, {
      client: 'test',
      collectionLabel: collectionLabeler(true),
    }).stream('audit', 'patients');
    let release: () => void = () => {};
    const stuck = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered = false;
    const wallTime = new Date(Date.now() - 5_000);
    const { open: openStream } = scriptedOpen(
      new FakeChangeStream([{ change: changeEvent('e1', 'insert', { wallTime }) }]),
    );
    const stream = new ManagedStream({
      name: 'audit',
      collection: 'patients',
      open: openStream,
      tokenStore: recordingStore().store,
      handler: async () => {
        entered = true;
        await stuck;
      },
      instruments,
      logger: recordingLogger(),
      options: { closeTimeoutMs: 1000 },
    });
    streams.push(stream);
    await until(() => entered, 5000, 'the handler to start');
    const first = await sample(metrics, 'austa_mongo_change_stream_lag_seconds', { stream: 'audit' });
    expect(first).toBeGreaterThanOrEqual(5);
    const firstStatus = stream.status().lagSeconds ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const later = await sample(metrics, 'austa_mongo_change_stream_lag_seconds', { stream: 'audit' });
    expect(later).toBeGreaterThanOrEqual(first + 1);
    expect(stream.status().lagSeconds ?? 0).toBeGreaterThanOrEqual(firstStatus + 1);
    release();
  });
});

describe('labels never carry identifiers', () => {
  it('a stream named after its collection uses the collection label policy for the stream label', async () => {
    const metrics = createMetrics();
    const { fake, mongo } = wrap({ metrics, collectionLabels: ['patients'] });
    const changes = new FakeChangeStream([{ change: changeEvent('n1') }]);
    fake.streams.push(changes);
    let handled = 0;
    mongo.watchOperations(
      'notes_8f3a9c2e',
      ['insert'],
      async () => {
        handled++;
        throw new Error('downstream down');
      },
      { maxHandlerAttempts: 1, handlerRetryDelayMs: 1, restartDelayMs: 1, maxRestartDelayMs: 5 },
    );
    await until(() => handled >= 1, 5000, 'a handler failure');
    const text = await metrics.text();
    expect(text).not.toContain('8f3a9c2e');
    expect(
      await sample(metrics, 'austa_mongo_change_stream_handler_failures_total', { stream: 'other' }),
    ).toBe(handled);
  });
});

describe('background reconnect of a client this package created', () => {
  // RECONNECT_INITIAL_DELAY_MS is 500 with jitter down to half: 1.5 s covers a first attempt with room to spare.
  const FIRST_ATTEMPT_WITHIN_MS = 1_500;

  function created() {
    const metrics = createMetrics();
    const mongo = createMongoClient({
      url: 'mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=100&connectTimeoutMS=100',
      metrics,
      logger: recordingLogger(),
    });
    open.push(mongo);
    let connects = 0;
    mongo.client.connect = async () => {
      connects++;
      return mongo.client;
    };
    return { mongo, connects: () => connects };
  }

  it('reopens a client whose first connection failed', async () => {
    const { mongo, connects } = created();
    mongo.client.emit('topologyClosed', {} as never);
    await until(() => connects() === 1, FIRST_ATTEMPT_WITHIN_MS, 'a background connect');
  });

  it('never reopens a client that connected once and was then closed through .client', async () => {
    const { mongo, connects } = created();
    mongo.client.emit('open', mongo.client);
    mongo.client.emit('topologyClosed', {} as never);
    await new Promise((resolve) => setTimeout(resolve, FIRST_ATTEMPT_WITHIN_MS));
    expect(connects()).toBe(0);
  });
});

describe('health() timeouts', () => {
  it('refuses a timeout setTimeout cannot hold instead of timing out at once', async () => {
    const { fake, mongo } = wrap();
    fake.commandReply = async () => ({ ok: 1, isWritablePrimary: true, me: 'db-0:27017' });
    const health = await mongo.health({ timeoutMs: 2 ** 31 });
    expect(health.healthy).toBe(false);
    expect(health.problems).toEqual([expect.stringContaining('timeoutMs must be a positive integer up to')]);
    expect(fake.calls).toEqual([]);
  });
});

describe('sanitizeFilter() and forged BSON values', () => {
  it('refuses a parsed object posing as a BSON value to hide an operator', async () => {
    const { sanitizeFilter } = await import('../src/sanitize.js');
    const forged = JSON.parse('{"email":{"_bsontype":"ObjectId","$where":"sleep(1000)"}}');
    expect(() => sanitizeFilter(forged)).toThrow(
      expect.objectContaining({ code: 'E_UNSAFE_FILTER', path: 'email' }),
    );
    const { ObjectId, Long, Decimal128 } = await import('mongodb');
    const real = { _id: new ObjectId(), count: Long.fromNumber(3), price: Decimal128.fromString('1.5') };
    expect(sanitizeFilter(real)).toBe(real);
  });
});

describe('misspelt options are refused, not silently ignored', () => {
  it('createMongoClient() names the option and the one it most likely meant', () => {
    let error: unknown;
    try {
      createMongoClient({ url: 'mongodb://db-0/app', serverSelectionTimeoutMS: 500 } as never);
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({
      code: 'E_INVALID_CONFIG',
      message: expect.stringContaining(
        '"serverSelectionTimeoutMS" (did you mean "serverSelectionTimeoutMs"?)',
      ),
    });
    expect(() => createMongoClient({ url: 'mongodb://db-0/app', poolSize: 5 } as never)).toThrow(
      /driverOptions/,
    );
  });

  it.each([
    ['a misspelt policy', { onInvalidated: 'restart' }],
    ['a driver spelling', { maxAwaitTimeMS: 100 }],
  ])('a change stream refuses %s before opening anything', (_label, options) => {
    const { fake, mongo } = wrap();
    expect(thrown(() => mongo.watchOperations('patients', ['insert'], noop, options as never))).toMatchObject(
      {
        code: 'E_INVALID_ARGUMENT',
      },
    );
    expect(
      thrown(() => mongo.createChangeStream('patients', [], { handler: noop, ...(options as object) })),
    ).toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    expect(thrown(() => mongo.watchFields('patients', ['status'], noop, options as never))).toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
    expect(fake.watches).toEqual([]);
  });
});

describe('watchFields() edge cases of updateDescription', () => {
  it('delivers an update it cannot judge (no updateDescription) instead of skipping it', async () => {
    const { fieldsWatch } = await import('../src/watch-pipelines.js');
    const { accept } = fieldsWatch(['status']);
    expect(accept({ operationType: 'update' })).toBe(true);
    expect(accept({ operationType: 'update', updateDescription: null })).toBe(true);
    expect(accept({ operationType: 'update', updateDescription: { updatedFields: { name: 'x' } } })).toBe(
      false,
    );
  });

  it('over-matches rather than under-matches dotted field names and numeric object keys', async () => {
    const { createFieldMatcher } = await import('../src/field-paths.js');
    // A literal field "address.zip" (MongoDB 5.0+) is reported as the path address.zip: watching address fires.
    expect(createFieldMatcher(['address'])({ updatedFields: { 'address.zip': 'N1' } })).toBe(true);
    // An object key "2024" reads like an array position: watching scores.total fires (a safe false positive).
    expect(createFieldMatcher(['scores.total'])({ updatedFields: { 'scores.2024': 5 } })).toBe(true);
    // Servers before 5.0 send no truncatedArrays; 6.1+ may add disambiguatedPaths, which changes nothing here.
    const matcher = createFieldMatcher(['items.price']);
    expect(matcher({ updatedFields: { 'items.3.qty': 1 }, removedFields: [] })).toBe(false);
    expect(
      matcher({
        updatedFields: { 'items.3.price': 1 },
        disambiguatedPaths: { 'items.3.price': ['items', 3, 'price'] },
      } as never),
    ).toBe(true);
    expect(matcher({ updatedFields: null, removedFields: null, truncatedArrays: [{ field: 'items' }] })).toBe(
      true,
    );
  });
});

describe('ready() when the stream ends before it opened', () => {
  it('says the stream was closed or invalidated, not that the client was closed', async () => {
    const { open: closedOpen } = scriptedOpen(new FakeChangeStream());
    const closed = new ManagedStream({
      name: 'audit',
      collection: 'patients',
      open: closedOpen,
      tokenStore: recordingStore().store,
      handler: noop,
      instruments: createInstruments(createMetrics(), {
        client: 'test',
        collectionLabel: collectionLabeler(true),
      }).stream('audit', 'patients'),
      logger: recordingLogger(),
      options: {},
    });
    const ready = closed.ready();
    await closed.close();
    await expect(ready).rejects.toMatchObject({
      code: 'E_CLIENT_CLOSED',
      message: expect.stringContaining('Change stream "audit" was closed before it opened'),
    });
    const { open: droppedOpen } = scriptedOpen(new FakeChangeStream([{ end: true }]));
    const dropped = new ManagedStream({
      name: 'audit-2',
      collection: 'patients',
      open: droppedOpen,
      tokenStore: recordingStore().store,
      handler: noop,
      instruments: createInstruments(createMetrics(), {
        client: 'test',
        collectionLabel: collectionLabeler(true),
      }).stream('audit-2', 'patients'),
      logger: recordingLogger(),
      options: {},
    });
    streams.push(dropped);
    await expect(dropped.ready()).rejects.toMatchObject({
      message: expect.stringContaining('dropped or renamed'),
    });
  });
});

describe('a token store that hangs', () => {
  function streamWith(
    store: ReturnType<typeof recordingStore>['store'],
    steps: ConstructorParameters<typeof FakeChangeStream>[0],
  ) {
    const metrics = createMetrics();
    const logger = recordingLogger();
    const handled: string[] = [];
    const stream = new ManagedStream({
      name: 'audit',
      collection: 'patients',
      open: scriptedOpen(new FakeChangeStream(steps)).open,
      tokenStore: store,
      handler: async (change) => {
        handled.push((change._id as { _data: string })._data);
      },
      instruments: createInstruments(metrics, {
        client: 'test',
        collectionLabel: collectionLabeler(true),
      }).stream('audit', 'patients'),
      logger,
      options: { tokenStoreTimeoutMs: 20, restartDelayMs: 1, maxRestartDelayMs: 5, closeTimeoutMs: 1000 },
    });
    streams.push(stream);
    return { stream, metrics, logger, handled };
  }

  it('does not stall the stream when saves never answer: each counts as a failed save, logged once', async () => {
    const recording = recordingStore();
    const hanging = { ...recording.store, save: () => new Promise<void>(() => {}) };
    const { metrics, logger, handled } = streamWith(hanging, [
      { change: changeEvent('h1') },
      { change: changeEvent('h2') },
      { change: changeEvent('h3') },
    ]);
    await until(() => handled.length === 3, 5000, 'three events past a hanging store');
    // The third save is still waiting out its 20 ms when the third event is handled.
    await untilAsync(
      async () =>
        (await sample(metrics, 'austa_mongo_change_stream_token_save_failures_total', { stream: 'audit' })) >=
        3,
      5000,
      'three timed-out saves',
    );
    const saveErrors = logger.lines.filter((line) => line.message.includes('could not save'));
    expect(saveErrors).toHaveLength(1);
    expect(saveErrors[0]?.details).toMatchObject({ errorType: 'TokenStoreTimeout' });
  });

  it('retries a load that never answers instead of waiting forever', async () => {
    const recording = recordingStore();
    let loads = 0;
    const store = {
      ...recording.store,
      load: (name: string) => {
        loads++;
        return loads < 3 ? new Promise<undefined>(() => {}) : recording.store.load(name);
      },
    };
    const { stream, handled } = streamWith(store, [{ change: changeEvent('l1') }]);
    await until(() => handled.length === 1, 5000, 'the event after two hung loads');
    expect(loads).toBe(3);
    expect(stream.status().state).toBe('running');
  });

  it('refuses a tokenStoreTimeoutMs below 1', () => {
    const { mongo } = wrap();
    expect(
      thrown(() => mongo.watchOperations('patients', ['insert'], noop, { tokenStoreTimeoutMs: 0 })),
    ).toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
  });
});

describe('close() giving up on a handler', () => {
  it('stops reporting a live lag for the stream it abandoned', async () => {
    const metrics = createMetrics();
    let entered = false;
    const stream = new ManagedStream({
      name: 'abandoned',
      collection: 'patients',
      open: scriptedOpen(
        new FakeChangeStream([
          { change: changeEvent('a1', 'insert', { wallTime: new Date(Date.now() - 3_000) }) },
        ]),
      ).open,
      tokenStore: recordingStore().store,
      handler: () => {
        entered = true;
        return new Promise<void>(() => {});
      },
      instruments: createInstruments(metrics, {
        client: 'test',
        collectionLabel: collectionLabeler(true),
      }).stream('abandoned', 'patients'),
      logger: recordingLogger(),
      options: { closeTimeoutMs: 20 },
    });
    await until(() => entered, 5000, 'the handler to start');
    await stream.close();
    const atClose = await sample(metrics, 'austa_mongo_change_stream_lag_seconds', { stream: 'abandoned' });
    expect(atClose).toBeGreaterThanOrEqual(3);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await sample(metrics, 'austa_mongo_change_stream_lag_seconds', { stream: 'abandoned' })).toBe(
      atClose,
    );
  });
});

describe('PHI never reaches the log', () => {
  it('no log line of any failure path carries a value from a document or an error message', async () => {
    const secret = 'Ada Lovelace DOB 1815-12-10 HIV+';
    const withSecret = (name: string, code?: number) =>
      Object.assign(new Error(`E11000 duplicate key { email: "${secret}" }`), {
        name,
        ...(code === undefined ? {} : { code, codeName: 'DuplicateKey', keyValue: { email: secret } }),
      });
    const logger = recordingLogger();
    let loads = 0;
    const recording = recordingStore();
    const store = {
      ...recording.store,
      load: async (name: string) => {
        loads++;
        if (loads === 1) throw withSecret('MongoNetworkError');
        return recording.store.load(name);
      },
      save: async () => {
        throw withSecret('MongoServerError', 11000);
      },
    };
    const event = changeEvent('p1', 'insert', { fullDocument: { name: secret } });
    const { open: scripted } = scriptedOpen(
      new FakeChangeStream([{ change: event }, { error: withSecret('MongoServerError', 11000) }]),
      new FakeChangeStream([
        {
          error: Object.assign(withSecret('MongoServerError', 286), { codeName: 'ChangeStreamHistoryLost' }),
        },
      ]),
    );
    let calls = 0;
    const stream = new ManagedStream({
      name: 'phi',
      collection: 'patients',
      open: scripted,
      tokenStore: store,
      handler: async () => {
        calls++;
        throw withSecret('ValidationError');
      },
      instruments: createInstruments(createMetrics(), {
        client: 'test',
        collectionLabel: collectionLabeler(true),
      }).stream('phi', 'patients'),
      logger,
      options: {
        maxHandlerAttempts: 2,
        handlerRetryDelayMs: 1,
        restartDelayMs: 1,
        maxRestartDelayMs: 5,
        deadLetter: async () => {
          if (calls <= 2) throw withSecret('QueueError');
        },
      },
    });
    streams.push(stream);
    const end = await stream.done;
    expect(end.reason).toBe('fatal');
    const levels = new Set(logger.lines.map((line) => line.message));
    // Every path above logged: load retry, handler failure, dead-letter failure and success, save failure, restart, fatal.
    expect(levels.size).toBeGreaterThanOrEqual(6);
    const text = JSON.stringify(logger.lines);
    for (const fragment of ['Ada', '1815', 'HIV', 'duplicate key']) expect(text).not.toContain(fragment);
  });
});
