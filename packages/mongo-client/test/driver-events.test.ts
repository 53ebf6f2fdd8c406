import { spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createMetrics, type Metrics } from '@austa/metrics';
import { Long } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { CommandMetrics, PoolMetrics } from '../src/driver-events.js';
import { collectionLabeler, createInstruments } from '../src/instruments.js';
import { observations, sample } from './support.js';

let requestId = 0;

function commandListener(metrics: Metrics, collectionLabels: boolean | string[] = true) {
  const instruments = createInstruments(metrics, {
    client: 'api',
    collectionLabel: collectionLabeler(collectionLabels),
  });
  const listener = new CommandMetrics(instruments);
  const emitter = new EventEmitter();
  const detach = listener.attach(emitter);
  const run = (
    command: Record<string, unknown>,
    outcome: { reply?: unknown; failure?: unknown; durationMs?: number } = {},
  ) => {
    const id = ++requestId;
    const commandName = Object.keys(command)[0] as string;
    emitter.emit('commandStarted', { requestId: id, commandName, command });
    const duration = outcome.durationMs ?? 1.5;
    if (outcome.failure !== undefined) {
      emitter.emit('commandFailed', { requestId: id, commandName, duration, failure: outcome.failure });
    } else {
      emitter.emit('commandSucceeded', {
        requestId: id,
        commandName,
        duration,
        reply: outcome.reply ?? { ok: 1 },
      });
    }
    return id;
  };
  return { listener, emitter, detach, run };
}

const succeedFind = (emitter: EventEmitter, requestId: number) =>
  emitter.emit('commandSucceeded', { requestId, commandName: 'find', duration: 1, reply: { ok: 1 } });

const findsOn = (metrics: Metrics, collection: string) =>
  observations(metrics, 'db_client_operation_duration_seconds', {
    db_operation_name: 'find',
    db_collection_name: collection,
  });

const shared = (operation: string, errorType = '') => ({
  db_system_name: 'mongodb',
  db_operation_name: operation,
  error_type: errorType,
});

