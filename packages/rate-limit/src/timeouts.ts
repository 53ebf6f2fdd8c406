/** Something waiting for Redis that must be answered by `deadline` (monotonic ms) at the latest. */
export interface Waiter {
  readonly deadline: number;
  /** True once answered, by Redis or by `expire`. */
  settled: boolean;
  /** Called once the deadline passed without an answer. */
  expire(): void;
}

/**
 * Per-call timeouts without a timer per call. Every check of a limiter waits the same `timeoutMs`, so deadlines
 * arrive in the order the checks were sent: a FIFO queue and one timer, armed for the oldest unanswered check, cover
 * them all. Answered checks are skipped when the timer reaches them. (A `setTimeout` and `clearTimeout` per check
 * cost several percent of throughput in the benchmark.)
 */
export class TimeoutQueue {
  private items: Array<Waiter | undefined> = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;

  add(waiter: Waiter): void {
    // Drop the answered checks at the head now rather than when the timer next fires: kept for up to `timeoutMs`,
    // tens of thousands of them would outlive the young generation and make every garbage collection a major one.
    const items = this.items;
    let head = this.head;
    while (head < items.length && (items[head] as Waiter).settled) {
      items[head] = undefined;
      head += 1;
    }
    if (head === items.length) {
      items.length = 0;
      head = 0;
    } else if (head > 1024 && head * 2 > items.length) {
      this.items = items.slice(head);
      head = 0;
    }
    this.head = head;
    this.items.push(waiter);
    if (this.timer === undefined) this.arm(waiter.deadline);
  }

  /** Entries held: the calls in flight, plus answered ones not dropped yet. */
  get size(): number {
    return this.items.length - this.head;
  }

  /** Answers every waiting call now (used by `close()`). */
  expireAll(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const items = this.items;
    const head = this.head;
    this.items = [];
    this.head = 0;
    for (let i = head; i < items.length; i++) {
      const waiter = items[i];
      if (waiter !== undefined && !waiter.settled) waiter.expire();
    }
  }

  private arm(deadline: number): void {
    this.timer = setTimeout(this.fire, Math.max(0, deadline - performance.now()));
    // A pending check must not keep a process alive that has nothing else to do.
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    const now = performance.now();
    const items = this.items;
    while (this.head < items.length) {
      const waiter = items[this.head] as Waiter;
      if (!waiter.settled) {
        if (waiter.deadline > now) {
          this.arm(waiter.deadline);
          break;
        }
        waiter.expire();
      }
      items[this.head] = undefined;
      this.head += 1;
    }
    if (this.head === items.length) {
      items.length = 0;
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > items.length) {
      this.items = items.slice(this.head);
      this.head = 0;
    }
  };
}
