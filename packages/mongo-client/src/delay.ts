/**
 * Waits `ms` milliseconds unless `signal` aborts first. Resolves `true` after the full wait, `false` when aborted,
 * and leaves no timer behind either way, so `close()` never waits on a backoff.
 */
export function delay(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Exponential backoff with jitter: attempt 1 waits about `initialMs`, each next attempt about twice as long, capped
 * at `maxMs`. Half the delay is random, so many streams restarting after one failover do not reconnect in step.
 */
export function backoffMs(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