describe('command metrics from command events', () => {
  it('records one observation per command in the shared histogram and the per-collection one', async () => {
    const metrics = createMetrics();
    const { run } = commandListener(metrics);
    run({ find: 'patients', filter: { _id: 1 } }, { durationMs: 2 });
    run({ insert: 'patients', documents: [{}] }, { reply: { ok: 1, n: 1 } });
    expect(await observations(metrics, 'db_client_operation_duration_seconds', shared('find'))).toBe(1);
    expect(await sample(metrics, 'db_client_operation_duration_seconds_sum', shared('find'))).toBeCloseTo(
      0.002,
    );
    expect(await observations(metrics, 'db_client_operation_duration_seconds', shared('insert'))).toBe(1);
    expect(
      await observations(metrics, 'db_client_operation_duration_seconds', {
        db_operation_name: 'find',
        db_collection_name: 'patients',
        error_type: '',
      }),
    ).toBe(1);
  });

  it('lower-cases operation names like the Redis side and leaves the collection empty for commands without one', async () => {
    const metrics = createMetrics();
    const { run } = commandListener(metrics);
    run({ findAndModify: 'patients', query: {} });
    run({ ping: 1 });
    run({ configureFailPoint: 'failCommand', mode: 'off' });
    expect(await observations(metrics, 'db_client_operation_duration_seconds', shared('findandmodify'))).toBe(
      1,
    );
    expect(
      await observations(metrics, 'db_client_operation_duration_seconds', {
        db_operation_name: 'configurefailpoint',
        db_collection_name: '',
      }),
    ).toBe(1);
    expect(await metrics.text()).not.toContain('db_collection_name="failCommand"');
  });

  it('labels a duplicate key reported inside an ok:1 insert reply as DuplicateKey', async () => {
    const metrics = createMetrics();
    const { run } = commandListener(metrics);
    run(
      { insert: 'patients', documents: [{ _id: 1 }] },
      {
        reply: {
          ok: 1,
          n: 0,
          writeErrors: [{ index: 0, code: 11000, errmsg: 'E11000 dup key: { email: "a@b.c" }' }],
        },
      },
    );
    expect(
      await observations(metrics, 'db_client_operation_duration_seconds', shared('insert', 'DuplicateKey')),
    ).toBe(1);
    expect(await metrics.text()).not.toContain('a@b.c');
  });

  it('labels failed commands by code name or driver error class, never by message', async () => {
    const metrics = createMetrics();
    const { run } = commandListener(metrics);
    run(
      { update: 'patients' },
      {
        failure: Object.assign(new Error('not primary, ssn 123-45-6789'), {
          name: 'MongoServerError',
          codeName: 'NotWritablePrimary',
          code: 10107,
        }),
      },
    );
    run(
      { find: 'patients' },
      { failure: Object.assign(new Error('connection reset'), { name: 'MongoNetworkError' }) },
    );
    run(
      { find: 'patients' },
      { failure: Object.assign(new Error('x'), { name: 'MongoServerError', code: 50 }) },
    );
    expect(
      await observations(
        metrics,
        'db_client_operation_duration_seconds',
        shared('update', 'NotWritablePrimary'),
      ),
    ).toBe(1);
    expect(
      await observations(metrics, 'db_client_operation_duration_seconds', shared('find', 'network')),
    ).toBe(1);
    expect(
      await observations(metrics, 'db_client_operation_duration_seconds', shared('find', 'MaxTimeMSExpired')),
    ).toBe(1);
    expect(await metrics.text()).not.toContain('123-45-6789');
  });

  it('keeps change-stream getMore polls out of the operation histograms', async () => {
    const metrics = createMetrics();
    const { run, listener } = commandListener(metrics);
    run(
      { aggregate: 'patients', pipeline: [{ $changeStream: {} }], cursor: {} },
      { reply: { ok: 1, cursor: { id: Long.fromNumber(4242), firstBatch: [] } } },
    );
    expect(listener.openChangeStreamCursors).toBe(1);
    run(
      { getMore: Long.fromNumber(4242), collection: 'patients' },
      { durationMs: 1000, reply: { ok: 1, cursor: { id: Long.fromNumber(4242) } } },
    );
    run(
      { getMore: Long.fromNumber(4242), collection: 'patients' },
      { durationMs: 1000, reply: { ok: 1, cursor: { id: Long.fromNumber(4242) } } },
    );
    // An ordinary cursor's getMore is a real operation.
    run(
      { getMore: Long.fromNumber(7), collection: 'patients' },
      { reply: { ok: 1, cursor: { id: Long.fromNumber(0) } } },
    );

    expect(await observations(metrics, 'db_client_operation_duration_seconds', shared('aggregate'))).toBe(1);
    expect(await observations(metrics, 'db_client_operation_duration_seconds', shared('getmore'))).toBe(1);
    expect(
      await observations(metrics, 'austa_mongo_change_stream_poll_duration_seconds', {
        db_collection_name: 'patients',
        error_type: '',
      }),
    ).toBe(2);
    expect(await sample(metrics, 'db_client_operation_duration_seconds_sum', shared('getmore'))).toBeLessThan(
      0.01,
    );
  });

  it('forgets a change-stream cursor when it is killed, exhausted or fails', async () => {
    const metrics = createMetrics();
    const { run, listener } = commandListener(metrics);
    const open = (id: number) =>
      run(
        { aggregate: 'patients', pipeline: [{ $changeStream: {} }] },
        { reply: { ok: 1, cursor: { id: Long.fromNumber(id), firstBatch: [] } } },
      );
    open(1);
    open(2);
    open(3);
    expect(listener.openChangeStreamCursors).toBe(3);
    run({ killCursors: 'patients', cursors: [Long.fromNumber(1)] });
    run(
      { getMore: Long.fromNumber(2), collection: 'patients' },
      { reply: { ok: 1, cursor: { id: Long.fromNumber(0) } } },
    );
    run(
      { getMore: Long.fromNumber(3), collection: 'patients' },
      { failure: Object.assign(new Error('x'), { name: 'MongoServerError', codeName: 'CursorNotFound' }) },
    );
    expect(listener.openChangeStreamCursors).toBe(0);
    expect(
      await observations(metrics, 'austa_mongo_change_stream_poll_duration_seconds', {
        db_collection_name: 'patients',
        error_type: 'CursorNotFound',
      }),
    ).toBe(1);
  });

  it('still records a command whose started event was missed, without a collection', async () => {
    const metrics = createMetrics();
    const { emitter } = commandListener(metrics);
    succeedFind(emitter, 999_999);
    expect(await observations(metrics, 'db_client_operation_duration_seconds', shared('find'))).toBe(1);
  });

  it('bounds the commands it tracks when completions go missing, dropping the oldest', async () => {
    const metrics = createMetrics();
    const { emitter } = commandListener(metrics);
    const start = (collection: string) => {
      const id = ++requestId;
      emitter.emit('commandStarted', { requestId: id, commandName: 'find', command: { find: collection } });
      return id;
    };
    // 1,024 commands whose completions never come fill every slot of the in-flight ring…
    for (let i = 0; i < 1024; i++) start('never');
    // …so this one waits in the overflow map, and 10,000 more push it out of that capped map.
    const lost = start('lost');
    for (let i = 0; i < 10_000; i++) start('never');
    succeedFind(emitter, lost);
    // Still measured once, without the collection it no longer knows.
    expect(await findsOn(metrics, '')).toBe(1);
    expect(await metrics.text()).not.toContain('db_collection_name="lost"');
    // A command completing normally after all that is still matched to its collection.
    const fresh = start('fresh');
    succeedFind(emitter, fresh);
    expect(await findsOn(metrics, 'fresh')).toBe(1);
  });

  it('reuses a ring slot whose command is far older than the new one', async () => {
    const metrics = createMetrics();
    const { emitter } = commandListener(metrics);
    const base = 2_048_000 + 5;
    emitter.emit('commandStarted', { requestId: base, commandName: 'find', command: { find: 'old' } });
    const newer = base + 1024 * 1000; // same slot, more than a million requests later
    emitter.emit('commandStarted', { requestId: newer, commandName: 'find', command: { find: 'new' } });
    succeedFind(emitter, newer);
    expect(await findsOn(metrics, 'new')).toBe(1);
  });

  it('reports collections outside the collectionLabels allowlist as other', async () => {
    const metrics = createMetrics();
    const { run } = commandListener(metrics, ['patients']);
    run({ find: 'patients' });
    run({ find: 'notes_8f14e45f' });
    expect(await findsOn(metrics, 'other')).toBe(1);
    expect(await metrics.text()).not.toContain('notes_8f14e45f');
  });

  it('stops caching new collections past 1,000 per operation, reporting the rest as other', async () => {
    const metrics = createMetrics({ maxSeries: Number.POSITIVE_INFINITY });
    const { run } = commandListener(metrics);
    for (let i = 0; i < 1005; i++) run({ find: `tenant_${i}` });
    expect(await findsOn(metrics, 'tenant_999')).toBe(1);
    expect(await findsOn(metrics, 'tenant_1000')).toBe(0);
    expect(await findsOn(metrics, 'other')).toBe(5);
  });

  it('stops listening and forgets its state when detached', async () => {
    const metrics = createMetrics();
    const { emitter, detach, run } = commandListener(metrics);
    run({ find: 'patients' });
    detach();
    expect(emitter.listenerCount('commandStarted')).toBe(0);
    expect(emitter.listenerCount('commandSucceeded')).toBe(0);
    expect(emitter.listenerCount('commandFailed')).toBe(0);
    run({ find: 'patients' });
    expect(await observations(metrics, 'db_client_operation_duration_seconds', shared('find'))).toBe(1);
  });
});

