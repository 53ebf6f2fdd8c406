import { MongoArgumentError, UnsafeFilterError } from './errors.js';

/**
 * Operators that run JavaScript or arbitrary aggregation expressions on the server. They are refused even when
 * listed in `allowOperators`: no filter built from user input needs them, and each one turns a lookup into code.
 */
export const FORBIDDEN_OPERATORS: ReadonlySet<string> = new Set([
  '$where',
  '$expr',
  '$function',
  '$accumulator',
]);

/** Options of {@link sanitizeFilter}. */
export interface SanitizeFilterOptions {
  /**
   * Query operators your own code puts in filters (`$in`, `$gt`, `$or`…). Every other `$` key is refused, wherever
   * it is. `$where`, `$expr`, `$function` and `$accumulator` are refused even when listed. List `$regex` to accept
   * regular-expression values too. Default: none, so only plain equality filters pass.
   */
  allowOperators?: readonly string[];
  /**
   * Deepest nesting of objects and arrays accepted, the filter itself being level 1. Default 32: deeper input is
   * a denial-of-service attempt, not a query.
   */
  maxDepth?: number;
}

const DEFAULT_MAX_DEPTH = 32;

interface Rules {
  allowed: ReadonlySet<string>;
  allowRegex: boolean;
  maxDepth: number;
}

// The bson package stamps every value it creates with this symbol; JSON.parse can write `_bsontype` but never a symbol.
const BSON_VERSION = Symbol.for('@@mdb.bson.version');

function bsonType(value: object): string | undefined {
  const type = (value as { _bsontype?: unknown })._bsontype;
  return typeof type === 'string' ? type : undefined;
}

function joinPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function refuse(path: string, why: string): never {
  throw new UnsafeFilterError(`Unsafe filter at "${path}": ${why}`, path);
}

function checkValue(value: unknown, path: string, depth: number, rules: Rules): void {
  if (value === null || value === undefined) return;
  const type = typeof value;
  if (type === 'string' || type === 'number' || type === 'boolean' || type === 'bigint') return;
  if (type === 'function' || type === 'symbol') {
    refuse(path, `a ${type} is not a value a filter can hold.`);
  }
  const object = value as object;
  if (object instanceof Date || ArrayBuffer.isView(object)) return;
  if (object instanceof RegExp) {
    if (!rules.allowRegex)
      refuse(
        path,
        'a regular expression matches many values; list "$regex" in allowOperators to accept one.',
      );
    return;
  }
  const bson = bsonType(object);
  if (bson !== undefined && !(BSON_VERSION in object)) {
    // Parsed input posing as a BSON value, such as { _bsontype: 'ObjectId', $where: … }: its keys would otherwise go
    // unchecked, and the serializer would refuse it later with an untyped error.
    refuse(path, 'an object with _bsontype that the bson package did not create is a forged BSON value.');
  }
  if (bson !== undefined) {
    if (bson === 'BSONRegExp' && !rules.allowRegex) {
      refuse(
        path,
        'a regular expression matches many values; list "$regex" in allowOperators to accept one.',
      );
    }
    if (bson === 'Code') refuse(path, 'JavaScript code is not accepted in a filter.');
    return;
  }
  if (depth >= rules.maxDepth) refuse(path, `nested deeper than ${rules.maxDepth} levels.`);
  // The BSON serializer calls toBSON() and writes what it returns, unchecked here: not a value from user input.
  if (typeof (object as { toBSON?: unknown }).toBSON === 'function') {
    refuse(path, 'an object with toBSON() is serialized as whatever it returns; pass plain values.');
  }
  // A Map is serialized as a document of its entries, so its keys are checked like an object's.
  if (object instanceof Map) {
    const entries: Record<string, unknown> = {};
    for (const [key, value] of object) {
      if (typeof key !== 'string') refuse(path, 'a Map with non-string keys cannot be a filter.');
      entries[key] = value;
    }
    checkKeys(entries, path, depth + 1, rules);
    return;
  }
  if (Array.isArray(object)) {
    for (let index = 0; index < object.length; index++) {
      checkValue(object[index], joinPath(path, String(index)), depth + 1, rules);
    }
    return;
  }
  checkKeys(object as Record<string, unknown>, path, depth + 1, rules);
}

function checkKeys(object: Record<string, unknown>, path: string, depth: number, rules: Rules): void {
  for (const key of Object.keys(object)) {
    const keyPath = joinPath(path, key);
    if (key.startsWith('$')) {
      if (FORBIDDEN_OPERATORS.has(key)) {
        refuse(keyPath, `${key} runs code on the server and is never accepted.`);
      }
      if (!rules.allowed.has(key)) {
        refuse(
          keyPath,
          `the operator ${key} is not in allowOperators; user input must hold values, not operators.`,
        );
      }
    } else if (key.includes('\u0000')) {
      refuse(keyPath, 'field names must not contain NUL.');
    }
    checkValue(object[key], keyPath, depth, rules);
  }
}

/**
 * Refuses operator injection in a filter built from user input: `$where`, `$expr`, `$function`, `$accumulator`, and
 * any `$` key (at any depth) that `allowOperators` does not list, such as `{ email: { $ne: null } }` arriving where
 * an email string was expected. Regular expressions and JavaScript code values are refused too. Returns the same
 * filter, unchanged, so it can wrap the argument inline. Throws `UnsafeFilterError` (`E_UNSAFE_FILTER`) whose
 * message and `path` name the key, never the value.
 * @example
 * await patients.findOne(sanitizeFilter({ email: request.body.email }));
 * await patients.find(sanitizeFilter({ status: { $in: statuses } }, { allowOperators: ['$in'] }));
 */
export function sanitizeFilter<T>(filter: T, options: SanitizeFilterOptions = {}): T {
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    throw new MongoArgumentError('sanitizeFilter expects a filter object such as { email: "a@b.c" }.');
  }
  const allowed = options.allowOperators ?? [];
  if (
    !Array.isArray(allowed) ||
    allowed.some((operator) => typeof operator !== 'string' || !operator.startsWith('$'))
  ) {
    throw new MongoArgumentError('allowOperators must be an array of operator names such as ["$in", "$gt"].');
  }
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 1) {
    throw new MongoArgumentError('maxDepth must be a positive integer.');
  }
  const rules: Rules = { allowed: new Set(allowed), allowRegex: allowed.includes('$regex'), maxDepth };
  // Through checkValue, so a Map or an object with toBSON() is handled at the top level as it is below.
  checkValue(filter, '', 0, rules);
  return filter;
}
