import { MongoArgumentError } from './errors.js';

const MAX_FIELD_PATH_LENGTH = 1024;

/**
 * Throws `E_INVALID_ARGUMENT` unless `fields` is a non-empty list of dotted field paths (`status`, `address.city`,
 * `items.0.price`): no `$` (an operator or positional `$[]` is not a field), no empty segments, no NUL.
 */
export function assertFieldPaths(fields: unknown): asserts fields is readonly string[] {
  if (!Array.isArray(fields) || fields.length === 0) {
    throw new MongoArgumentError(
      "watchFields needs a non-empty array of field paths such as ['status', 'address.city'].",
    );
  }
  for (const field of fields) {
    if (typeof field !== 'string' || field.length === 0 || field.length > MAX_FIELD_PATH_LENGTH) {
      throw new MongoArgumentError(
        `Each watched field must be a non-empty dotted path of at most ${MAX_FIELD_PATH_LENGTH} characters.`,
      );
    }
    if (field.includes('$')) {
      throw new MongoArgumentError(
        `Watched field "${field}" contains "$": list plain field paths (items.price), not operators or positional paths ($, $[]).`,
      );
    }
    if (field.includes('\u0000') || field.split('.').some((segment) => segment.length === 0)) {
      throw new MongoArgumentError(`Watched field "${field}" has an empty segment or a NUL character.`);
    }
  }
}

function isIndex(path: string, start: number, end: number): boolean {
  if (start >= end) return false;
  for (let index = start; index < end; index++) {
    const code = path.charCodeAt(index);
    if (code < 48 || code > 57) return false;
  }
  return true;
}

function sameSegment(
  left: string,
  leftStart: number,
  leftEnd: number,
  right: string,
  rightStart: number,
): boolean {
  for (let index = leftStart; index < leftEnd; index++) {
    if (left.charCodeAt(index) !== right.charCodeAt(rightStart + index - leftStart)) return false;
  }
  return true;
}

/**
 * True when an update that touched `touched` (a key of `updatedFields`, an entry of `removedFields` or a truncated
 * array) may have changed the watched path `watched`:
 * - the same path, or a path under it (`address` is touched by `address.city`);
 * - a parent of it (`address.city` is touched by `$set: { address: {...} }`, which replaces the whole object);
 * - through array positions the watched path does not name: `items.price` is touched by `items.3.price` and by
 *   `items.3` (element 3 replaced), as a query on `items.price` matches any element. The first segment is always a
 *   field name (a document is never an array), so a top-level field named `0` is not skipped as a position.
 * Compares segment by segment without allocating, since it runs for every key of every update event.
 */
export function fieldPathTouched(watched: string, touched: string): boolean {
  // The first segment is a top-level field, never an array position: its first character decides most checks.
  if (watched.charCodeAt(0) !== touched.charCodeAt(0)) return false;
  const watchedLength = watched.length;
  const touchedLength = touched.length;
  let w = 0;
  let t = 0;
  while (true) {
    if (w >= watchedLength || t >= touchedLength) return true;
    let watchedEnd = watched.indexOf('.', w);
    if (watchedEnd < 0) watchedEnd = watchedLength;
    let touchedEnd = touched.indexOf('.', t);
    if (touchedEnd < 0) touchedEnd = touchedLength;
    if (watchedEnd - w === touchedEnd - t && sameSegment(watched, w, watchedEnd, touched, t)) {
      w = watchedEnd + 1;
      t = touchedEnd + 1;
    } else if (isIndex(touched, t, touchedEnd) && !isIndex(watched, w, watchedEnd)) {
      // An array position the watched path leaves open: step into the element.
      t = touchedEnd + 1;
    } else {
      return false;
    }
  }
}

/** The parts of an update event's `updateDescription` that name touched paths. */
export interface UpdateDescriptionLike {
  updatedFields?: Record<string, unknown> | null;
  removedFields?: readonly string[] | null;
  truncatedArrays?: ReadonlyArray<{ field: string }> | null;
}

/** Returns a predicate telling whether an update description touched any of `fields`. */
export function createFieldMatcher(
  fields: readonly string[],
): (update: UpdateDescriptionLike | undefined) => boolean {
  assertFieldPaths(fields);
  const watched = [...new Set(fields)];
  const count = watched.length;
  // Most touched paths of a typical update share no first character with any watched field: one table read
  // rules them out before any comparison. Characters past ASCII always take the full check.
  const firstCharacters = new Uint8Array(128);
  for (const field of watched) {
    const code = field.charCodeAt(0);
    if (code < 128) firstCharacters[code] = 1;
  }
  const touches = (path: unknown): boolean => {
    if (typeof path !== 'string') return false;
    const code = path.charCodeAt(0);
    if (code < 128 && firstCharacters[code] === 0) return false;
    for (let index = 0; index < count; index++) {
      if (fieldPathTouched(watched[index]!, path)) return true;
    }
    return false;
  };
  return (update) => {
    if (update === undefined || update === null) return false;
    const updated = update.updatedFields;
    if (updated) {
      const paths = Object.keys(updated);
      for (let index = 0; index < paths.length; index++) {
        if (touches(paths[index]!)) return true;
      }
    }
    const removed = update.removedFields;
    if (removed) {
      for (const path of removed) {
        if (touches(path)) return true;
      }
    }
    const truncated = update.truncatedArrays;
    if (truncated) {
      for (const entry of truncated) {
        if (touches(entry.field)) return true;
      }
    }
    return false;
  };
}
