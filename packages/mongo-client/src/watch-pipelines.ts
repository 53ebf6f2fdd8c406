import type { Document } from 'mongodb';
import { MongoArgumentError } from './errors.js';
import { assertFieldPaths, createFieldMatcher } from './field-paths.js';

/** Change event types `watchOperations` accepts. `invalidate` is always received and handled by `onInvalidate`. */
export type ChangeOperationType =
  | 'insert'
  | 'update'
  | 'replace'
  | 'delete'
  | 'drop'
  | 'rename'
  | 'dropDatabase'
  | 'createIndexes'
  | 'dropIndexes'
  | 'modify'
  | 'create'
  | 'shardCollection'
  | 'refineCollectionShardKey'
  | 'reshardCollection';

const DATA_EVENTS: ReadonlySet<string> = new Set([
  'insert',
  'update',
  'replace',
  'delete',
  'drop',
  'rename',
  'dropDatabase',
]);
// These arrive only with `showExpandedEvents: true`.
const EXPANDED_EVENTS: ReadonlySet<string> = new Set([
  'createIndexes',
  'dropIndexes',
  'modify',
  'create',
  'shardCollection',
  'refineCollectionShardKey',
  'reshardCollection',
]);

/** Every event type of the change-streams specification, `invalidate` included. */
export const CHANGE_EVENT_TYPES: ReadonlySet<string> = new Set([
  ...DATA_EVENTS,
  'invalidate',
  ...EXPANDED_EVENTS,
]);

export interface OperationsPipeline {
  pipeline: Document[];
  showExpandedEvents: boolean;
}

/**
 * `[{ $match: { operationType: { $in: [...operations, 'invalidate'] } } }]`. `invalidate` stays in so the stream
 * sees a drop or rename and applies its `onInvalidate` policy, instead of finding a closed cursor.
 */
export function operationsPipeline(operations: unknown): OperationsPipeline {
  if (!Array.isArray(operations) || operations.length === 0) {
    throw new MongoArgumentError(
      "watchOperations needs a non-empty array of operation types such as ['insert', 'update'].",
    );
  }
  let showExpandedEvents = false;
  for (const operation of operations) {
    if (operation === 'invalidate') {
      throw new MongoArgumentError(
        '"invalidate" is always received; choose what happens after it with the onInvalidate option.',
      );
    }
    if (EXPANDED_EVENTS.has(operation as string)) showExpandedEvents = true;
    else if (!DATA_EVENTS.has(operation as string)) {
      throw new MongoArgumentError(
        `Unknown change operation type ${JSON.stringify(operation)}; expected one of ${[...DATA_EVENTS, ...EXPANDED_EVENTS].join(', ')}.`,
      );
    }
  }
  const types = [...new Set(operations as string[]), 'invalidate'];
  return { pipeline: [{ $match: { operationType: { $in: types } } }], showExpandedEvents };
}

/** Options `watchFields` adds to the stream options. */
export interface WatchFieldsOptions {
  /** Also fire for inserts (a new document "touches" every field). Default `false`. */
  includeInserts?: boolean;
  /** Also fire for replacements (a replaced document may change any field). Default `false`. */
  includeReplaces?: boolean;
}

export interface FieldsWatch {
  pipeline: Document[];
  accept: (change: Document) => boolean;
}

/**
 * The server filters by operation type; the client checks the touched paths of each update
 * (`updatedFields`, `removedFields`, `truncatedArrays`) against the watched fields. Matching dotted paths with
 * array positions on the server would need `$expr` over `$objectToArray` for every event, which costs more there
 * than the check costs here (see the micro-benchmark).
 */
export function fieldsWatch(fields: unknown, options: WatchFieldsOptions = {}): FieldsWatch {
  assertFieldPaths(fields);
  const touched = createFieldMatcher(fields);
  const types = ['update'];
  if (options.includeInserts) types.push('insert');
  if (options.includeReplaces) types.push('replace');
  types.push('invalidate');
  return {
    pipeline: [{ $match: { operationType: { $in: types } } }],
    // An update without an updateDescription cannot be judged: it is delivered, never silently skipped.
    accept: (change) =>
      change.operationType !== 'update' ||
      typeof change.updateDescription !== 'object' ||
      change.updateDescription === null ||
      touched(change.updateDescription),
  };
}
