import {
  type ChangeStreamOptions,
  type ClientSession,
  type Collection,
  type Db,
  type Document,
  MongoClient,
  type TransactionOptions,
} from 'mongodb';
import {
  type ChangeHandler,
  type ChangeStreamLike,
  type ChangeStreamStatus,
  type ManagedChangeStream,
  type ManagedChangeStreamOptions,
  ManagedStream,
} from './change-stream.js';
import { CommandMetrics, type EventSource, PoolMetrics } from './driver-events.js';
import { errorType } from './error-type.js';
import { MongoArgumentError, MongoClientClosedError, MongoConfigError } from './errors.js';
import { checkHealth, type MongoHealth, type TopologyDescriptionLike } from './health.js';
import {
  collectionLabeler,
  createInstruments,
  type MongoInstruments,
  noopStreamInstruments,
} from './instruments.js';
import { consoleLogger, type Logger } from './logger.js';
import {
  assertClientOrUrl,
  type CreateMongoClientOptions,
  redactUrl,
  resolveConnection,
  resolveName,
} from './options.js';
import { Reconnector } from './reconnect.js';
import { type SanitizeFilterOptions, sanitizeFilter } from './sanitize.js';
import { createMemoryTokenStore, type ResumeTokenStore } from './token-store.js';
import {
  assertCollectionName,
  assertDatabaseName,
  assertFunction,
  assertOperationName,
  assertPipeline,
  assertStreamName,
  unknownKeys,
} from './validation.js';
import {
  type ChangeOperationType,
  fieldsWatch,
  operationsPipeline,
  type WatchFieldsOptions,
} from './watch-pipelines.js';

/** Options of `createChangeStream`: the stream options plus the handler. */
export interface CreateChangeStreamOptions<TSchema extends Document = Document>
  extends ManagedChangeStreamOptions {
  /** Handles each event; see {@link ChangeHandler}. */
  handler: ChangeHandler<TSchema>;
}

