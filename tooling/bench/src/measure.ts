import type { Measurement, PreparedCase } from './types.js';

export type { Measurement };

export function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1);
  return sorted[Math.max(0, index)] ?? 0;
}

/**
 * Runs `ops` operations with `concurrency` callers in flight at all times, recording each latency.
 * Workers pull the next index from a shared counter, so a slow operation never idles the others.
 */
export async function measure(
  prepared: PreparedCase,
  ops: number,
  concurrency: number,
): Promise<Measurement> {
  const latencies = new Float64Array(ops);
  let next = 0;
  const worker = async () => {
    while (true) {
      const i = next++;
      if (i >= ops) return;
      const started = performance.now();
      await prepared.run(i);
      latencies[i] = performance.now() - started;
    }
  };
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort();
  const round = (value: number) => Math.round(value * 1000) / 1000;
  return {
    ops,
    opsPerSec: Math.round((ops / elapsedMs) * 1000),
    p50Ms: round(percentile(latencies, 0.5)),
    p99Ms: round(percentile(latencies, 0.99)),
    p999Ms: round(percentile(latencies, 0.999)),
    cpuUsPerOp: round((cpu.user + cpu.system) / ops),
  };
}
