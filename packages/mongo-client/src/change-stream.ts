import { AsyncLocalStorage } from 'node:async_hooks';
import type { ChangeStreamDocument, Document, ResumeToken, Timestamp } from 'mongodb';
import { FATAL_ADVICE, fatalReason, isResumableChangeStreamError } from './change-stream-errors.js';
import { backoffMs, delay } from './delay.js';
import { errorType } from './error-type.js';
import { FatalChangeStreamError, MongoClientClosedError, TokenStoreError } from './errors.js';
import type { StreamInstruments } from './instruments.js';
import type { Logger } from './logger.js';
import { type ResumeTokenStore, tokenKey } from './token-store.js';

/** What the handler gets besides the event. */
export interface ChangeHandlerContext {
  /** The stream's name (its token-store key). */
  stream: string;
  /** 1 on the first call for this event, 2 on the first retry… */
  attempt: number;
  /** Aborted when `close()` is called: stop long work early. The event is then delivered again after a restart. */
  signal: AbortSignal;
}

/**
 * Handles one change event. The stream waits for it before reading the next event, and saves the event's resume
 * token only after it resolves. Throwing (or rejecting) makes the stream retry the event; it never kills the stream.
 */
export type ChangeHandler<TSchema extends Document = Document> = (
  change: ChangeStreamDocument<TSchema>,
  context: ChangeHandlerContext,
) => void | Promise<void>;

/**
 * Receives an event the handler failed `maxHandlerAttempts` times in a row, with the last error. When it resolves,
 * the event counts as handled and the stream moves on; when it throws, the stream keeps the event and tries the
 * whole cycle again later.
 */
export type DeadLetterHandler<TSchema extends Document = Document> = (
  change: ChangeStreamDocument<TSchema>,
  error: unknown,
  context: { stream: string; attempts: number },
) => void | Promise<void>;

/** What happens when the watched collection is dropped or renamed (an `invalidate` event). */
export type InvalidatePolicy = 'stop' | 'restart';

/** Options of a managed change stream (`createChangeStream`, `watchOperations`, `watchFields`). */
export interface ManagedChangeStreamOptions {
  /**
   * The stream's name: the key of its resume token in the token store and the `stream` metric label. Keep it
   * stable across deploys, and unique per client. Default: the collection name.
   */
  name?: string;
  /** Database of the collection. Default: the client's `dbName`. */
  dbName?: string;
  /** Where resume tokens are kept. Default: the client's `tokenStore`, else in memory (lost when the process exits). */
  tokenStore?: ResumeTokenStore;
  /**
   * `stop` (default): after a drop or rename the stream ends, `done` resolves with `{ reason: 'invalidated' }`, and
   * the invalidating event's token is not saved, so a restarted process stops at the same place until you delete
   * the token. A collection dropped under a live consumer is usually a migration or a mistake; carrying on with
   * whatever collection appears next under that name could feed the handler a different schema.
   * `restart`: reopen with `startAfter` the invalidate event and go on with the collection's next incarnation.
   */
  onInvalidate?: InvalidatePolicy;
  /** Handler calls per event before it goes to `deadLetter`. Default 3. */
  maxHandlerAttempts?: number;
  /** Wait before the first retry of a failed handler, in milliseconds; doubles per retry. Default 200. */
  handlerRetryDelayMs?: number;
  /**
   * Where an event goes after `maxHandlerAttempts` failures. Without it the stream keeps retrying that event (with
   * backoff up to `maxRestartDelayMs`) and never skips it: the token is never advanced past an unhandled event.
   */
  deadLetter?: DeadLetterHandler;
  /** First wait before reopening a stream the driver gave up on, in milliseconds; doubles per failure. Default 500. */
  restartDelayMs?: number;
  /** Longest wait between reopen attempts, in milliseconds. Default 30000. */
  maxRestartDelayMs?: number;
  /**
   * While no event is handled (idle, or events filtered out), the newest resume token is saved at most this often,
   * in milliseconds, so a restart does not rescan an hour of oplog. Default 10000.
   */
  idleCheckpointIntervalMs?: number;
  /** How long `close()` waits for a running handler before giving up on it, in milliseconds. Default 10000. */
  closeTimeoutMs?: number;
  /**
   * Longest wait for one token-store call, in milliseconds. A save that takes longer counts as failed (the stream
   * goes on, see `austa_mongo_change_stream_token_save_failures_total`); a load that takes longer is retried with
   * backoff. Default 5000: a store that hangs (a Redis client queueing commands while disconnected) must not stall
   * the stream in silence.
   */
  tokenStoreTimeoutMs?: number;
  /** `updateLookup`, `whenAvailable` or `required` to receive the full document on updates. Default: not sent. */
  fullDocument?: 'default' | 'updateLookup' | 'whenAvailable' | 'required';
  /** `whenAvailable` or `required` for pre-images (the collection must enable them). Default: not sent. */
  fullDocumentBeforeChange?: 'off' | 'whenAvailable' | 'required';
  /** How long the server waits for new events before answering an empty poll, in milliseconds. Default: server's (1000). */
  maxAwaitTimeMs?: number;
  /** Events per batch. Default: server's. */
  batchSize?: number;
  /** Also receive DDL events (`create`, `createIndexes`, `modify`…). Default `false`. */
  showExpandedEvents?: boolean;
  /** Where to start when no token is saved yet. Default: now. */
  startAtOperationTime?: Timestamp;
}

