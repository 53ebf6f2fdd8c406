import type { BenchContext, Measurement, MicroMeasurement } from './types.js';

/** Messages from the harness to a case's worker process. */
export type ToWorker =
  | { type: 'setup'; file: string; caseIndex: number; context: BenchContext }
  | { type: 'run'; ops: number; warmup: number; concurrency: number }
  | { type: 'setup-micro'; file: string; caseIndex: number }
  | { type: 'run-micro'; durationMs: number; warmupMs: number }
  | { type: 'stop' };

/** Replies from a worker process. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'result'; measurement: Measurement }
  | { type: 'micro-result'; measurement: MicroMeasurement }
  | { type: 'stopped' }
  | { type: 'error'; message: string };
