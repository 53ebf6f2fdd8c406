import { EventEmitter } from 'node:events';
import type { Document, ResumeToken } from 'mongodb';
import type { ChangeStreamLike, OpenChangeStream } from '../src/change-stream.js';
import type { Logger } from '../src/logger.js';
import type { ResumeTokenStore } from '../src/token-store.js';

/*
 * Fakes of the few driver surfaces the package uses. They are not a MongoDB server: they implement only
 * `tryNext`/`resumeToken`/`closed`/`close` of a ChangeStream (iterator mode), and the event emitter of a client,
 * so the wrapper's logic can be driven event by event. The real driver runs in the integration suite.
 */

export type Step =
  /** The next event; the stream's resume token becomes `token` (default: the event's `_id`). */
  | { change: Document; token?: ResumeToken }
  /** An empty poll: `tryNext()` resolves null, the resume token becomes `token` (a post-batch token). */
  | { idle: true; token?: ResumeToken }
  /** `tryNext()` rejects: the driver gave up. */
  | { error: unknown }
  /** The server ended the cursor: `tryNext()` resolves null and `closed` becomes true. */
  | { end: true };

export function token(id: string): ResumeToken {
  return { _data: id };
}

let sequence = 0;

/** A change event the way the driver hands it over (the fields this package reads, plus a few). */
export function changeEvent(id: string, operationType = 'insert', extra: Document = {}): Document {
  sequence++;
  return {
    _id: token(id),
    operationType,
    ns: { db: 'app', coll: 'patients' },
    documentKey: { _id: sequence },
    wallTime: new Date(),
    ...extra,
  };
}

export function updateEvent(id: string, updatedFields: Document, removedFields: string[] = []): Document {
  return changeEvent(id, 'update', {
    updateDescription: { updatedFields, removedFields, truncatedArrays: [] },
  });
}

export class FakeChangeStream implements ChangeStreamLike {
  closed = false;
  closeCalls = 0;
  resumeToken: ResumeToken = null;
  /** How many times `tryNext()` was called. */
  polls = 0;
  private readonly steps: Step[];
  private waiting: ((step: Step | undefined) => void) | undefined;

  constructor(steps: Step[] = [], initialToken: ResumeToken = null) {
    this.steps = [...steps];
    this.resumeToken = initialToken;
  }

  /** Adds steps; wakes a `tryNext()` waiting for one (a long poll). */
  push(...steps: Step[]): void {
    this.steps.push(...steps);
    const waiting = this.waiting;
    if (waiting) {
      this.waiting = undefined;
      waiting(this.steps.shift());
    }
  }

  async tryNext(): Promise<Document | null> {
    this.polls++;
    if (this.closed) {
      throw Object.assign(new Error('ChangeStream is closed'), { name: 'MongoAPIError' });
    }
    let step = this.steps.shift();
    if (step === undefined) {
      // Like an awaitData getMore: wait until there is something, or until close().
      step = await new Promise<Step | undefined>((resolve) => {
        this.waiting = resolve;
      });
      if (step === undefined) return null;
    }
    if ('error' in step) {
      this.closed = true;
      throw step.error;
    }
    if ('end' in step) {
      this.closed = true;
      return null;
    }
    if ('idle' in step) {
      if (step.token !== undefined) this.resumeToken = step.token;
      return null;
    }
    this.resumeToken = step.token ?? step.change._id;
    return step.change;
  }

  async close(): Promise<void> {
    this.closeCalls++;
    this.closed = true;
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.(undefined);
  }
}

/** An `open` function handing out scripted streams in order, recording the start options of each. */
export function scriptedOpen(...streams: FakeChangeStream[]) {
  const opens: Array<{ start: Parameters<OpenChangeStream>[0]; stream: FakeChangeStream }> = [];
  const queue = [...streams];
  const open: OpenChangeStream = (start) => {
    const stream = queue.shift() ?? new FakeChangeStream();
    opens.push({ start, stream });
    return stream;
  };
  return { open, opens, queue };
}

export interface RecordedLog {
  level: 'warn' | 'error';
  message: string;
  details: Record<string, unknown> | undefined;
}

