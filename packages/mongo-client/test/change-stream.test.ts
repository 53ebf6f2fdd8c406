import { createMetrics, type Metrics } from '@austa/metrics';
import type { Document } from 'mongodb';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ChangeHandler,
  type ManagedChangeStreamOptions,
  ManagedStream,
  STREAM_DEFAULTS,
} from '../src/change-stream.js';
import { backoffMs } from '../src/delay.js';
import { FatalChangeStreamError, TokenStoreError } from '../src/errors.js';
import { collectionLabeler, createInstruments, noopStreamInstruments } from '../src/instruments.js';
import {
  activeTimers,
  changeEvent,
  FakeChangeStream,
  recordingLogger,
  recordingStore,
  scriptedOpen,
  token,
  until,
  updateEvent,
} from './fakes.js';
import { sample } from './support.js';

// Short delays so the state machine runs in milliseconds; the logic is the same at production values.
const FAST: ManagedChangeStreamOptions = {
  handlerRetryDelayMs: 1,
  restartDelayMs: 1,
  maxRestartDelayMs: 5,
  idleCheckpointIntervalMs: 0,
  closeTimeoutMs: 1000,
};

const running: ManagedStream[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((stream) => stream.close()));
});

function start(
  open: ReturnType<typeof scriptedOpen>['open'],
  options: {
    handler?: ChangeHandler;
    store?: ReturnType<typeof recordingStore>;
    metrics?: Metrics;
    accept?: (change: Document) => boolean;
    stream?: ManagedChangeStreamOptions;
    name?: string;
  } = {},
) {
  const store = options.store ?? recordingStore();
  const logger = recordingLogger();
  const handled: string[] = [];
  const handler: ChangeHandler =
    options.handler ??
    (async (change) => {
      handled.push((change._id as { _data: string })._data);
    });
  const instruments = options.metrics
    ? createInstruments(options.metrics, { client: 'test', collectionLabel: collectionLabeler(true) }).stream(
        options.name ?? 'patients',
        'patients',
      )
    : noopStreamInstruments();
  const stream = new ManagedStream({
    name: options.name ?? 'patients',
    collection: 'patients',
    open,
    tokenStore: store.store,
    handler: async (change, context) => {
      await handler(change, context);
    },
    ...(options.accept ? { accept: options.accept } : {}),
    instruments,
    logger,
    options: { ...FAST, ...options.stream },
  });
  running.push(stream);
  return { stream, store, logger, handled };
}

