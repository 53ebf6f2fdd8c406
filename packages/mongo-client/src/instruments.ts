import type { BoundCounter, BoundGauge, BoundHistogram, Counter, Gauge, Metrics } from '@austa/metrics';
import { CHANGE_EVENT_TYPES } from './watch-pipelines.js';

/**
 * Which collection names may appear in metric labels: `true` (all, the default), `false` (none: the label is
 * empty), or an allowlist whose other names are reported as `other`. Use the allowlist when collection names carry
 * tenant or user ids (`notes_<patientId>`): labels must never hold identifiers.
 */
export type CollectionLabels = boolean | readonly string[];

/** Maps a collection name to its label value under the `collectionLabels` option. */
export function collectionLabeler(policy: CollectionLabels): (collection: string) => string {
  if (policy === true) return (collection) => collection;
  if (policy === false) return () => '';
  const allowed = new Set(policy);
  return (collection) => (collection === '' || allowed.has(collection) ? collection : 'other');
}

/**
 * Past this many collections per operation, new collection names share one `other` entry. The registry's
 * cardinality guard already folds their series; this keeps the lookup cache itself from growing with every
 * collection a multi-tenant schema creates.
 */
const MAX_CACHED_COLLECTIONS = 1000;
const OTHER = 'other';

/** Keeps one value per pair of label values, found through nested maps with no string building. */
class SeriesCache<T> {
  private readonly root = new Map<string, Map<string, T>>();

  constructor(private readonly create: (a: string, b: string) => T) {}

  get(a: string, b: string): T {
    let level = this.root.get(a);
    if (level === undefined) {
      level = new Map();
      this.root.set(a, level);
    }
    let value = level.get(b);
    if (value === undefined) {
      const key = level.size >= MAX_CACHED_COLLECTIONS ? OTHER : b;
      value = level.get(key) ?? this.create(a, key);
      level.set(key, value);
    }
    return value;
  }
}

interface CommandSeries {
  ok: BoundHistogram;
  errors: Map<string, BoundHistogram>;
  bind(errorType: string): BoundHistogram;
}

/** Why a connection checkout failed, as the driver reports it, mapped to label values. */
const CHECKOUT_FAILURE_REASONS: Readonly<Record<string, string>> = {
  poolClosed: 'pool_closed',
  timeout: 'timeout',
  connectionError: 'connection_error',
};

/** Instruments of one change stream, bound once when the stream is created. */
export interface StreamInstruments {
  event(operationType: string): void;
  error(kind: 'resumable' | 'non_resumable' | 'fatal'): void;
  restart(): void;
  lag(seconds: number): void;
  /**
   * Reads the lag at scrape time while the stream runs, so a stream stuck on an event shows a lag that grows
   * instead of the value it had when the event arrived. Returns the function that stops reading.
   */
  watchLag(read: () => number | null): () => void;
  handlerFailure(): void;
  deadLetter(): void;
  tokenSaveFailure(): void;
}

const NOOP_STREAM: StreamInstruments = Object.freeze({
  event() {},
  error() {},
  restart() {},
  lag() {},
  watchLag: () => () => {},
  handlerFailure() {},
  deadLetter() {},
  tokenSaveFailure() {},
});

/** One connection pool's counts, read at scrape time. */
export interface PoolSnapshot {
  serverAddress: string;
  idle: number;
  used: number;
}

/** The package's instruments on the caller's registry. Built once per client. */
export interface MongoInstruments {
  /** One finished command, not a change-stream poll. `operation` is the driver's command name. */
  command(operation: string, collection: string, errorType: string, seconds: number): void;
  /** One `getMore` of a change-stream cursor, kept apart from operation latencies. */
  changeStreamPoll(collection: string, errorType: string, seconds: number): void;
  /** One `executeWithMetrics` call. */
  operation(operation: string, collection: string, errorType: string, seconds: number): void;
  poolWait(seconds: number): void;
  checkoutFailure(reason: string): void;
  poolCleared(): void;
  transaction(result: 'committed' | 'aborted'): void;
  /** The driver ran a transaction's callback again (after a TransientTransactionError). */
  transactionRetry(): void;
  /** One background reconnect attempt of a client whose connection attempts failed. */
  connectAttempt(ok: boolean): void;
  stream(name: string, collection: string): StreamInstruments;
  /** Reports pool counts at scrape time; returns the function that stops it. */
  onCollectPool(collect: () => PoolSnapshot[]): () => void;
}

export interface InstrumentOptions {
  /** The client's name, the `client` label of pool metrics so two clients on one registry stay apart. */
  client: string;
  collectionLabel: (collection: string) => string;
}

const SYSTEM = 'mongodb';