/** Where a stream is in its life. */
export type ChangeStreamState = 'starting' | 'running' | 'restarting' | 'stopped' | 'failed';

/** Why a stream ended. `done` resolves with it and never rejects. */
export type ChangeStreamEnd =
  | { reason: 'closed' }
  | { reason: 'invalidated' }
  | { reason: 'fatal'; error: FatalChangeStreamError };

/** A snapshot of a stream, for health checks and dashboards. */
export interface ChangeStreamStatus {
  name: string;
  collection: string;
  state: ChangeStreamState;
  /** Times the stream was reopened by this package (the driver's own single resumes are not counted). */
  restarts: number;
  /** Events the handler handled, plus events dead-lettered. */
  handled: number;
  deadLettered: number;
  /** When the last event was handled (epoch milliseconds), or `null`. */
  lastEventAt: number | null;
  /** Now minus the last event's `wallTime`, in seconds; 0 when idle and caught up; `null` before any event. */
  lagSeconds: number | null;
  /** Set when `state` is `failed`. */
  error?: { code: string; reason: string };
}

/** A change stream that keeps going. Returned by `createChangeStream`, `watchOperations` and `watchFields`. */
export interface ManagedChangeStream {
  readonly name: string;
  readonly collectionName: string;
  /** Resolves when the stream ends for good: `close()`, an invalidate under `stop`, or a fatal error. Never rejects. */
  readonly done: Promise<ChangeStreamEnd>;
  status(): ChangeStreamStatus;
  /**
   * Resolves once the stream's cursor is open on the server (its first poll answered), so changes made after it
   * resolves are seen even on a first start without a saved token. Rejects if the stream ends first: with its
   * `FatalChangeStreamError`, or `E_CLIENT_CLOSED` after `close()`.
   */
  ready(): Promise<void>;
  /**
   * Stops reading, lets a running handler finish (up to `closeTimeoutMs`), saves the newest safe token and closes
   * the driver's cursor. Leaves no timer or cursor behind. Idempotent. Called from inside the handler (to stop after
   * some event), it resolves at once; the stream stops, saving that event's token, when the handler returns.
   */
  close(): Promise<void>;
}

/** The part of the driver's `ChangeStream` this package uses (iterator mode). */
export interface ChangeStreamLike {
  tryNext(): Promise<Document | null>;
  readonly resumeToken: ResumeToken;
  readonly closed: boolean;
  close(): Promise<void>;
}

