/**
 * A circuit breaker per Redis shard (the standalone server, or one cluster master). After `failureThreshold`
 * consecutive failures (timeouts, closed connections, CLUSTERDOWN…) the shard is skipped for `openMs`: calls to it
 * degrade at once instead of each waiting for its timeout. Then one call goes through as a probe; its success closes
 * the breaker, its failure opens it again.
 */
export class Breaker {
  private failures = 0;
  private openUntil = 0;
  private probing = false;

  constructor(
    private readonly failureThreshold: number,
    private readonly openMs: number,
  ) {}

  /** Whether a call may go to the shard now. */
  allow(now: number): boolean {
    if (this.openUntil === 0) return true;
    if (now < this.openUntil || this.probing) return false;
    this.probing = true;
    return true;
  }

  /** Whether failures were counted since the last success (a success then has something to reset). */
  get failing(): boolean {
    return this.failures !== 0 || this.probing;
  }

  get open(): boolean {
    return this.openUntil !== 0;
  }

  success(): void {
    this.failures = 0;
    this.openUntil = 0;
    this.probing = false;
  }

  failure(now: number): void {
    this.probing = false;
    this.failures++;
    if (this.failures >= this.failureThreshold) this.openUntil = now + this.openMs;
  }
}