export function recordingLogger(): Logger & { lines: RecordedLog[] } {
  const lines: RecordedLog[] = [];
  return {
    lines,
    warn: (message, details) => lines.push({ level: 'warn', message, details }),
    error: (message, details) => lines.push({ level: 'error', message, details }),
  };
}

/** A memory token store that records every call, can be told to fail, and never copies tokens. */
export function recordingStore(initial: Record<string, ResumeToken> = {}) {
  const tokens = new Map<string, ResumeToken>(Object.entries(initial));
  const calls: string[] = [];
  const control = { failLoad: undefined as unknown, failLoadTimes: 0, failSave: undefined as unknown };
  const store: ResumeTokenStore = {
    async load(stream) {
      calls.push(`load:${stream}`);
      if (control.failLoad !== undefined && control.failLoadTimes > 0) {
        control.failLoadTimes--;
        throw control.failLoad;
      }
      return tokens.get(stream);
    },
    async save(stream, value) {
      const data = (value as { _data?: string })._data ?? JSON.stringify(value);
      if (control.failSave !== undefined) {
        calls.push(`save-failed:${data}`);
        throw control.failSave;
      }
      calls.push(`save:${data}`);
      tokens.set(stream, value);
    },
    async delete(stream) {
      calls.push(`delete:${stream}`);
      tokens.delete(stream);
    },
  };
  return { store, tokens, calls, control };
}

/** Polls `check` until it returns true, failing after `timeoutMs`: negative waits never sleep a fixed time. */
export async function until(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Counts active timers of this process (Node's own bookkeeping), to prove close() leaves none behind. */
export function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
}

/** A client-shaped event emitter with the driver methods the wrapper calls, all recorded. */
export class FakeMongoClient extends EventEmitter {
  monitorCommands = true;
  options = { monitorCommands: true };
  readonly calls: string[] = [];
  closeCalls = 0;
  /** What `db(...).command(...)` answers; a function to vary it. */
  commandReply: (command: Document) => Promise<Document> = async () => ({ ok: 1 });
  /** Streams handed out by `collection.watch()`, in order; new empty ones when the list runs out. */
  readonly streams: FakeChangeStream[] = [];
  readonly watches: Array<{
    collection: string;
    pipeline: Document[];
    options: Document;
    stream: FakeChangeStream;
  }> = [];
  session = {
    ended: false,
    transaction: { isCommitted: true },
    withTransaction: async <T>(fn: () => Promise<T>) => fn(),
    endSession: async () => {
      this.session.ended = true;
    },
  };

  db(name?: string) {
    this.calls.push(`db:${name ?? ''}`);
    return {
      databaseName: name ?? 'test',
      command: (command: Document, _options?: Document) => {
        this.calls.push(`command:${Object.keys(command)[0]}`);
        return this.commandReply(command);
      },
      collection: (collectionName: string) => this.fakeCollection(collectionName),
    };
  }

  fakeCollection(collectionName: string) {
    const client = this;
    return {
      collectionName,
      watch(pipeline: Document[], options: Document) {
        client.calls.push(`watch:${collectionName}`);
        const stream = client.streams.shift() ?? new FakeChangeStream();
        client.watches.push({ collection: collectionName, pipeline, options, stream });
        return stream;
      },
      find(filter: Document) {
        client.calls.push(`find:${collectionName}:${JSON.stringify(filter)}`);
        return { toArray: async () => [] };
      },
      async findOne(filter: Document) {
        client.calls.push(`findOne:${collectionName}:${JSON.stringify(filter)}`);
        return null;
      },
      async insertOne(document: Document) {
        client.calls.push(`insertOne:${collectionName}:${JSON.stringify(document)}`);
        return { acknowledged: true };
      },
      async distinct(key: string, filter: Document) {
        client.calls.push(`distinct:${collectionName}:${key}:${JSON.stringify(filter)}`);
        return [];
      },
    };
  }

  startSession() {
    this.calls.push('startSession');
    this.session.ended = false;
    return this.session;
  }

  async connect() {
    this.calls.push('connect');
    return this;
  }

  async close() {
    this.closeCalls++;
  }
}
