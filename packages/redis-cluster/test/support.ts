import type { Metrics } from '@austa/metrics';

/** Reads one sample from the exposition text; 0 when the series does not exist yet. */
export async function sample(
  metrics: Metrics,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const text = await metrics.text();
  const wanted = Object.entries(labels);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const matches = wanted.every(([key, value]) => line.includes(`${key}="${value}"`));
    if (matches) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

/** How many times a Redis command was measured with the given error type ('' for success). */
export function measured(metrics: Metrics, operation: string, errorType = ''): Promise<number> {
  return sample(metrics, 'db_client_operation_duration_seconds_count', {
    db_system_name: 'redis',
    db_operation_name: operation,
    error_type: errorType,
  });
}

export async function eventually<T>(
  check: () => Promise<T>,
  accept: (value: T) => boolean,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await check();
  while (!accept(last)) {
    if (Date.now() > deadline) return last;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    last = await check();
  }
  return last;
}