function poolListener(metrics: Metrics, client = 'api') {
  const instruments = createInstruments(metrics, { client, collectionLabel: collectionLabeler(true) });
  const emitter = new EventEmitter();
  const pool = new PoolMetrics(instruments);
  const detach = pool.attach(emitter);
  return { emitter, detach, pool };
}

describe('pool metrics from CMAP events', () => {
  const address = 'db-0:27017';
  const connections = (metrics: Metrics, state: string, client = 'api') =>
    sample(metrics, 'austa_mongo_pool_connections', { client, server_address: address, state });

  it('reports connections by state, checkout waits, failures by reason and pool clears', async () => {
    const metrics = createMetrics();
    const { emitter } = poolListener(metrics);
    for (const connectionId of [1, 2, 3]) emitter.emit('connectionReady', { address, connectionId });
    emitter.emit('connectionCheckedOut', { address, connectionId: 1, durationMS: 0.2 });
    emitter.emit('connectionCheckedOut', { address, connectionId: 2, durationMS: 40 });
    expect(await connections(metrics, 'used')).toBe(2);
    expect(await connections(metrics, 'idle')).toBe(1);
    emitter.emit('connectionCheckedIn', { address, connectionId: 1 });
    expect(await connections(metrics, 'used')).toBe(1);
    expect(await connections(metrics, 'idle')).toBe(2);
    // Closed while checked out (a pool clear that interrupts in-use connections): counted once, never negative.
    emitter.emit('connectionClosed', { address, connectionId: 2, reason: 'error' });
    emitter.emit('connectionCheckedIn', { address, connectionId: 2 });
    expect(await connections(metrics, 'used')).toBe(0);
    expect(await connections(metrics, 'idle')).toBe(2);

    emitter.emit('connectionCheckOutFailed', { address, reason: 'timeout', durationMS: 10_000 });
    emitter.emit('connectionCheckOutFailed', { address, reason: 'connectionError', durationMS: 3 });
    emitter.emit('connectionCheckOutFailed', { address, reason: 'somethingNew' });
    emitter.emit('connectionPoolCleared', { address });
    expect(
      await sample(metrics, 'austa_mongo_pool_checkout_failures_total', { client: 'api', reason: 'timeout' }),
    ).toBe(1);
    expect(
      await sample(metrics, 'austa_mongo_pool_checkout_failures_total', {
        client: 'api',
        reason: 'connection_error',
      }),
    ).toBe(1);
    expect(
      await sample(metrics, 'austa_mongo_pool_checkout_failures_total', { client: 'api', reason: 'other' }),
    ).toBe(1);
    expect(await sample(metrics, 'austa_mongo_pool_clears_total', { client: 'api' })).toBe(1);
    expect(await observations(metrics, 'austa_mongo_pool_wait_seconds', { client: 'api' })).toBe(4);
    expect(
      await sample(metrics, 'austa_mongo_pool_wait_seconds_bucket', { client: 'api', le: '0.001' }),
    ).toBe(1);
  });

  it('drops a server’s series when its pool closes', async () => {
    const metrics = createMetrics();
    const { emitter } = poolListener(metrics);
    emitter.emit('connectionReady', { address, connectionId: 1 });
    expect(await metrics.text()).toContain(`server_address="${address}"`);
    emitter.emit('connectionPoolClosed', { address });
    expect(await metrics.text()).not.toContain(`server_address="${address}"`);
  });

  it('keeps two clients on one registry apart through the client label', async () => {
    const metrics = createMetrics();
    const first = poolListener(metrics, 'api');
    const second = poolListener(metrics, 'worker');
    first.emitter.emit('connectionReady', { address, connectionId: 1 });
    second.emitter.emit('connectionReady', { address, connectionId: 1 });
    second.emitter.emit('connectionReady', { address, connectionId: 2 });
    expect(await connections(metrics, 'idle', 'api')).toBe(1);
    expect(await connections(metrics, 'idle', 'worker')).toBe(2);
  });

  it('stops reporting and listening when detached', async () => {
    const metrics = createMetrics();
    const { emitter, detach } = poolListener(metrics);
    emitter.emit('connectionReady', { address, connectionId: 1 });
    detach();
    for (const event of ['connectionReady', 'connectionCheckedOut', 'connectionPoolCleared']) {
      expect(emitter.listenerCount(event)).toBe(0);
    }
    expect(await metrics.text()).not.toContain(`server_address="${address}"`);
  });
});

