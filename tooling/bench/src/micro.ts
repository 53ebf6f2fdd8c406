import { GCProfiler } from 'node:v8';
import type { MicroMeasurement, PreparedMicroCase } from './types.js';

/*
 * How a micro case is measured, inside its own worker process:
 *
 * - Time: batches of `batchSize` operations timed with hrtime; a round reports the median batch's ns per operation,
 *   so a batch cut by preemption (2 shared cores) or by a garbage collection is an outlier, not the figure. The
 *   batch size is grown during the first warm-up until one batch takes about BATCH_TARGET_NS, which makes the
 *   timer's own cost (~50 ns) negligible. The process runs with V8's default heap sizes, as production does: the
 *   collections an allocating case causes are part of its cost, at the rate production would see them.
 * - Allocation: after a full gc(), a batch runs between two readings of the heap, while a v8 GCProfiler watches; a
 *   batch during which any collection ran is thrown away and retried smaller (a collection would free bytes and make
 *   the difference meaningless). Three clean batches are taken and the smallest figure kept: extra bytes come only
 *   from one-off work (lazy compilation, the profiler's first start), never from the case, so the minimum is the
 *   case's own allocation. ArrayBuffer backing stores (where Buffers live) are read the same way; for that figure
 *   to hold, the process runs with MICRO_V8_FLAGS: V8 otherwise frees the previous batch's dead buffers on a
 *   background thread while the next batch runs, and the counter went down by what was freed (1,000 Buffers of
 *   2 KiB read as 0-2,048 bytes each, at random). With the flag, those frees happen inside gc() instead.
 */

export const MICRO_V8_FLAGS = ['--no-concurrent-array-buffer-sweeping'] as const;

const BATCH_TARGET_NS = 2_000_000;
const MAX_BATCH = 1 << 24;
const ALLOCATION_BATCH = 10_000;
const ALLOCATION_SAMPLES = 3;
const ALLOCATION_ATTEMPTS = 12;

// Results go here so no operation's work can be optimised away as unused.
let sink: unknown;

/** The last operation's result: read by nobody, but readable, so V8 must keep computing it. */
export function lastResult(): unknown {
  return sink;
}
let next = 0;

const gc = (globalThis as { gc?: () => void }).gc;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

export class MicroRunner {
  private batchSize = 1;
  private warmed = false;

  private constructor(
    private readonly prepared: PreparedMicroCase,
    private readonly isAsync: boolean,
  ) {}

  static async create(prepared: PreparedMicroCase): Promise<MicroRunner> {
    const first = prepared.run(next++);
    const isAsync = isThenable(first);
    if (isAsync) await first;
    return new MicroRunner(prepared, isAsync);
  }

  /** Runs `count` operations; returns elapsed nanoseconds. */
  private async batch(count: number): Promise<number> {
    const { prepared } = this;
    const first = next;
    const end = first + count;
    const start = process.hrtime.bigint();
    if (this.isAsync) {
      for (let i = first; i < end; i++) sink = await prepared.run(i);
    } else {
      for (let i = first; i < end; i++) sink = prepared.run(i);
    }
    const elapsed = Number(process.hrtime.bigint() - start);
    // `i` stays a small integer: past 2^30 it would become a heap number and allocate on every operation.
    next = end % 0x40000000;
    return elapsed;
  }

  private async warmUp(durationMs: number): Promise<void> {
    const deadline = performance.now() + durationMs;
    while (performance.now() < deadline) {
      const elapsed = await this.batch(this.batchSize);
      if (!this.warmed && elapsed < BATCH_TARGET_NS) this.batchSize = Math.min(this.batchSize * 2, MAX_BATCH);
    }
    if (!this.warmed) {
      // Sized on optimised code: batches of the first warm-up ran partly in the interpreter.
      const elapsed = Math.max(1, await this.batch(this.batchSize));
      this.batchSize = Math.max(
        1,
        Math.min(MAX_BATCH, Math.round((this.batchSize * BATCH_TARGET_NS) / elapsed)),
      );
    }
    this.warmed = true;
  }

  private async allocation(): Promise<{ heap: number; external: number } | null> {
    let size = Math.min(ALLOCATION_BATCH, Math.max(this.batchSize, 100));
    const samples: Array<{ heap: number; external: number }> = [];
    for (let attempt = 0; attempt < ALLOCATION_ATTEMPTS && samples.length < ALLOCATION_SAMPLES; attempt++) {
      gc?.();
      const profiler = new GCProfiler();
      profiler.start();
      const before = process.memoryUsage();
      await this.batch(size);
      const after = process.memoryUsage();
      const collections = profiler.stop().statistics.length;
      if (collections === 0) {
        samples.push({
          heap: (after.heapUsed - before.heapUsed) / size,
          external: (after.arrayBuffers - before.arrayBuffers) / size,
        });
      } else if (size > 1) {
        size = Math.max(1, Math.floor(size / 4));
      }
    }
    if (samples.length === 0) return null;
    const round1 = (value: number) => Math.max(0, Math.round(value * 10) / 10);
    return {
      heap: round1(Math.min(...samples.map((sample) => sample.heap))),
      external: round1(Math.min(...samples.map((sample) => sample.external))),
    };
  }

  /** One round: a warm-up, timed batches for `durationMs`, then the allocation batches. */
  async round(durationMs: number, warmupMs: number): Promise<MicroMeasurement> {
    await this.warmUp(this.warmed ? warmupMs : Math.max(warmupMs, durationMs));
    gc?.();
    const perOp: number[] = [];
    let ops = 0;
    const deadline = performance.now() + durationMs;
    while (performance.now() < deadline || perOp.length < 5) {
      perOp.push((await this.batch(this.batchSize)) / this.batchSize);
      ops += this.batchSize;
    }
    perOp.sort((a, b) => a - b);
    const nsPerOp = perOp[Math.floor(perOp.length / 2)] ?? Number.NaN;
    const allocation = await this.allocation();
    return {
      ops,
      nsPerOp: Math.round(nsPerOp * 100) / 100,
      opsPerSec: Math.round(1e9 / nsPerOp),
      bytesPerOp: allocation?.heap ?? null,
      externalBytesPerOp: allocation?.external ?? null,
    };
  }

  async teardown(): Promise<void> {
    await this.prepared.teardown?.();
  }
}