export function createInstruments(metrics: Metrics, options: InstrumentOptions): MongoInstruments {
  const mongo = metrics.packageInstruments('mongo');
  const label = options.collectionLabel;
  const shared = metrics.operationDuration();
  const buckets = shared.buckets;

  const polls = mongo.histogram({
    name: 'change_stream_poll_duration_seconds',
    help: 'Duration of getMore polls of change-stream cursors, in seconds; mostly the server waiting maxAwaitTimeMS for new events.',
    labelNames: ['db_collection_name', 'error_type'],
    buckets,
  });
  const operations = mongo.histogram({
    name: 'operation_duration_seconds',
    help: 'Duration of application operations timed with executeWithMetrics, in seconds; one may span several commands.',
    labelNames: ['operation', 'db_collection_name', 'error_type'],
    buckets,
  });
  const poolWait = mongo
    .histogram({
      name: 'pool_wait_seconds',
      help: 'Time spent waiting to check a connection out of the pool, in seconds, successful or not.',
      labelNames: ['client'],
      buckets,
    })
    .bind({ client: options.client });
  const checkoutFailures = mongo.counter({
    name: 'pool_checkout_failures_total',
    help: 'Connection checkouts that failed, by reason (timeout, connection_error, pool_closed).',
    labelNames: ['client', 'reason'],
  });
  const poolClears = mongo
    .counter({
      name: 'pool_clears_total',
      help: 'Connection pools cleared after a network error or a server state change.',
      labelNames: ['client'],
    })
    .bind({ client: options.client });
  const connections = mongo.gauge({
    name: 'pool_connections',
    help: 'Pooled connections by server and state (idle, used), read at scrape time.',
    labelNames: ['client', 'server_address', 'state'],
  });
  const transactions = mongo.counter({
    name: 'transactions_total',
    help: 'Transactions run with withTransaction, by result (committed, aborted).',
    labelNames: ['result'],
  });
  const transactionRetries = mongo
    .counter({
      name: 'transaction_retries_total',
      help: 'Transaction callbacks run again by withTransaction after a TransientTransactionError.',
    })
    .bind();
  const connectAttempts = mongo.counter({
    name: 'reconnect_attempts_total',
    help: 'Background connect attempts of a client whose earlier connection attempts failed, by result (ok, failed).',
    labelNames: ['client', 'result'],
  });
  const events = metrics.counter({
    name: 'mongodb_change_stream_events_total',
    help: 'Change stream events received, by collection and operation type.',
    labelNames: ['collection', 'operation_type'],
  });
  const streamErrors = mongo.counter({
    name: 'change_stream_errors_total',
    help: 'Change stream errors by kind: resumable (the driver gave up resuming), non_resumable, fatal (the stream stopped).',
    labelNames: ['stream', 'kind'],
  });
  // Per-stream counters share one shape: a count labelled by stream name.
  const streamCounter = (name: string, help: string) => mongo.counter({ name, help, labelNames: ['stream'] });
  const restarts = streamCounter(
    'change_stream_restarts_total',
    'Change streams reopened by this package from the last handled resume token.',
  );
  const lag = mongo.gauge({
    name: 'change_stream_lag_seconds',
    help: 'Now minus the wallTime of the change event being handled, growing while its handler runs or retries; after that, the value when it was handled; 0 when idle and caught up. In seconds.',
    labelNames: ['stream'],
  });
  const handlerFailures = streamCounter(
    'change_stream_handler_failures_total',
    'Change stream handler calls that threw or rejected (each attempt counts).',
  );
  const deadLetters = streamCounter(
    'change_stream_dead_letters_total',
    'Change events handed to the dead-letter callback after the handler kept failing.',
  );
  const tokenSaveFailures = streamCounter(
    'change_stream_token_save_failures_total',
    'Resume tokens the token store failed to save (the stream goes on; a restart replays more events).',
  );

  // One node per (operation, collection) holds the success series, so the usual call is two map lookups and one
  // observation; error series hang off the node on first use.
  const commandSeries = new SeriesCache<CommandSeries>((operation, collection) => {
    const bind = (errorType: string): BoundHistogram =>
      shared.bind({
        db_system_name: SYSTEM,
        db_operation_name: operation.toLowerCase(),
        db_collection_name: label(collection),
        error_type: errorType,
      });
    return { ok: bind(''), errors: new Map(), bind };
  });
  const pollSeries = new SeriesCache<BoundHistogram>((collection, errorType) =>
    polls.bind({ db_collection_name: label(collection), error_type: errorType }),
  );
  // executeWithMetrics runs at request rate, not per command: the convenience lookup is fast enough.
  const operationSeries = (operation: string, collection: string, errorType: string) =>
    operations.bind({ operation, db_collection_name: label(collection), error_type: errorType });
  const failureSeries = new Map<string, BoundCounter>();
  const transactionSeries = {
    committed: transactions.bind({ result: 'committed' }),
    aborted: transactions.bind({ result: 'aborted' }),
  };

  return {
    command(operation, collection, errorType, seconds) {
      const series = commandSeries.get(operation, collection);
      if (errorType === '') {
        series.ok.observe(seconds);
        return;
      }
      let failed = series.errors.get(errorType);
      if (failed === undefined) {
        failed = series.bind(errorType);
        series.errors.set(errorType, failed);
      }
      failed.observe(seconds);
    },
    changeStreamPoll(collection, errorType, seconds) {
      pollSeries.get(collection, errorType).observe(seconds);
    },
    operation(operation, collection, errorType, seconds) {
      operationSeries(operation, collection, errorType).observe(seconds);
    },
    poolWait(seconds) {
      poolWait.observe(seconds);
    },
    checkoutFailure(reason) {
      let series = failureSeries.get(reason);
      if (series === undefined) {
        series = checkoutFailures.bind({
          client: options.client,
          reason: CHECKOUT_FAILURE_REASONS[reason] ?? 'other',
        });
        failureSeries.set(reason, series);
      }
      series.inc();
    },
    poolCleared() {
      poolClears.inc();
    },
    transaction(result) {
      transactionSeries[result].inc();
    },
    transactionRetry() {
      transactionRetries.inc();
    },
    connectAttempt(ok) {
      connectAttempts.inc({ client: options.client, result: ok ? 'ok' : 'failed' });
    },
    stream(name, collection) {
      // A stream that was not named takes its collection's name: the label must then follow the collection label
      // policy, or an allowlist that hides `notes_<patientId>` would leak it through the `stream` label.
      const collectionLabel = label(collection);
      return streamInstruments(name === collection ? collectionLabel : name, collectionLabel, {
        events,
        streamErrors,
        restarts,
        lag,
        handlerFailures,
        deadLetters,
        tokenSaveFailures,
      });
    },
    onCollectPool(collect) {
      return connections.onCollect((set) => {
        for (const pool of collect()) {
          set({ client: options.client, server_address: pool.serverAddress, state: 'idle' }, pool.idle);
          set({ client: options.client, server_address: pool.serverAddress, state: 'used' }, pool.used);
        }
      });
    },
  };
}