/** Opens a driver change stream with the given start options (what `collection.watch(pipeline, options)` does). */
export type OpenChangeStream = (start: {
  startAfter?: ResumeToken;
  startAtOperationTime?: Timestamp;
}) => ChangeStreamLike;

export interface StreamDependencies {
  name: string;
  collection: string;
  open: OpenChangeStream;
  tokenStore: ResumeTokenStore;
  handler: ChangeHandler;
  /** Client-side filter after the server's `$match` (watchFields' path matcher); events it rejects are skipped. */
  accept?: (change: Document) => boolean;
  instruments: StreamInstruments;
  logger: Logger;
  options: ManagedChangeStreamOptions;
  /** Called once when the loop ends, with why. */
  onEnd?: (end: ChangeStreamEnd) => void;
  /** Called once when `close()` finishes, so the client can forget the stream. */
  onClose?: () => void;
}

interface StreamSettings {
  onInvalidate: InvalidatePolicy;
  maxHandlerAttempts: number;
  handlerRetryDelayMs: number;
  restartDelayMs: number;
  maxRestartDelayMs: number;
  idleCheckpointIntervalMs: number;
  closeTimeoutMs: number;
  tokenStoreTimeoutMs: number;
}

/** Defaults of the stream options, exported so the README and the tests cite the numbers the code uses. */
export const STREAM_DEFAULTS: Readonly<StreamSettings> = Object.freeze({
  onInvalidate: 'stop',
  maxHandlerAttempts: 3,
  handlerRetryDelayMs: 200,
  restartDelayMs: 500,
  maxRestartDelayMs: 30_000,
  idleCheckpointIntervalMs: 10_000,
  closeTimeoutMs: 10_000,
  tokenStoreTimeoutMs: 5_000,
});

type Outcome =
  | { kind: 'closed' }
  | { kind: 'error'; error: unknown }
  | { kind: 'fatal'; error: FatalChangeStreamError }
  | { kind: 'invalidated'; token: ResumeToken | undefined };

const CLOSED: Outcome = Object.freeze({ kind: 'closed' });

/** When the event happened on the server, in epoch milliseconds, or `undefined` when it does not say. */
function eventTimeMs(change: Document): number | undefined {
  const wallTime = change.wallTime;
  if (wallTime instanceof Date) return wallTime.getTime();
  // Servers before 6.0 send no wallTime; the cluster time's high 32 bits are seconds since the epoch.
  const clusterTime = change.clusterTime as { getHighBits?: () => number; high?: number } | undefined;
  const seconds = clusterTime?.getHighBits?.() ?? clusterTime?.high;
  return typeof seconds === 'number' ? seconds * 1000 : undefined;
}

async function closeQuietly(stream: ChangeStreamLike): Promise<void> {
  try {
    await stream.close();
  } catch {
    // Closing a cursor the server already dropped fails; there is nothing left to release.
  }
}

/**
 * Runs one change stream: loads the saved token, opens the driver's stream in iterator mode, hands each event to
 * the handler one at a time, saves the token after the handler succeeds, and reopens with `startAfter` the last
 * handled event when the driver gives up. Iterator mode (`tryNext`) gives natural backpressure: the next event is
 * not read before the current one is handled, and an empty poll exposes the post-batch token to checkpoint idle
 * streams.
 */
export class ManagedStream implements ManagedChangeStream {
  readonly name: string;
  readonly collectionName: string;
  readonly done: Promise<ChangeStreamEnd>;