describe('promtool check metrics', () => {
  it('finds no problem in a registry every mongo-client instrument has written to', async () => {
    const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
    if (probe.error !== undefined || probe.status !== 0) {
      throw new Error('promtool is not installed; install it with: apt-get install -y prometheus');
    }
    const metrics = createMetrics({ defaultLabels: { service: 'care-api' } });
    const instruments = createInstruments(metrics, {
      client: 'api',
      collectionLabel: collectionLabeler(true),
    });
    const { run } = commandListener(metrics);
    run({ find: 'patients' });
    run(
      { aggregate: 'patients', pipeline: [{ $changeStream: {} }] },
      { reply: { ok: 1, cursor: { id: Long.fromNumber(5) } } },
    );
    run({ getMore: Long.fromNumber(5), collection: 'patients' });
    const { emitter } = poolListener(metrics);
    emitter.emit('connectionReady', { address: 'db-0:27017', connectionId: 1 });
    emitter.emit('connectionCheckedOut', { address: 'db-0:27017', connectionId: 1, durationMS: 1 });
    emitter.emit('connectionCheckOutFailed', { address: 'db-0:27017', reason: 'timeout', durationMS: 1 });
    emitter.emit('connectionPoolCleared', { address: 'db-0:27017' });
    instruments.operation('findPatientByEmail', 'patients', '', 0.003);
    instruments.transaction('committed');
    instruments.transaction('aborted');
    instruments.transactionRetry();
    instruments.connectAttempt(true);
    instruments.connectAttempt(false);
    const stream = instruments.stream('patients-audit', 'patients');
    stream.event('insert');
    stream.error('resumable');
    stream.error('fatal');
    stream.restart();
    stream.lag(1.5);
    // A live reading (a stream whose handler is stuck) replaces the stored value at scrape time.
    const stopLag = instruments.stream('patients-backfill', 'patients').watchLag(() => 42);
    stream.handlerFailure();
    stream.deadLetter();
    stream.tokenSaveFailure();

    const input = await metrics.text();
    for (const name of [
      'db_client_operation_duration_seconds',
      'db_client_operation_duration_seconds',
      'austa_mongo_change_stream_poll_duration_seconds',
      'austa_mongo_operation_duration_seconds',
      'austa_mongo_pool_connections',
      'austa_mongo_pool_wait_seconds',
      'austa_mongo_pool_checkout_failures_total',
      'austa_mongo_pool_clears_total',
      'austa_mongo_transactions_total',
      'austa_mongo_transaction_retries_total',
      'austa_mongo_reconnect_attempts_total',
      'mongodb_change_stream_events_total',
      'austa_mongo_change_stream_errors_total',
      'austa_mongo_change_stream_restarts_total',
      'austa_mongo_change_stream_lag_seconds',
      'austa_mongo_change_stream_handler_failures_total',
      'austa_mongo_change_stream_dead_letters_total',
      'austa_mongo_change_stream_token_save_failures_total',
    ]) {
      expect(input).toContain(`# TYPE ${name} `);
    }
    expect(input).toContain(
      'austa_mongo_change_stream_lag_seconds{stream="patients-backfill",service="care-api"} 42',
    );
    stopLag();
    const result = spawnSync('promtool', ['check', 'metrics'], { input, encoding: 'utf8' });
    expect(`${result.stdout}${result.stderr}`).toBe('');
    expect(result.status).toBe(0);
  });
});
