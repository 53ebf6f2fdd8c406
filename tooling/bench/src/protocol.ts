import type { BenchContext, Measurement } from './types.js';

/** Messages from the harness to a case's worker process. */
export type ToWorker =
  | { type: 'setup'; file: string; caseIndex: number; context: BenchContext }
  | { type: 'run'; ops: number; warmup: number; concurrency: number }
  | { type: 'stop' };

/** Replies from a worker process. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'result'; measurement: Measurement }
  | { type: 'stopped' }
  | { type: 'error'; message: string };