  private state: ChangeStreamState = 'starting';
  private readonly abort = new AbortController();
  private closing = false;
  /** Set when close() stopped waiting for a handler: from then on nothing is written. */
  private abandoned = false;
  private closePromise: Promise<void> | undefined;
  private stream: ChangeStreamLike | undefined;
  /** The newest token that is safe to resume from: every event before it was handled or filtered out. */
  private safeToken: ResumeToken | undefined;
  private savedKey: string | undefined;
  private lastSaveAt = 0;
  private saveFailing = false;
  private restartAttempt = 0;
  private restarts = 0;
  private handled = 0;
  private deadLettered = 0;
  private lastEventAt: number | null = null;
  /** Lag when the last event was handled, or 0 after an empty poll; `null` before any event. */
  private lagSeconds: number | null = null;
  /** Server time of the event being handled now: the lag grows from it until the event is handled. */
  private pendingSinceMs: number | undefined;
  private readonly stopLag: () => void;
  private fatal: FatalChangeStreamError | undefined;
  private readonly settings: StreamSettings;
  private readonly opened: Promise<void>;
  private markOpened: () => void = () => {};
  /** Marks code running inside this stream's handler, so close() called from there does not wait on itself. */
  private readonly handlerScope = new AsyncLocalStorage<true>();
  /** When the current driver stream was opened; a stream that ran this long before failing resets the backoff. */
  private openedAt = 0;

  constructor(private readonly deps: StreamDependencies) {
    this.name = deps.name;
    this.collectionName = deps.collection;
    const options = deps.options;
    this.settings = {
      onInvalidate: options.onInvalidate ?? STREAM_DEFAULTS.onInvalidate,
      maxHandlerAttempts: options.maxHandlerAttempts ?? STREAM_DEFAULTS.maxHandlerAttempts,
      handlerRetryDelayMs: options.handlerRetryDelayMs ?? STREAM_DEFAULTS.handlerRetryDelayMs,
      restartDelayMs: options.restartDelayMs ?? STREAM_DEFAULTS.restartDelayMs,
      maxRestartDelayMs: options.maxRestartDelayMs ?? STREAM_DEFAULTS.maxRestartDelayMs,
      idleCheckpointIntervalMs: options.idleCheckpointIntervalMs ?? STREAM_DEFAULTS.idleCheckpointIntervalMs,
      closeTimeoutMs: options.closeTimeoutMs ?? STREAM_DEFAULTS.closeTimeoutMs,
      tokenStoreTimeoutMs: options.tokenStoreTimeoutMs ?? STREAM_DEFAULTS.tokenStoreTimeoutMs,
    };
    this.opened = new Promise<void>((resolve) => {
      this.markOpened = resolve;
    });
    this.stopLag = deps.instruments.watchLag(() => this.currentLag());
    this.done = this.run().then(
      (end) => {
        this.finishLag();
        deps.onEnd?.(end);
        return end;
      },
      // run() handles its own errors; this is the last line of defence so `done` never rejects.
      (error: unknown) => {
        const fatal = new FatalChangeStreamError(
          this.name,
          'server_fatal',
          'The change stream loop failed unexpectedly.',
          {
            cause: error,
          },
        );
        this.fatal = fatal;
        this.state = 'failed';
        this.finishLag();
        const end = { reason: 'fatal', error: fatal } as const;
        deps.onEnd?.(end);
        return end;
      },
    );
  }

  /** Now minus the server time of the event in hand (growing while a handler is stuck on it), else the last lag. */
  private currentLag(): number | null {
    if (this.pendingSinceMs !== undefined) return Math.max(0, (Date.now() - this.pendingSinceMs) / 1000);
    return this.lagSeconds;
  }

  /** The stream stopped: the gauge keeps its last value, read no more. */
  private finishLag(): void {
    const last = this.currentLag();
    this.stopLag();
    if (last !== null) this.deps.instruments.lag(last);
  }

  status(): ChangeStreamStatus {
    const status: ChangeStreamStatus = {
      name: this.name,
      collection: this.collectionName,
      state: this.state,
      restarts: this.restarts,
      handled: this.handled,
      deadLettered: this.deadLettered,
      lastEventAt: this.lastEventAt,
      lagSeconds: this.currentLag(),
    };
    if (this.fatal) status.error = { code: this.fatal.code, reason: this.fatal.reason };
    return status;
  }