/** The client `createMongoClient` returns. */
export interface AustaMongoClient {
  /** The driver's `MongoClient`, for anything this wrapper does not cover. Its commands are measured too. */
  readonly client: MongoClient;
  /** The client name (`client` metric label, `appName`). */
  readonly name: string;
  /** Connects now instead of on the first operation, so a bad URL or password fails at startup. */
  connect(): Promise<void>;
  /**
   * Closes every managed change stream, removes this package's listeners from the driver, and closes the
   * `MongoClient` if this package created it (never one you passed in). Later calls reject with `E_CLIENT_CLOSED`.
   */
  close(): Promise<void>;
  /** The database `name`, or the default one (`dbName`, else the URL's). */
  db(name?: string): Db;
  /**
   * A collection of the default database (or `dbName`). With the `sanitizeFilters` option, its filter arguments
   * are checked by `sanitizeFilter`.
   */
  collection<TSchema extends Document = Document>(
    name: string,
    options?: { dbName?: string },
  ): Collection<TSchema>;
  /** `hello` plus topology and change-stream status; never throws. Default `timeoutMs` 2000. */
  health(options?: { timeoutMs?: number }): Promise<MongoHealth>;
  /**
   * Times `fn` as one application operation in `austa_mongo_operation_duration_seconds{operation,
   * db_collection_name, error_type}` (the commands it sends are measured on their own as well) and returns its
   * result. `operation` is a fixed word such as `findPatientByEmail`.
   */
  executeWithMetrics<T>(
    collection: string,
    operation: string,
    fn: (collection: Collection) => Promise<T>,
  ): Promise<T>;
  /** A managed change stream on a collection, with your own pipeline stages after `$changeStream`. */
  createChangeStream<TSchema extends Document = Document>(
    collectionName: string,
    pipeline: Document[],
    options: CreateChangeStreamOptions<TSchema>,
  ): ManagedChangeStream;
  /** A managed change stream of the given operation types, filtered on the server with `$match`. */
  watchOperations<TSchema extends Document = Document>(
    collectionName: string,
    operations: readonly ChangeOperationType[],
    handler: ChangeHandler<TSchema>,
    options?: ManagedChangeStreamOptions,
  ): ManagedChangeStream;
  /**
   * A managed change stream of updates that touch any of `fields`, or a path under or above one
   * (`address` fires for `address.city`; `items.price` fires for `items.3.price`), plus inserts and replacements
   * when asked.
   */
  watchFields<TSchema extends Document = Document>(
    collectionName: string,
    fields: readonly string[],
    handler: ChangeHandler<TSchema>,
    options?: ManagedChangeStreamOptions & WatchFieldsOptions,
  ): ManagedChangeStream;
  /**
   * Runs `fn` in a transaction with the driver's `withTransaction` (retries on transient errors, commit retries),
   * on a session that is always ended. Pass `session` to every operation inside `fn`. Resolves with `fn`'s result.
   */
  withTransaction<T>(fn: (session: ClientSession) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** Status of every managed change stream that is open or has failed. */
  changeStreams(): ChangeStreamStatus[];
}

// Methods whose argument at this index is a query filter.
const FILTER_ARGUMENT: Readonly<Record<string, number>> = {
  find: 0,
  findOne: 0,
  countDocuments: 0,
  distinct: 1,
  updateOne: 0,
  updateMany: 0,
  replaceOne: 0,
  deleteOne: 0,
  deleteMany: 0,
  findOneAndUpdate: 0,
  findOneAndReplace: 0,
  findOneAndDelete: 0,
};

function guardFilters<TSchema extends Document>(
  collection: Collection<TSchema>,
  rules: SanitizeFilterOptions,
): Collection<TSchema> {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(collection, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      const index = typeof property === 'string' ? FILTER_ARGUMENT[property] : undefined;
      if (index === undefined || typeof value !== 'function') return value;
      let guarded = wrapped.get(property);
      if (guarded === undefined) {
        // find() returns a cursor, so it throws; the other methods return promises, so they reject.
        const returnsCursor = property === 'find';
        guarded = (...args: unknown[]) => {
          try {
            sanitizeFilter(args[index] ?? {}, rules);
          } catch (error) {
            if (returnsCursor) throw error;
            return Promise.reject(error);
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
        wrapped.set(property, guarded);
      }
      return guarded;
    },
  });
}

function assertTokenStore(store: unknown, what: string): asserts store is ResumeTokenStore {
  const candidate = store as Partial<ResumeTokenStore> | null;
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    typeof candidate.load !== 'function' ||
    typeof candidate.save !== 'function' ||
    typeof candidate.delete !== 'function'
  ) {
    throw new MongoArgumentError(`${what} must have load(), save() and delete() (a ResumeTokenStore).`);
  }
}

const STREAM_OPTION_KEYS: ReadonlySet<string> = new Set([
  'name',
  'dbName',
  'tokenStore',
  'onInvalidate',
  'maxHandlerAttempts',
  'handlerRetryDelayMs',
  'deadLetter',
  'restartDelayMs',
  'maxRestartDelayMs',
  'idleCheckpointIntervalMs',
  'closeTimeoutMs',
  'tokenStoreTimeoutMs',
  'fullDocument',
  'fullDocumentBeforeChange',
  'maxAwaitTimeMs',
  'batchSize',
  'showExpandedEvents',
  'startAtOperationTime',
] satisfies Array<keyof ManagedChangeStreamOptions>);

