import type { Metrics } from '@austa/metrics';

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * Sums the samples of `name` whose labels include every label in `labels` (exact values), from the registry's
 * exposition text. 0 when no series matches, the way Prometheus reads an absent counter.
 */
export async function sample(
  metrics: Metrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await metrics.text();
  let total = 0;
  for (const line of text.split('\n')) {
    const match = SAMPLE.exec(line);
    if (!match || match[1] !== name) continue;
    const found = new Map<string, string>();
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL)) found.set(key as string, value as string);
    if (Object.entries(labels).every(([key, value]) => found.get(key) === value)) total += Number(match[3]);
  }
  return total;
}

/** The number of observations of a histogram series: its `_count` sample. */
export function observations(
  metrics: Metrics,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  return sample(metrics, `${name}_count`, labels);
}

/** Polls an async check until it holds, failing after `timeoutMs`: waits for a condition, never a fixed time. */
export async function untilAsync(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