  ready(): Promise<void> {
    // Settles once: whichever comes first, the first answered poll or the end of the stream.
    return new Promise((resolve, reject) => {
      void this.opened.then(resolve);
      void this.done.then((end) =>
        reject(
          end.reason === 'fatal'
            ? end.error
            : new MongoClientClosedError(
                end.reason === 'invalidated'
                  ? `Change stream "${this.name}" ended before it opened: its collection was dropped or renamed (onInvalidate: stop).`
                  : `Change stream "${this.name}" was closed before it opened.`,
              ),
        ),
      );
    });
  }

  close(): Promise<void> {
    this.closePromise ??= this.shutDown().finally(() => this.deps.onClose?.());
    return this.closePromise;
  }

  private async shutDown(): Promise<void> {
    this.closing = true;
    this.abort.abort();
    // Closing the driver's stream ends a poll waiting on the server (up to maxAwaitTimeMS).
    const stream = this.stream;
    if (stream) await closeQuietly(stream);
    // Called from inside the handler: waiting for the loop would wait for this very handler. The loop stops (and
    // saves the event's token) as soon as the handler returns.
    if (this.handlerScope.getStore() === true) return;
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = await Promise.race([
      this.done.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), this.settings.closeTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (gaveUp) {
      this.abandoned = true;
      this.state = 'stopped';
      // The handler may never return, and with it the loop: stop reading the lag of a stream that is closed.
      this.finishLag();
      this.deps.logger.warn(
        'Change stream closed while its handler was still running; the event will be delivered again after a restart.',
        {
          stream: this.name,
          closeTimeoutMs: this.settings.closeTimeoutMs,
        },
      );
    }
  }

  private async run(): Promise<ChangeStreamEnd> {
    try {
      const loaded = await this.loadToken();
      if (loaded.kind === 'closed') return this.end({ reason: 'closed' });
      if (loaded.kind === 'fatal') return this.failWith(loaded.error);
      while (true) {
        if (this.closing) return this.end({ reason: 'closed' });
        const outcome = await this.consume();
        switch (outcome.kind) {
          case 'closed':
            return this.end({ reason: 'closed' });
          case 'fatal':
            return this.failWith(outcome.error);
          case 'invalidated':
            if (this.settings.onInvalidate === 'stop') {
              this.deps.logger.warn(
                'Change stream stopped: the collection was dropped or renamed (onInvalidate: stop).',
                {
                  stream: this.name,
                  collection: this.collectionName,
                },
              );
              return this.end({ reason: 'invalidated' });
            }
            if (outcome.token !== undefined && !this.isSafeToken(outcome.token)) {
              this.safeToken = outcome.token;
              await this.checkpoint(true);
            } else {
              // No newer token to start after (the pipeline filtered the invalidate event out): reopening at
              // once would meet the same end of the cursor again, so back off as after an error.
              this.restartAttempt++;
              const waitMs = backoffMs(
                this.restartAttempt,
                this.settings.restartDelayMs,
                this.settings.maxRestartDelayMs,
              );
              if (!(await delay(waitMs, this.abort.signal))) return this.end({ reason: 'closed' });
            }
            this.restarts++;
            this.deps.instruments.restart();
            this.deps.logger.warn(
              'Change stream restarting after the collection was dropped or renamed (onInvalidate: restart).',
              {
                stream: this.name,
                collection: this.collectionName,
              },
            );
            continue;
          case 'error': {
            const resumable = isResumableChangeStreamError(outcome.error);
            this.deps.instruments.error(resumable ? 'resumable' : 'non_resumable');
            // A stream that ran for a while before failing starts its backoff over; one that keeps failing soon
            // after opening backs off further each time, even if its first polls succeed.
            if (this.openedAt > 0 && Date.now() - this.openedAt >= this.settings.maxRestartDelayMs) {
              this.restartAttempt = 0;
            }
            this.restartAttempt++;
            const waitMs = backoffMs(
              this.restartAttempt,
              this.settings.restartDelayMs,
              this.settings.maxRestartDelayMs,
            );
            this.state = 'restarting';
            this.deps.logger.warn('Change stream interrupted; reopening after the last handled event.', {
              stream: this.name,
              collection: this.collectionName,
              errorType: errorType(outcome.error),
              resumable,
              attempt: this.restartAttempt,
              waitMs,
            });
            if (!(await delay(waitMs, this.abort.signal))) return this.end({ reason: 'closed' });
            this.restarts++;
            this.deps.instruments.restart();
          }
        }
      }
    } finally {
      const stream = this.stream;
      this.stream = undefined;
      if (stream) await closeQuietly(stream);
    }
  }

  private async end(end: ChangeStreamEnd): Promise<ChangeStreamEnd> {
    // Tokens of filtered-out events and idle polls are saved lazily; a clean stop saves the newest one.
    if (end.reason === 'closed') await this.checkpoint(true);
    this.state = 'stopped';
    return end;
  }

  private failWith(error: FatalChangeStreamError): ChangeStreamEnd {
    this.fatal = error;
    this.state = 'failed';
    this.deps.instruments.error('fatal');
    this.deps.logger.error(
      `Change stream stopped for good (${error.reason}): ${FATAL_ADVICE[error.reason]}`,
      {
        stream: this.name,
        collection: this.collectionName,
        code: error.code,
        reason: error.reason,
        errorType: errorType(error.cause),
      },
    );
    return { reason: 'fatal', error };
  }

  private toFatal(error: unknown): FatalChangeStreamError | undefined {
    const reason = fatalReason(error);
    if (reason === undefined) return undefined;
    return new FatalChangeStreamError(
      this.name,
      reason,
      `Change stream "${this.name}" cannot continue: ${FATAL_ADVICE[reason]}`,
      {
        cause: error,
      },
    );
  }

  private async loadToken(): Promise<
    { kind: 'ok' } | { kind: 'closed' } | { kind: 'fatal'; error: FatalChangeStreamError }
  > {
    let attempt = 0;
    while (!this.closing) {
      try {
        const token = await this.withStoreTimeout(this.deps.tokenStore.load(this.name), 'load');
        if (token !== undefined && (typeof token !== 'object' || token === null || Array.isArray(token))) {
          throw new TokenStoreError(
            'The token store returned something that is not a resume token document.',
          );
        }
        if (token === undefined) {
          this.deps.logger.warn('Change stream has no saved resume token; it starts from the current time.', {
            stream: this.name,
            collection: this.collectionName,
          });
        } else {
          this.safeToken = token;
          this.savedKey = tokenKey(token);
        }
        return { kind: 'ok' };
      } catch (error) {
        // Only a token the store holds but cannot turn back into a token is fatal; an unreachable or refusing
        // store may recover, and starting without the saved token would skip every event since it: wait for it.
        if (TokenStoreError.isInstance(error)) {
          return { kind: 'fatal', error: this.toFatal(error) as FatalChangeStreamError };
        }
        attempt++;
        const waitMs = backoffMs(attempt, this.settings.restartDelayMs, this.settings.maxRestartDelayMs);
        this.state = 'restarting';
        this.deps.logger.warn('Change stream cannot read its saved resume token; retrying before starting.', {
          stream: this.name,
          errorType: errorType(error),
          attempt,
          waitMs,
        });
        if (!(await delay(waitMs, this.abort.signal))) break;
      }
    }
    return { kind: 'closed' };
  }

  private isSafeToken(token: ResumeToken): boolean {
    return (
      this.safeToken !== undefined && this.safeToken !== null && tokenKey(token) === tokenKey(this.safeToken)
    );
  }

  private openOptions(): { startAfter?: ResumeToken; startAtOperationTime?: Timestamp } {
    // startAfter rather than resumeAfter: it also accepts the token of an invalidate event.
    if (this.safeToken !== undefined) return { startAfter: this.safeToken };
    const start = this.deps.options.startAtOperationTime;
    return start === undefined ? {} : { startAtOperationTime: start };
  }

  private async consume(): Promise<Outcome> {
    let stream: ChangeStreamLike;
    try {
      stream = this.deps.open(this.openOptions());
    } catch (error) {
      const fatal = this.toFatal(error);
      return fatal ? { kind: 'fatal', error: fatal } : { kind: 'error', error };
    }
    this.stream = stream;
    this.openedAt = Date.now();
    try {
      while (true) {
        if (this.closing) return CLOSED;
        let change: Document | null;
        try {
          change = await stream.tryNext();
        } catch (error) {
          if (this.closing) return CLOSED;
          const fatal = this.toFatal(error);
          return fatal ? { kind: 'fatal', error: fatal } : { kind: 'error', error };
        }
        // An event read after close() is not handled and its token not saved: it is delivered again next time.
        if (this.closing) return CLOSED;
        const token = stream.resumeToken;
        // The server ended the cursor without an invalidate event reaching us (the pipeline filtered it out).
        if (change === null && stream.closed) return { kind: 'invalidated', token: token ?? undefined };
        this.state = 'running';
        this.markOpened();
        if (change === null) {
          this.pendingSinceMs = undefined;
          this.lagSeconds = 0;
          this.deps.instruments.lag(0);
          if (token !== undefined && token !== null) {
            this.safeToken = token;
            await this.checkpoint(false);
          }
          // Real polls wait on the server; yield anyway so a stream that answers instantly cannot starve the loop.
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        this.deps.instruments.event(String(change.operationType));
        this.pendingSinceMs = eventTimeMs(change);
        if (change.operationType === 'invalidate') {
          this.settleLag();
          return { kind: 'invalidated', token: change._id ?? token };
        }
        if (this.accepts(change)) {
          if (!(await this.deliver(change))) return CLOSED;
          this.settleLag();
          this.lastEventAt = Date.now();
          this.safeToken = token ?? change._id;
          await this.checkpoint(true);
        } else {
          this.settleLag();
          this.safeToken = token ?? change._id;
          await this.checkpoint(false);
        }
      }
    } finally {
      if (this.stream === stream) this.stream = undefined;
      await closeQuietly(stream);
    }
  }

  /** The event in hand is done with: its lag at this moment stays until the next event or empty poll. */
  private settleLag(): void {
    const lag = this.currentLag();
    this.pendingSinceMs = undefined;
    if (lag !== null) {
      this.lagSeconds = lag;
      this.deps.instruments.lag(lag);
    }
  }

  /** The client-side filter; an event it cannot judge (an odd shape) is delivered rather than skipped. */
  private accepts(change: Document): boolean {
    if (this.deps.accept === undefined) return true;
    try {
      return this.deps.accept(change);
    } catch {
      return true;
    }
  }

  /** Resolves `true` once the event is handled or dead-lettered, `false` if the stream closed first. */
  private async deliver(change: Document): Promise<boolean> {
    const { maxHandlerAttempts, handlerRetryDelayMs, maxRestartDelayMs } = this.settings;
    const deadLetter = this.deps.options.deadLetter;
    const signal = this.abort.signal;
    const event = change as ChangeStreamDocument;
    let cycle = 0;
    while (true) {
      let lastError: unknown;
      for (let attempt = 1; attempt <= maxHandlerAttempts; attempt++) {
        if (this.closing) return false;
        try {
          await this.handlerScope.run(true, () =>
            this.deps.handler(event, { stream: this.name, attempt, signal }),
          );
          this.handled++;
          return true;
        } catch (error) {
          lastError = error;
          this.deps.instruments.handlerFailure();
          this.deps.logger.warn('Change stream handler failed; the event will be retried.', {
            stream: this.name,
            operationType: change.operationType,
            attempt,
            maxHandlerAttempts,
            errorType: errorType(error),
          });
        }
        if (attempt < maxHandlerAttempts) {
          const waitMs = Math.min(maxRestartDelayMs, handlerRetryDelayMs * 2 ** (attempt - 1));
          if (!(await delay(waitMs, signal))) return false;
        }
      }
      if (this.closing) return false;
      if (deadLetter) {
        try {
          await this.handlerScope.run(true, () =>
            deadLetter(event, lastError, { stream: this.name, attempts: maxHandlerAttempts }),
          );
          this.handled++;
          this.deadLettered++;
          this.deps.instruments.deadLetter();
          this.deps.logger.error('Change event dead-lettered after the handler kept failing.', {
            stream: this.name,
            operationType: change.operationType,
            attempts: maxHandlerAttempts,
            errorType: errorType(lastError),
          });
          return true;
        } catch (error) {
          this.deps.logger.error(
            'The dead-letter callback failed; the stream keeps the event and retries it.',
            {
              stream: this.name,
              operationType: change.operationType,
              errorType: errorType(error),
            },
          );
        }
      } else {
        this.deps.logger.error(
          'Change stream is held on an event its handler keeps failing (no deadLetter callback); retrying with backoff.',
          {
            stream: this.name,
            operationType: change.operationType,
            attempts: maxHandlerAttempts,
            cycle: cycle + 1,
          },
        );
      }
      cycle++;
      const waitMs = backoffMs(cycle, handlerRetryDelayMs * 2 ** maxHandlerAttempts, maxRestartDelayMs);
      if (!(await delay(waitMs, signal))) return false;
    }
  }

  /**
   * Bounds one token-store call by `tokenStoreTimeoutMs`. The call itself cannot be cancelled; a save that lands late
   * can only write an older token than a later one, which a restart replays from: at-least-once still holds. The
   * timer is unref'd and cleared as soon as the call settles, so it never holds the process open.
   */
  private withStoreTimeout<T>(call: Promise<T>, what: 'load' | 'save'): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          Object.assign(
            new Error(`token store ${what} took longer than ${this.settings.tokenStoreTimeoutMs} ms`),
            { name: 'TokenStoreTimeout' },
          ),
        );
      }, this.settings.tokenStoreTimeoutMs);
      timer.unref();
    });
    return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
  }

  /**
   * Saves `safeToken` when it changed: at once after a handled event (`force`), otherwise at most every
   * `idleCheckpointIntervalMs`. A failing store does not stop the stream: the event was handled; a restart would
   * replay more events. The failure is counted and logged once until the store recovers.
   */
  private async checkpoint(force: boolean): Promise<void> {
    const token = this.safeToken;
    if (token === undefined || token === null || this.abandoned) return;
    const key = tokenKey(token);
    if (key === this.savedKey) return;
    const now = Date.now();
    if (
      !force &&
      this.savedKey !== undefined &&
      now - this.lastSaveAt < this.settings.idleCheckpointIntervalMs
    )
      return;
    try {
      await this.withStoreTimeout(this.deps.tokenStore.save(this.name, token), 'save');
      this.savedKey = key;
      this.lastSaveAt = now;
      if (this.saveFailing) {
        this.saveFailing = false;
        this.deps.logger.warn('Change stream token store recovered; resume tokens are saved again.', {
          stream: this.name,
        });
      }
    } catch (error) {
      this.deps.instruments.tokenSaveFailure();
      if (!this.saveFailing) {
        this.saveFailing = true;
        this.deps.logger.error(
          'Change stream could not save its resume token; a restart would replay events since the last saved one.',
          {
            stream: this.name,
            errorType: errorType(error),
          },
        );
      }
    }
  }
}