function assertStreamOptions(options: ManagedChangeStreamOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new MongoArgumentError('Change stream options must be an object.');
  }
  const unknown = unknownKeys(options, STREAM_OPTION_KEYS);
  if (unknown.length > 0) {
    throw new MongoArgumentError(`Unknown change stream option ${unknown.join(', ')}.`);
  }
  const integers: Array<[keyof ManagedChangeStreamOptions, number]> = [
    ['maxHandlerAttempts', 1],
    ['handlerRetryDelayMs', 0],
    ['restartDelayMs', 1],
    ['maxRestartDelayMs', 1],
    ['idleCheckpointIntervalMs', 0],
    ['closeTimeoutMs', 0],
    ['tokenStoreTimeoutMs', 1],
    ['maxAwaitTimeMs', 1],
    ['batchSize', 1],
  ];
  for (const [key, minimum] of integers) {
    const value = options[key];
    if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < minimum)) {
      throw new MongoArgumentError(
        `${key} must be an integer of at least ${minimum} (got ${String(value)}).`,
      );
    }
  }
  if (
    options.onInvalidate !== undefined &&
    options.onInvalidate !== 'stop' &&
    options.onInvalidate !== 'restart'
  ) {
    throw new MongoArgumentError(
      `onInvalidate must be "stop" or "restart" (got ${String(options.onInvalidate)}).`,
    );
  }
  // The server would refuse these only once the stream opens, as a fatal error far from the call that caused it.
  const choices: Array<[keyof ManagedChangeStreamOptions, readonly string[]]> = [
    ['fullDocument', ['default', 'updateLookup', 'whenAvailable', 'required']],
    ['fullDocumentBeforeChange', ['off', 'whenAvailable', 'required']],
  ];
  for (const [key, allowed] of choices) {
    const value = options[key];
    if (value !== undefined && !allowed.includes(value as string)) {
      throw new MongoArgumentError(`${key} must be one of ${allowed.join(', ')} (got ${String(value)}).`);
    }
  }
  if (options.showExpandedEvents !== undefined && typeof options.showExpandedEvents !== 'boolean') {
    throw new MongoArgumentError('showExpandedEvents must be true or false.');
  }
  const startAt = options.startAtOperationTime as { _bsontype?: unknown } | undefined;
  if (startAt !== undefined && (typeof startAt !== 'object' || startAt?._bsontype !== 'Timestamp')) {
    throw new MongoArgumentError(
      'startAtOperationTime must be a BSON Timestamp (from an operationTime or clusterTime), not a number or Date.',
    );
  }
  if (options.deadLetter !== undefined) assertFunction(options.deadLetter, 'deadLetter callback');
  if (options.tokenStore !== undefined) assertTokenStore(options.tokenStore, 'tokenStore');
  if (options.dbName !== undefined) assertDatabaseName(options.dbName);
  if (options.name !== undefined) assertStreamName(options.name);
}

function driverWatchOptions(
  options: ManagedChangeStreamOptions,
  showExpandedEvents: boolean,
): ChangeStreamOptions {
  const watch: ChangeStreamOptions = {};
  if (options.fullDocument !== undefined) watch.fullDocument = options.fullDocument;
  if (options.fullDocumentBeforeChange !== undefined)
    watch.fullDocumentBeforeChange = options.fullDocumentBeforeChange;
  if (options.maxAwaitTimeMs !== undefined) watch.maxAwaitTimeMS = options.maxAwaitTimeMs;
  if (options.batchSize !== undefined) watch.batchSize = options.batchSize;
  if (options.showExpandedEvents || showExpandedEvents) watch.showExpandedEvents = true;
  return watch;
}

// Reconnecting a client that never connected: soon at first (a database starting next to the service), then
// every 30 s at most, as for change streams.
const RECONNECT_INITIAL_DELAY_MS = 500;
const RECONNECT_MAX_DELAY_MS = 30_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Runs checks shared with method arguments, reporting a failure as the factory's `E_INVALID_CONFIG`. */
function asConfigError(check: () => void): void {
  try {
    check();
  } catch (cause) {
    throw new MongoConfigError((cause as Error).message, { cause });
  }
}

/**
 * Creates an instrumented MongoDB client. Nothing connects until `connect()` or the first operation.
 * @example
 * const mongo = createMongoClient({ url: process.env.MONGODB_URL, metrics });
 * await mongo.collection('patients').insertOne({ name: 'Ada' });
 */