describe('ManagedStream delivery', () => {
  it('hands events to the handler in order and saves each token only after the handler resolved', async () => {
    const fake = new FakeChangeStream([{ change: changeEvent('t1') }, { change: changeEvent('t2') }]);
    const order: string[] = [];
    const store = recordingStore();
    const { stream } = start(scriptedOpen(fake).open, {
      store,
      handler: async (change) => {
        const id = (change._id as { _data: string })._data;
        order.push(`handle-start:${id}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
        order.push(`handle-end:${id}`);
      },
    });
    await until(() => store.calls.includes('save:t2'));
    const saves = store.calls.filter((call) => call.startsWith('save'));
    expect(saves).toEqual(['save:t1', 'save:t2']);
    expect(order).toEqual(['handle-start:t1', 'handle-end:t1', 'handle-start:t2', 'handle-end:t2']);
    expect(stream.status()).toMatchObject({ state: 'running', handled: 2, restarts: 0 });
  });

  it('saves the post-batch token of the last event of a batch, which the driver exposes as resumeToken', async () => {
    const fake = new FakeChangeStream([{ change: changeEvent('t1'), token: token('pbrt-after-t1') }]);
    const { store } = start(scriptedOpen(fake).open);
    await until(() => store.calls.includes('save:pbrt-after-t1'));
    expect(store.tokens.get('patients')).toEqual(token('pbrt-after-t1'));
  });

  it('starts after the saved token when one exists', async () => {
    const store = recordingStore({ patients: token('saved') });
    const script = scriptedOpen(new FakeChangeStream([{ change: changeEvent('t9') }]));
    const { handled, logger } = start(script.open, { store });
    await until(() => handled.length === 1);
    expect(script.opens[0]?.start).toEqual({ startAfter: token('saved') });
    expect(logger.lines.some((line) => line.message.includes('no saved resume token'))).toBe(false);
  });

  it('without a saved token starts now, says so, and saves the first post-batch token at once', async () => {
    const store = recordingStore();
    const script = scriptedOpen(new FakeChangeStream([{ idle: true, token: token('initial-pbrt') }]));
    const { logger } = start(script.open, { store, stream: { idleCheckpointIntervalMs: 60_000 } });
    await until(() => store.calls.includes('save:initial-pbrt'));
    expect(script.opens[0]?.start).toEqual({});
    expect(logger.lines).toContainEqual(
      expect.objectContaining({ level: 'warn', message: expect.stringContaining('no saved resume token') }),
    );
  });

  it('passes startAtOperationTime only when no token is saved', async () => {
    const at = { t: 1, i: 1 } as unknown as NonNullable<ManagedChangeStreamOptions['startAtOperationTime']>;
    const fresh = scriptedOpen(new FakeChangeStream([{ change: changeEvent('a') }]));
    const first = start(fresh.open, { stream: { startAtOperationTime: at } });
    await until(() => first.handled.length === 1);
    expect(fresh.opens[0]?.start).toEqual({ startAtOperationTime: at });

    const saved = scriptedOpen(new FakeChangeStream([{ change: changeEvent('b') }]));
    const second = start(saved.open, {
      store: recordingStore({ other: token('saved') }),
      name: 'other',
      stream: { startAtOperationTime: at },
    });
    await until(() => second.handled.length === 1);
    expect(saved.opens[0]?.start).toEqual({ startAfter: token('saved') });
  });
});

describe('ManagedStream handler failures', () => {
  it('retries a failing handler and saves the token once, after the attempt that succeeded', async () => {
    const metrics = createMetrics();
    const fake = new FakeChangeStream([{ change: changeEvent('t1') }]);
    let calls = 0;
    const attempts: number[] = [];
    const store = recordingStore();
    start(scriptedOpen(fake).open, {
      store,
      metrics,
      handler: async (_change, context) => {
        calls++;
        attempts.push(context.attempt);
        if (calls < 3) throw new Error('downstream unavailable');
      },
    });
    await until(() => store.calls.includes('save:t1'));
    expect(attempts).toEqual([1, 2, 3]);
    expect(store.calls.filter((call) => call.startsWith('save'))).toEqual(['save:t1']);
    expect(
      await sample(metrics, 'austa_mongo_change_stream_handler_failures_total', { stream: 'patients' }),
    ).toBe(2);
  });

  it('sends an event to the dead-letter callback after maxHandlerAttempts failures, then moves on', async () => {
    const metrics = createMetrics();
    const fake = new FakeChangeStream([{ change: changeEvent('poison') }, { change: changeEvent('next') }]);
    const dead: Array<{ id: string; error: unknown; attempts: number }> = [];
    const handled: string[] = [];
    const failure = new Error('cannot process');
    const store = recordingStore();
    const { stream } = start(scriptedOpen(fake).open, {
      store,
      metrics,
      handler: async (change) => {
        const id = (change._id as { _data: string })._data;
        if (id === 'poison') throw failure;
        handled.push(id);
      },
      stream: {
        maxHandlerAttempts: 4,
        deadLetter: async (change, error, context) => {
          dead.push({ id: (change._id as { _data: string })._data, error, attempts: context.attempts });
        },
      },
    });
    await until(() => store.calls.includes('save:next'));
    expect(dead).toEqual([{ id: 'poison', error: failure, attempts: 4 }]);
    expect(handled).toEqual(['next']);
    expect(store.calls.filter((call) => call.startsWith('save'))).toEqual(['save:poison', 'save:next']);
    expect(stream.status()).toMatchObject({ handled: 2, deadLettered: 1 });
    expect(
      await sample(metrics, 'austa_mongo_change_stream_dead_letters_total', { stream: 'patients' }),
    ).toBe(1);
    expect(
      await sample(metrics, 'austa_mongo_change_stream_handler_failures_total', { stream: 'patients' }),
    ).toBe(4);
  });

  it('never advances the token past an event whose dead-letter callback failed, and delivers it again after a restart', async () => {
    const store = recordingStore({ patients: token('before') });
    let deadLetterCalls = 0;
    const first = start(scriptedOpen(new FakeChangeStream([{ change: changeEvent('poison') }])).open, {
      store,
      handler: async () => {
        throw new Error('always fails');
      },
      stream: {
        maxHandlerAttempts: 2,
        deadLetter: async () => {
          deadLetterCalls++;
          throw new Error('dead-letter queue down');
        },
      },
    });
    await until(() => deadLetterCalls >= 2, 5000, 'a second delivery cycle');
    await first.stream.close();
    expect(await first.stream.done).toEqual({ reason: 'closed' });
    expect(store.tokens.get('patients')).toEqual(token('before'));
    expect(store.calls.filter((call) => call.startsWith('save'))).toEqual([]);
    expect(first.logger.lines).toContainEqual(
      expect.objectContaining({
        level: 'error',
        message: expect.stringContaining('dead-letter callback failed'),
      }),
    );

    // A new process with the same store starts after the last handled event: the poison event comes again.
    const again = scriptedOpen(new FakeChangeStream([{ change: changeEvent('poison') }]));
    const second = start(again.open, { store });
    await until(() => second.handled.length === 1);
    expect(again.opens[0]?.start).toEqual({ startAfter: token('before') });
    expect(second.handled).toEqual(['poison']);
  });

  it('without a dead-letter callback holds the stream on a failing event instead of skipping it', async () => {
    const fake = new FakeChangeStream([{ change: changeEvent('stuck') }, { change: changeEvent('after') }]);
    let calls = 0;
    const store = recordingStore();
    const { stream, logger } = start(scriptedOpen(fake).open, {
      store,
      handler: async () => {
        calls++;
        throw new Error('always fails');
      },
      stream: { maxHandlerAttempts: 2 },
    });
    await until(() => calls >= 6, 5000, 'three delivery cycles');
    expect(fake.polls).toBe(1);
    expect(store.calls.filter((call) => call.startsWith('save'))).toEqual([]);
    expect(stream.status()).toMatchObject({ state: 'running', handled: 0 });
    expect(logger.lines.some((line) => line.message.includes('no deadLetter callback'))).toBe(true);
    await stream.close();
    expect(await stream.done).toEqual({ reason: 'closed' });
  });

  it('logs handler failures by error type, never with the event or the error message', async () => {
    const secret = 'patient Ada Lovelace, HIV positive';
    const fake = new FakeChangeStream([
      { change: changeEvent('t1', 'insert', { fullDocument: { note: secret } }) },
    ]);
    const { logger } = start(scriptedOpen(fake).open, {
      handler: async () => {
        throw new TypeError(`cannot index ${secret}`);
      },
      stream: { maxHandlerAttempts: 1, deadLetter: async () => {} },
    });
    await until(() => logger.lines.some((line) => line.message.includes('dead-lettered')));
    const text = JSON.stringify(logger.lines);
    expect(text).not.toContain('Ada');
    expect(text).toContain('TypeError');
  });
});

describe('ManagedStream restarts', () => {
  it('reopens with startAfter the last handled token when the driver gives up, counting the error kind', async () => {
    const metrics = createMetrics();
    const notPrimary = Object.assign(new Error('not primary'), { name: 'MongoServerError', code: 10107 });
    const network = Object.assign(new Error('socket closed'), { name: 'MongoNetworkError' });
    const script = scriptedOpen(
      new FakeChangeStream([{ change: changeEvent('t1') }, { error: network }]),
      new FakeChangeStream([
        { change: changeEvent('t2') },
        { error: Object.assign(new Error('x'), { code: 11601 }) },
      ]),
      new FakeChangeStream([{ change: changeEvent('t3') }]),
    );
    const { stream, handled, store } = start(script.open, { metrics });
    await until(() => store.calls.includes('save:t3'));
    expect(handled).toEqual(['t1', 't2', 't3']);
    expect(script.opens.map((open) => open.start)).toEqual([
      {},
      { startAfter: token('t1') },
      { startAfter: token('t2') },
    ]);
    expect(
      script.opens.every((open) => open.stream.closeCalls >= 1 || open.stream === script.opens[2]?.stream),
    ).toBe(true);
    expect(stream.status().restarts).toBe(2);
    expect(await sample(metrics, 'austa_mongo_change_stream_restarts_total', { stream: 'patients' })).toBe(2);
    expect(
      await sample(metrics, 'austa_mongo_change_stream_errors_total', {
        stream: 'patients',
        kind: 'resumable',
      }),
    ).toBe(1);
    expect(
      await sample(metrics, 'austa_mongo_change_stream_errors_total', {
        stream: 'patients',
        kind: 'non_resumable',
      }),
    ).toBe(1);
    expect(notPrimary.name).toBe('MongoServerError');
  });

  it('keeps reopening with backoff while opening fails, and resumes from the same token once it works', async () => {
    let failures = 0;
    const opens: unknown[] = [];
    const working = new FakeChangeStream([{ change: changeEvent('t2') }]);
    const store = recordingStore({ patients: token('t1') });
    const { handled, stream } = start(
      (start) => {
        opens.push(start);
        if (failures < 3) {
          failures++;
          throw Object.assign(new Error('no server'), { name: 'MongoServerSelectionError' });
        }
        return working;
      },
      { store },
    );
    await until(() => handled.length === 1);
    expect(opens).toEqual(Array.from({ length: 4 }, () => ({ startAfter: token('t1') })));
    expect(stream.status().restarts).toBe(3);
  });

  it('keeps backing off a stream that fails soon after each reopen, even when its first poll succeeds', async () => {
    const flapping = Array.from(
      { length: 5 },
      () =>
        new FakeChangeStream([
          { idle: true, token: token('pbrt') },
          { error: Object.assign(new Error('reset'), { name: 'MongoNetworkError' }) },
        ]),
    );
    const script = scriptedOpen(...flapping);
    const started = Date.now();
    const { stream } = start(script.open, { stream: { restartDelayMs: 20, maxRestartDelayMs: 1000 } });
    await until(() => script.opens.length === 5, 10_000, 'five opens');
    // Attempts 1-4 wait at least 10 + 20 + 40 + 80 ms: the backoff grew although every stream opened fine.
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    await stream.close();
  });

  it('grows the restart delay exponentially, with jitter, up to the cap', () => {
    expect(backoffMs(1, 500, 30_000, () => 0)).toBe(250);
    expect(backoffMs(1, 500, 30_000, () => 1)).toBe(500);
    expect(backoffMs(4, 500, 30_000, () => 1)).toBe(4000);
    expect(backoffMs(30, 500, 30_000, () => 1)).toBe(30_000);
    expect(backoffMs(30, 500, 30_000, () => 0)).toBe(15_000);
  });

  it('waits for a token store that cannot be read instead of starting without the saved token', async () => {
    const store = recordingStore({ patients: token('saved') });
    // Even an authorization error from the store is waited out: it is the store's, not the stream's.
    store.control.failLoad = Object.assign(new Error('not authorized'), {
      name: 'MongoServerError',
      code: 13,
    });
    store.control.failLoadTimes = 2;
    const script = scriptedOpen(new FakeChangeStream([{ change: changeEvent('t2') }]));
    const { handled } = start(script.open, { store });
    await until(() => handled.length === 1);
    expect(store.calls.filter((call) => call.startsWith('load'))).toHaveLength(3);
    expect(script.opens).toHaveLength(1);
    expect(script.opens[0]?.start).toEqual({ startAfter: token('saved') });
  });
});

describe('ManagedStream fatal errors', () => {
  const cases: Array<[string, unknown, string]> = [
    [
      'ChangeStreamHistoryLost',
      { name: 'MongoServerError', code: 286, message: 'history lost' },
      'history_lost',
    ],
    ['CappedPositionLost', { name: 'MongoServerError', code: 136, message: 'capped' }, 'history_lost'],
    [
      'ChangeStreamFatalError about _id',
      { name: 'MongoServerError', code: 280, message: 'Encountered an event whose _id field … was modified' },
      'missing_resume_token',
    ],
    ['ChangeStreamFatalError', { name: 'MongoServerError', code: 280, message: 'other' }, 'server_fatal'],
    [
      'a driver error for an event without _id',
      {
        name: 'MongoChangeStreamError',
        message: 'A change stream document has been received that lacks a resume token',
      },
      'missing_resume_token',
    ],
    [
      'a standalone server',
      { name: 'MongoServerError', code: 40573, message: 'only on replica sets' },
      'standalone',
    ],
    [
      'InvalidResumeToken',
      { name: 'MongoServerError', code: 260, message: 'bad token' },
      'invalid_resume_token',
    ],
    [
      'BSONObjectTooLarge',
      { name: 'MongoServerError', code: 10334, message: 'too large' },
      'event_too_large',
    ],
    ['Unauthorized', { name: 'MongoServerError', code: 13, message: 'not authorized' }, 'unauthorized'],
    [
      'an unknown stage',
      { name: 'MongoServerError', code: 40324, message: 'Unrecognized stage' },
      'invalid_pipeline',
    ],
  ];

  it.each(cases)('stops for good on %s and says why', async (_label, shape, reason) => {
    const metrics = createMetrics();
    const error = Object.assign(new Error(String((shape as { message: string }).message)), shape);
    const script = scriptedOpen(new FakeChangeStream([{ change: changeEvent('t1') }, { error }]));
    const { stream, logger } = start(script.open, { metrics });
    const end = await stream.done;
    expect(end.reason).toBe('fatal');
    const fatal = (end as { error: FatalChangeStreamError }).error;
    expect(FatalChangeStreamError.isInstance(fatal)).toBe(true);
    expect(fatal.code).toBe('E_CHANGE_STREAM_FATAL');
    expect(fatal.reason).toBe(reason);
    expect(fatal.stream).toBe('patients');
    expect(fatal.cause).toBe(error);
    expect(script.opens).toHaveLength(1);
    expect(stream.status()).toMatchObject({
      state: 'failed',
      error: { code: 'E_CHANGE_STREAM_FATAL', reason },
    });
    expect(
      await sample(metrics, 'austa_mongo_change_stream_errors_total', { stream: 'patients', kind: 'fatal' }),
    ).toBe(1);
    const line = logger.lines.find((entry) => entry.level === 'error');
    expect(line?.message).toContain(reason);
    expect(line?.details).toMatchObject({ stream: 'patients', reason });
  });

  it('treats a token store answer that is not a document as fatal', async () => {
    const store = recordingStore({ patients: 'not-a-token' as never });
    const script = scriptedOpen();
    const { stream } = start(script.open, { store });
    expect(await stream.done).toMatchObject({ reason: 'fatal', error: { reason: 'invalid_resume_token' } });
    expect(script.opens).toHaveLength(0);
  });

  it('treats a corrupt stored token as fatal instead of silently starting from now', async () => {
    const store = recordingStore();
    store.control.failLoad = new TokenStoreError('not Extended JSON');
    store.control.failLoadTimes = 1;
    const script = scriptedOpen();
    const { stream } = start(script.open, { store });
    const end = await stream.done;
    expect(end).toMatchObject({ reason: 'fatal', error: { reason: 'invalid_resume_token' } });
    expect(script.opens).toHaveLength(0);
  });
});

describe('ManagedStream invalidate policy', () => {
  it('stops on invalidate by default, without calling the handler and without saving the invalidate token', async () => {
    const store = recordingStore();
    const script = scriptedOpen(
      new FakeChangeStream([
        { change: changeEvent('t1') },
        { change: changeEvent('drop-1', 'drop') },
        { change: changeEvent('inv-1', 'invalidate') },
      ]),
    );
    const { stream, handled } = start(script.open, { store });
    expect(STREAM_DEFAULTS.onInvalidate).toBe('stop');
    expect(await stream.done).toEqual({ reason: 'invalidated' });
    expect(handled).toEqual(['t1', 'drop-1']);
    expect(store.tokens.get('patients')).toEqual(token('drop-1'));
    expect(stream.status().state).toBe('stopped');
    expect(script.opens).toHaveLength(1);
  });

  it('restarts after the invalidate event with startAfter under onInvalidate: restart', async () => {
    const script = scriptedOpen(
      new FakeChangeStream([{ change: changeEvent('t1') }, { change: changeEvent('inv-1', 'invalidate') }]),
      new FakeChangeStream([{ change: changeEvent('t2') }]),
    );
    const { handled, stream, store } = start(script.open, { stream: { onInvalidate: 'restart' } });
    await until(() => handled.length === 2);
    expect(handled).toEqual(['t1', 't2']);
    expect(script.opens[1]?.start).toEqual({ startAfter: token('inv-1') });
    expect(store.calls).toContain('save:inv-1');
    expect(stream.status().restarts).toBe(1);
  });

  it('treats a cursor the server ended without an invalidate event as invalidated', async () => {
    const script = scriptedOpen(new FakeChangeStream([{ change: changeEvent('t1') }, { end: true }]));
    const { stream } = start(script.open);
    expect(await stream.done).toEqual({ reason: 'invalidated' });
  });

  it('backs off instead of spinning when a restarted stream keeps ending without a newer token', async () => {
    const ends = Array.from({ length: 4 }, () => new FakeChangeStream([{ end: true }], token('t1')));
    const script = scriptedOpen(...ends);
    const started = Date.now();
    const { stream } = start(script.open, {
      store: recordingStore({ patients: token('t1') }),
      stream: { onInvalidate: 'restart', restartDelayMs: 20, maxRestartDelayMs: 40 },
    });
    await until(() => script.opens.length >= 4);
    // Attempts 1-3 wait at least 10 + 20 + 20 ms (half of each capped delay is fixed).
    expect(Date.now() - started).toBeGreaterThanOrEqual(50);
    await stream.close();
  });
});

describe('ManagedStream checkpoints', () => {
  it('saves tokens of idle polls and filtered-out events at most once per interval, and the newest one on close', async () => {
    const fake = new FakeChangeStream([
      { change: updateEvent('skip-1', { other: 1 }) },
      { idle: true, token: token('pbrt-1') },
      { idle: true, token: token('pbrt-2') },
    ]);
    const store = recordingStore({ patients: token('saved') });
    const { stream, handled } = start(scriptedOpen(fake).open, {
      store,
      accept: () => false,
      stream: { idleCheckpointIntervalMs: 60_000 },
    });
    await until(() => fake.polls >= 4);
    expect(handled).toEqual([]);
    // The saved token was loaded just now, so the interval has not passed: nothing written while running…
    expect(store.calls.filter((call) => call.startsWith('save'))).toEqual(['save:skip-1']);
    await stream.close();
    // …and close() writes the newest safe token.
    expect(store.tokens.get('patients')).toEqual(token('pbrt-2'));
  });

  it('keeps going when the token store fails to save, counting and logging it once until it recovers', async () => {
    const metrics = createMetrics();
    const store = recordingStore();
    store.control.failSave = new Error('READONLY');
    const fake = new FakeChangeStream([{ change: changeEvent('t1') }, { change: changeEvent('t2') }]);
    const { handled, logger } = start(scriptedOpen(fake).open, { store, metrics });
    await until(() => handled.length === 2);
    await until(() => store.calls.filter((call) => call.startsWith('save-failed')).length === 2);
    expect(
      await sample(metrics, 'austa_mongo_change_stream_token_save_failures_total', { stream: 'patients' }),
    ).toBe(2);
    expect(logger.lines.filter((line) => line.message.includes('could not save'))).toHaveLength(1);
    store.control.failSave = undefined;
    fake.push({ change: changeEvent('t3') });
    await until(() => store.calls.includes('save:t3'));
    expect(logger.lines.some((line) => line.message.includes('recovered'))).toBe(true);
  });

  it('sets the lag gauge from the event wallTime, and to 0 when idle and caught up', async () => {
    const metrics = createMetrics();
    const old = changeEvent('t1', 'insert', { wallTime: new Date(Date.now() - 30_000) });
    const fake = new FakeChangeStream([{ change: old }]);
    const { stream } = start(scriptedOpen(fake).open, { metrics });
    await until(() => stream.status().handled === 1);
    const lag = await sample(metrics, 'austa_mongo_change_stream_lag_seconds', { stream: 'patients' });
    expect(lag).toBeGreaterThanOrEqual(29);
    expect(lag).toBeLessThan(120);
    fake.push({ idle: true, token: token('pbrt') });
    await until(() => stream.status().lagSeconds === 0);
    expect(await sample(metrics, 'austa_mongo_change_stream_lag_seconds', { stream: 'patients' })).toBe(0);
  });

  it('delivers an event the client-side filter cannot judge rather than skipping it', async () => {
    const fake = new FakeChangeStream([{ change: changeEvent('odd', 'update', { updateDescription: 42 }) }]);
    const { handled } = start(scriptedOpen(fake).open, {
      accept: () => {
        throw new TypeError('unexpected shape');
      },
    });
    await until(() => handled.length === 1);
    expect(handled).toEqual(['odd']);
  });

  it('counts every received event by collection and operation type, unknown types as other', async () => {
    const metrics = createMetrics();
    const fake = new FakeChangeStream([
      { change: changeEvent('t1', 'insert') },
      { change: changeEvent('t2', 'update') },
      { change: changeEvent('t3', 'somethingNew') },
    ]);
    const { stream } = start(scriptedOpen(fake).open, {
      metrics,
      accept: (change) => change.operationType !== 'update',
    });
    await until(() => stream.status().handled === 2);
    const count = (operationType: string) =>
      sample(metrics, 'mongodb_change_stream_events_total', {
        collection: 'patients',
        operation_type: operationType,
      });
    expect(await count('insert')).toBe(1);
    expect(await count('update')).toBe(1);
    expect(await count('other')).toBe(1);
  });
});

describe('ManagedStream ready()', () => {
  it('resolves once the first poll was answered', async () => {
    const fake = new FakeChangeStream([]);
    const { stream } = start(scriptedOpen(fake).open);
    let isReady = false;
    const ready = stream.ready().then(() => {
      isReady = true;
    });
    await until(() => fake.polls === 1);
    expect(isReady).toBe(false);
    fake.push({ idle: true, token: token('pbrt') });
    await ready;
    expect(stream.status().state).toBe('running');
    // Still resolved after the stream ends.
    await stream.close();
    await expect(stream.ready()).resolves.toBeUndefined();
  });

  it('rejects with the fatal error when the stream fails before it opened', async () => {
    const error = Object.assign(new Error('x'), { name: 'MongoServerError', code: 40573 });
    const { stream } = start(scriptedOpen(new FakeChangeStream([{ error }])).open);
    await expect(stream.ready()).rejects.toMatchObject({
      code: 'E_CHANGE_STREAM_FATAL',
      reason: 'standalone',
    });
  });

  it('rejects with E_CLIENT_CLOSED when closed before it opened', async () => {
    const { stream } = start(scriptedOpen(new FakeChangeStream([])).open);
    const ready = stream.ready();
    await stream.close();
    await expect(ready).rejects.toMatchObject({ code: 'E_CLIENT_CLOSED' });
  });
});

describe('ManagedStream close()', () => {
  it('ends a poll waiting on the server, closes the driver stream and leaves no timer behind', async () => {
    const before = activeTimers();
    const fake = new FakeChangeStream([]);
    const { stream } = start(scriptedOpen(fake).open);
    await until(() => fake.polls === 1);
    await stream.close();
    expect(await stream.done).toEqual({ reason: 'closed' });
    expect(fake.closeCalls).toBeGreaterThanOrEqual(1);
    expect(activeTimers()).toBeLessThanOrEqual(before);
    expect(stream.status().state).toBe('stopped');
  });

  it('cancels a restart backoff at once instead of waiting it out', async () => {
    const before = activeTimers();
    const script = scriptedOpen(
      new FakeChangeStream([{ error: Object.assign(new Error('x'), { name: 'MongoNetworkError' }) }]),
    );
    const { stream } = start(script.open, { stream: { restartDelayMs: 60_000, maxRestartDelayMs: 60_000 } });
    await until(() => stream.status().state === 'restarting');
    const started = Date.now();
    await stream.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(script.opens).toHaveLength(1);
    expect(activeTimers()).toBeLessThanOrEqual(before);
  });

  it('aborts the handler signal, waits for the running handler and saves the token of the event it finished', async () => {
    const fake = new FakeChangeStream([{ change: changeEvent('t1') }]);
    let release: () => void = () => {};
    let sawAbort = false;
    const store = recordingStore();
    const { stream } = start(scriptedOpen(fake).open, {
      store,
      handler: async (_change, context) => {
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        sawAbort = context.signal.aborted;
      },
    });
    await until(() => fake.polls === 1 && stream.status().state === 'running');
    const closing = stream.close();
    release();
    await closing;
    expect(sawAbort).toBe(true);
    expect(store.tokens.get('patients')).toEqual(token('t1'));
  });

  it('gives up on a handler that never finishes after closeTimeoutMs, and writes nothing afterwards', async () => {
    const fake = new FakeChangeStream([{ change: changeEvent('t1') }]);
    let release: () => void = () => {};
    const store = recordingStore();
    const { stream, logger } = start(scriptedOpen(fake).open, {
      store,
      handler: () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
      stream: { closeTimeoutMs: 30 },
    });
    await until(() => fake.polls === 1 && stream.status().state === 'running');
    const started = Date.now();
    await stream.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(logger.lines.some((line) => line.message.includes('still running'))).toBe(true);
    release();
    await stream.done;
    expect(store.calls.filter((call) => call.startsWith('save'))).toEqual([]);
  });

  it('does not hand an event read after close() to the handler', async () => {
    let resolvePoll: (value: Document | null) => void = () => {};
    const stream = {
      resumeToken: null as unknown,
      closed: false,
      tryNext: () =>
        new Promise<Document | null>((resolve) => {
          resolvePoll = resolve;
        }),
      close: async () => {
        // A poll already on the wire still returns its batch.
        resolvePoll(changeEvent('late'));
      },
    };
    const { stream: managed, handled, store } = start(() => stream);
    await until(() => managed.status().state === 'starting' && store.calls.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await managed.close();
    expect(handled).toEqual([]);
    expect(store.calls.filter((call) => call.startsWith('save'))).toEqual([]);
  });

  it('can be called from inside the handler without waiting on itself, and saves that event’s token', async () => {
    const fake = new FakeChangeStream([{ change: changeEvent('t1') }, { change: changeEvent('t2') }]);
    const store = recordingStore();
    const handled: string[] = [];
    let stream: ManagedStream | undefined;
    ({ stream } = start(scriptedOpen(fake).open, {
      store,
      stream: { closeTimeoutMs: 60_000 },
      handler: async (change) => {
        handled.push((change._id as { _data: string })._data);
        const started = Date.now();
        await stream?.close();
        expect(Date.now() - started).toBeLessThan(1000);
      },
    }));
    expect(await stream.done).toEqual({ reason: 'closed' });
    expect(handled).toEqual(['t1']);
    expect(store.tokens.get('patients')).toEqual(token('t1'));
  });

  it('is idempotent and resolves done once', async () => {
    const { stream } = start(scriptedOpen(new FakeChangeStream([])).open);
    await Promise.all([stream.close(), stream.close()]);
    await stream.close();
    expect(await stream.done).toEqual({ reason: 'closed' });
  });
});
