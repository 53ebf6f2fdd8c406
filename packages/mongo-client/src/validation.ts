import { MongoArgumentError } from './errors.js';

// MongoDB limits a namespace (`db.collection`) to 255 bytes; a collection name alone can never be longer.
const MAX_NAMESPACE_BYTES = 255;
// C0 control characters and DEL: never part of a real collection or stream name, often a sign of injected input.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

function describe(value: unknown): string {
  if (typeof value === 'string') return value.length === 0 ? 'an empty string' : 'a string';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'number' ? 'a number' : `${typeof value === 'object' ? 'an' : 'a'} ${typeof value}`;
}

/** Throws `E_INVALID_ARGUMENT` unless `name` can be a MongoDB collection name. */
export function assertCollectionName(name: unknown, what = 'collection name'): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new MongoArgumentError(`The ${what} must be a non-empty string (got ${describe(name)}).`);
  }
  if (Buffer.byteLength(name) > MAX_NAMESPACE_BYTES) {
    throw new MongoArgumentError(
      `The ${what} is longer than MongoDB's ${MAX_NAMESPACE_BYTES}-byte namespace limit.`,
    );
  }
  if (name.includes('$')) {
    throw new MongoArgumentError(`The ${what} must not contain "$" (MongoDB reserves it).`);
  }
  if (CONTROL_CHARACTERS.test(name)) {
    throw new MongoArgumentError(`The ${what} must not contain control characters or NUL.`);
  }
}

/** Throws `E_INVALID_ARGUMENT` unless `name` can be a database name (no `/\. "$`, NUL, at most 63 bytes). */
export function assertDatabaseName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new MongoArgumentError(`The database name must be a non-empty string (got ${describe(name)}).`);
  }
  if (Buffer.byteLength(name) > 63 || /[/\\. "$*<>:|?]/.test(name) || CONTROL_CHARACTERS.test(name)) {
    throw new MongoArgumentError(
      'The database name must be at most 63 bytes without / \\ . " $ * < > : | ? spaces or control characters.',
    );
  }
}

// Stream names become token-store keys (inside a Redis hash tag) and metric labels: a short, plain word.
const STREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Throws `E_INVALID_ARGUMENT` unless `name` is a stream name: 1-128 of `A-Z a-z 0-9 . _ : -`, starting alphanumeric. */
export function assertStreamName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !STREAM_NAME.test(name)) {
    throw new MongoArgumentError(
      `A change stream name must be 1-128 characters of A-Z, a-z, 0-9, ".", "_", ":" or "-", starting with a letter or digit (got ${describe(name)}). It keys the saved resume token, so keep it stable across deploys.`,
    );
  }
}

const OPERATION_NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

/** Throws `E_INVALID_ARGUMENT` unless `name` can be an `operation` label value. */
export function assertOperationName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !OPERATION_NAME.test(name)) {
    throw new MongoArgumentError(
      `The operation name must be 1-64 characters of A-Z, a-z, 0-9, "_", ".", ":" or "-", starting with a letter (got ${describe(name)}). It becomes a metric label, so use a fixed word such as "findPatientByEmail", never an id.`,
    );
  }
}

/** Throws `E_INVALID_ARGUMENT` unless `pipeline` is an array of plain stage objects. */
export function assertPipeline(pipeline: unknown): asserts pipeline is Array<Record<string, unknown>> {
  if (!Array.isArray(pipeline)) {
    throw new MongoArgumentError(
      `The pipeline must be an array of aggregation stages, e.g. [{ $match: { operationType: 'insert' } }] (got ${describe(pipeline)}).`,
    );
  }
  for (const [index, stage] of pipeline.entries()) {
    if (typeof stage !== 'object' || stage === null || Array.isArray(stage)) {
      throw new MongoArgumentError(`Pipeline stage ${index} must be an object such as { $match: {...} }.`);
    }
    const keys = Object.keys(stage);
    if (keys.length !== 1 || !keys[0]?.startsWith('$')) {
      throw new MongoArgumentError(
        `Pipeline stage ${index} must have exactly one key naming the stage ($match, $project…).`,
      );
    }
  }
}

/** Throws `E_INVALID_ARGUMENT` unless `handler` is a function. */
export function assertFunction(value: unknown, what: string): asserts value is (...args: never[]) => unknown {
  if (typeof value !== 'function') {
    throw new MongoArgumentError(`The ${what} must be a function (got ${describe(value)}).`);
  }
}

/** A positive integer option, or `fallback` when unset. */
export function positiveInteger(value: unknown, fallback: number, what: string, allowZero = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new MongoArgumentError(
      `${what} must be a ${allowZero ? 'non-negative' : 'positive'} integer (got ${String(value)}).`,
    );
  }
  return value;
}

/**
 * The keys of `options` that `known` does not list (set to something other than `undefined`), with a hint for each:
 * the option it most likely meant when only the case differs (`serverSelectionTimeoutMS` for
 * `serverSelectionTimeoutMs`). A typo in an options object is otherwise silently ignored, and the default it leaves
 * in place (a 15 s timeout, `onInvalidate: 'stop'`) surfaces much later as a mystery.
 */
export function unknownKeys(options: object, known: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  for (const key of Object.keys(options)) {
    if (known.has(key) || (options as Record<string, unknown>)[key] === undefined) continue;
    const lower = key.toLowerCase();
    const meant = [...known].find((candidate) => candidate.toLowerCase() === lower);
    problems.push(meant === undefined ? `"${key}"` : `"${key}" (did you mean "${meant}"?)`);
  }
  return problems;
}