export function createMongoClient(options: CreateMongoClientOptions): AustaMongoClient {
  assertClientOrUrl(options);
  const name = resolveName(options.name);
  const metrics = options.metrics;
  const logger: Logger = options.logger ?? consoleLogger;
  if (typeof logger?.warn !== 'function' || typeof logger.error !== 'function') {
    throw new MongoConfigError(
      'logger must have warn(message, details) and error(message, details) methods.',
    );
  }
  if (
    options.sanitizeFilters !== undefined &&
    typeof options.sanitizeFilters !== 'boolean' &&
    (typeof options.sanitizeFilters !== 'object' || options.sanitizeFilters === null)
  ) {
    throw new MongoConfigError('sanitizeFilters must be true, false or { allowOperators, maxDepth }.');
  }
  asConfigError(() => {
    if (options.dbName !== undefined) assertDatabaseName(options.dbName);
    if (options.tokenStore !== undefined) assertTokenStore(options.tokenStore, 'tokenStore');
  });
  const collectionLabels = options.collectionLabels ?? true;
  if (
    typeof collectionLabels !== 'boolean' &&
    (!Array.isArray(collectionLabels) || collectionLabels.some((entry) => typeof entry !== 'string'))
  ) {
    throw new MongoConfigError('collectionLabels must be true, false or an array of collection names.');
  }
  const sanitizeRules: SanitizeFilterOptions | undefined =
    options.sanitizeFilters === true
      ? {}
      : typeof options.sanitizeFilters === 'object' && options.sanitizeFilters !== null
        ? options.sanitizeFilters
        : undefined;
  if (sanitizeRules) asConfigError(() => sanitizeFilter({}, sanitizeRules)); // checks allowOperators, maxDepth

  let client: MongoClient;
  const owns = options.client === undefined;
  if (options.client !== undefined) {
    client = options.client;
    const monitoring =
      (client as unknown as { monitorCommands?: boolean }).monitorCommands ?? client.options?.monitorCommands;
    if (metrics !== undefined && monitoring !== true) {
      throw new MongoConfigError(
        'With metrics, build your MongoClient with { monitorCommands: true }: command metrics come from its command events. Or pass { url } and let createMongoClient build it.',
      );
    }
  } else {
    const connection = resolveConnection(options, name, metrics !== undefined);
    try {
      client = new MongoClient(connection.url, connection.driverOptions);
    } catch (cause) {
      const detail = cause instanceof Error ? redactUrl(cause.message) : 'unknown error';
      throw new MongoConfigError(`The MongoDB driver rejected the connection options: ${detail}`, { cause });
    }
  }

  const source = client as unknown as EventSource;
  const instruments: MongoInstruments | undefined = metrics
    ? createInstruments(metrics, { client: name, collectionLabel: collectionLabeler(collectionLabels) })
    : undefined;
  const detach: Array<() => void> = [];
  if (instruments) {
    detach.push(new CommandMetrics(instruments).attach(source));
    detach.push(new PoolMetrics(instruments).attach(source));
  }
  let topology: TopologyDescriptionLike | undefined;
  const onTopology = (event: { newDescription?: TopologyDescriptionLike }) => {
    topology = event.newDescription;
  };
  source.on('topologyDescriptionChanged', onTopology);
  detach.push(() => source.off('topologyDescriptionChanged', onTopology));

  // Only for clients created here: reopening a client you built and closed would override your decision.
  const reconnector = owns
    ? new Reconnector({
        connect: () => client.connect(),
        closeAgain: () => client.close(),
        logger,
        client: name,
        initialDelayMs: RECONNECT_INITIAL_DELAY_MS,
        maxDelayMs: RECONNECT_MAX_DELAY_MS,
        ...(instruments ? { onAttempt: (ok: boolean) => instruments.connectAttempt(ok) } : {}),
      })
    : undefined;
  if (reconnector) {
    // Only a client that never connected needs this: once connected, the driver never closes its topology by
    // itself, so a close after that was asked for (`mongo.client.close()`), and reopening it would keep the
    // process alive against its owner's will.
    let opened = false;
    const onOpen = () => {
      opened = true;
    };
    const onTopologyClosed = () => {
      if (!closed && !opened) reconnector.trigger();
    };
    source.on('open', onOpen);
    source.on('topologyClosed', onTopologyClosed);
    detach.push(() => {
      source.off('open', onOpen);
      source.off('topologyClosed', onTopologyClosed);
    });
  }

  const streams = new Map<string, ManagedStream>();
  // One default store per client: a stream closed and created again under the same name resumes where it was.
  const defaultTokenStore = options.tokenStore ?? createMemoryTokenStore();
  let closed = false;
  let closePromise: Promise<void> | undefined;

  const assertOpen = () => {
    if (closed) throw new MongoClientClosedError();
  };
  const database = (dbName?: string): Db => {
    if (dbName !== undefined) assertDatabaseName(dbName);
    return client.db(dbName ?? options.dbName);
  };
  const collectionOf = <TSchema extends Document>(
    collectionName: string,
    dbName?: string,
  ): Collection<TSchema> => {
    assertCollectionName(collectionName);
    return database(dbName).collection<TSchema>(collectionName);
  };

  function startStream(
    collectionName: string,
    pipeline: Document[],
    handler: ChangeHandler,
    streamOptions: ManagedChangeStreamOptions,
    extra: { showExpandedEvents?: boolean; accept?: (change: Document) => boolean } = {},
  ): ManagedChangeStream {
    assertOpen();
    assertCollectionName(collectionName);
    assertFunction(handler, 'change handler');
    assertStreamOptions(streamOptions);
    const streamName = streamOptions.name ?? collectionName;
    assertStreamName(streamName);
    if (streams.has(streamName)) {
      throw new MongoArgumentError(
        `A change stream named "${streamName}" is already running on this client; give each stream its own name option.`,
      );
    }
    const target = collectionOf(collectionName, streamOptions.dbName);
    const watchOptions = driverWatchOptions(streamOptions, extra.showExpandedEvents ?? false);
    const stream = new ManagedStream({
      name: streamName,
      collection: collectionName,
      open: (start) => target.watch(pipeline, { ...watchOptions, ...start }) as unknown as ChangeStreamLike,
      tokenStore: streamOptions.tokenStore ?? defaultTokenStore,
      handler,
      ...(extra.accept ? { accept: extra.accept } : {}),
      instruments: instruments ? instruments.stream(streamName, collectionName) : noopStreamInstruments(),
      logger,
      options: streamOptions,
      onEnd: (end) => {
        if (end.reason === 'closed' && streams.get(streamName) === stream) streams.delete(streamName);
      },
      onClose: () => {
        if (streams.get(streamName) === stream) streams.delete(streamName);
      },
    });
    streams.set(streamName, stream);
    return stream;
  }

  const wrapper: AustaMongoClient = {
    client,
    name,
    async connect() {
      assertOpen();
      await client.connect();
    },
    close() {
      closePromise ??= (async () => {
        closed = true;
        try {
          await Promise.all([...streams.values()].map((stream) => stream.close()));
          streams.clear();
          const stopping = reconnector?.stop();
          try {
            if (owns) await client.close();
          } finally {
            // A connect attempt in flight fails once the client is closed (or closes it again if it won the race).
            await stopping;
          }
        } finally {
          // Even when the driver fails to close, this package's listeners and pool gauges must go: a closed
          // wrapper that keeps observing would report a client nobody uses any more.
          for (const stop of detach.splice(0)) stop();
        }
      })();
      return closePromise;
    },
    db(dbName) {
      assertOpen();
      return database(dbName);
    },
    collection<TSchema extends Document = Document>(
      collectionName: string,
      collectionOptions?: { dbName?: string },
    ) {
      assertOpen();
      const collection = collectionOf<TSchema>(collectionName, collectionOptions?.dbName);
      return sanitizeRules ? guardFilters(collection, sanitizeRules) : collection;
    },
    health(healthOptions) {
      // Never throws, whatever it is given: a health endpoint that crashes is worse than one that says why.
      const timeoutMs =
        typeof healthOptions === 'object' && healthOptions !== null
          ? (healthOptions.timeoutMs ?? 2000)
          : 2000;
      const statuses = [...streams.values()].map((stream) => stream.status());
      // Past 2^31 - 1 ms, setTimeout fires at once: a huge timeout would report every server as not answering.
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMER_MS) {
        return Promise.resolve({
          healthy: false,
          ping: { ok: false, durationMs: null },
          topology: { type: topology?.type ?? 'Unknown', setName: topology?.setName ?? null, servers: [] },
          primary: null,
          changeStreams: statuses,
          problems: [
            `health() timeoutMs must be a positive integer up to ${MAX_TIMER_MS} (got ${String(timeoutMs)})`,
          ],
          checkedAt: Date.now(),
        });
      }
      return checkHealth({ client, closed, topology, changeStreams: statuses, timeoutMs });
    },
    async executeWithMetrics(collectionName, operation, fn) {
      assertOpen();
      assertCollectionName(collectionName);
      assertOperationName(operation);
      assertFunction(fn, 'operation function');
      const collection = wrapper.collection(collectionName);
      if (instruments === undefined) return fn(collection);
      const started = performance.now();
      try {
        const result = await fn(collection);
        instruments.operation(operation, collectionName, '', (performance.now() - started) / 1000);
        return result;
      } catch (error) {
        instruments.operation(
          operation,
          collectionName,
          errorType(error),
          (performance.now() - started) / 1000,
        );
        throw error;
      }
    },
    createChangeStream(collectionName, pipeline, streamOptions) {
      assertPipeline(pipeline);
      if (typeof streamOptions !== 'object' || streamOptions === null) {
        throw new MongoArgumentError(
          'createChangeStream needs options with a handler: { handler: async (change) => {…} }.',
        );
      }
      const { handler, ...rest } = streamOptions;
      return startStream(collectionName, pipeline, handler as ChangeHandler, rest);
    },
    watchOperations(collectionName, operations, handler, streamOptions = {}) {
      const { pipeline, showExpandedEvents } = operationsPipeline(operations);
      return startStream(collectionName, pipeline, handler as ChangeHandler, streamOptions, {
        showExpandedEvents,
      });
    },
    watchFields(collectionName, fields, handler, streamOptions = {}) {
      if (typeof streamOptions !== 'object' || streamOptions === null) {
        throw new MongoArgumentError(
          'watchFields options must be an object such as { includeInserts: true }.',
        );
      }
      const { includeInserts, includeReplaces, ...rest } = streamOptions;
      for (const [key, value] of [
        ['includeInserts', includeInserts],
        ['includeReplaces', includeReplaces],
      ] as const) {
        if (value !== undefined && typeof value !== 'boolean') {
          throw new MongoArgumentError(`${key} must be true or false (got ${typeof value}).`);
        }
      }
      const watch = fieldsWatch(fields, {
        ...(includeInserts === undefined ? {} : { includeInserts }),
        ...(includeReplaces === undefined ? {} : { includeReplaces }),
      });
      return startStream(collectionName, watch.pipeline, handler as ChangeHandler, rest, {
        accept: watch.accept,
      });
    },
    async withTransaction(fn, transactionOptions) {
      assertOpen();
      assertFunction(fn, 'transaction function');
      const session = client.startSession();
      let attempts = 0;
      try {
        // The driver reruns the callback after a TransientTransactionError and retries the commit alone after
        // UnknownTransactionCommitResult; each rerun is counted, so retry storms show on a dashboard.
        const result = await session.withTransaction(async () => {
          attempts++;
          if (attempts > 1) instruments?.transactionRetry();
          return fn(session);
        }, transactionOptions);
        // A callback that aborts the transaction itself resolves without committing. `transaction` is not in the
        // driver's public types, so it is read defensively: when absent, a resolved call counts as committed.
        const state = (session as unknown as { transaction?: { isCommitted?: boolean } }).transaction;
        instruments?.transaction(state?.isCommitted === false ? 'aborted' : 'committed');
        return result;
      } catch (error) {
        instruments?.transaction('aborted');
        throw error;
      } finally {
        // The outcome is decided by now: a session that fails to end must not turn a commit into an error (a
        // caller retrying it would write twice) nor hide the callback's own error.
        try {
          await session.endSession();
        } catch (error) {
          logger.warn('withTransaction could not end the session; the transaction outcome stands.', {
            client: name,
            errorType: errorType(error),
          });
        }
      }
    },
    changeStreams() {
      return [...streams.values()].map((stream) => stream.status());
    },
  };
  return wrapper;
}