interface StreamMetricFamilies {
  events: Counter<'collection' | 'operation_type'>;
  streamErrors: Counter<'stream' | 'kind'>;
  restarts: Counter<'stream'>;
  lag: Gauge<'stream'>;
  handlerFailures: Counter<'stream'>;
  deadLetters: Counter<'stream'>;
  tokenSaveFailures: Counter<'stream'>;
}

function streamInstruments(
  stream: string,
  collection: string,
  families: StreamMetricFamilies,
): StreamInstruments {
  const eventSeries = new Map<string, BoundCounter>();
  const errorSeries = {
    resumable: families.streamErrors.bind({ stream, kind: 'resumable' }),
    non_resumable: families.streamErrors.bind({ stream, kind: 'non_resumable' }),
    fatal: families.streamErrors.bind({ stream, kind: 'fatal' }),
  };
  const restarts = families.restarts.bind({ stream });
  const lag: BoundGauge = families.lag.bind({ stream });
  const handlerFailures = families.handlerFailures.bind({ stream });
  const deadLetters = families.deadLetters.bind({ stream });
  const tokenSaveFailures = families.tokenSaveFailures.bind({ stream });
  return {
    event(operationType) {
      // Types outside the specification's list count as `other`: a server upgrade cannot grow the label set.
      const known = CHANGE_EVENT_TYPES.has(operationType) ? operationType : 'other';
      let series = eventSeries.get(known);
      if (series === undefined) {
        series = families.events.bind({ collection, operation_type: known });
        eventSeries.set(known, series);
      }
      series.inc();
    },
    error: (kind) => errorSeries[kind].inc(),
    restart: () => restarts.inc(),
    lag: (seconds) => lag.set(seconds),
    watchLag(read) {
      return families.lag.onCollect((set) => {
        const seconds = read();
        if (seconds !== null) set({ stream }, seconds);
      });
    },
    handlerFailure: () => handlerFailures.inc(),
    deadLetter: () => deadLetters.inc(),
    tokenSaveFailure: () => tokenSaveFailures.inc(),
  };
}

/** Stream instruments that record nothing, for clients built without `metrics`. */
export const noopStreamInstruments = (): StreamInstruments => NOOP_STREAM;
