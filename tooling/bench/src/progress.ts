/*
 * Progress on stderr, so stdout stays JSON lines. On a terminal one line is rewritten in place for every case run;
 * elsewhere (turbo pipes task output, CI logs) one line is written per round, with each case's figure of that round,
 * so a log shows both that the run is alive and roughly what it is finding.
 */

export type UnitKind = 'micro' | 'redis';

interface Writable {
  write(text: string): unknown;
  isTTY?: boolean;
}

export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/** A rough time left: the measured mean duration of each kind of case run times the runs left of that kind. */
export class TimeLeft {
  private readonly planned: Record<UnitKind, number> = { micro: 0, redis: 0 };
  private readonly done: Record<UnitKind, number> = { micro: 0, redis: 0 };
  private readonly spentMs: Record<UnitKind, number> = { micro: 0, redis: 0 };

  /** `guessMs`: a duration per run to use until one has been measured (micro runs have a known length). */
  constructor(private readonly guessMs: Partial<Record<UnitKind, number>> = {}) {}

  plan(kind: UnitKind, runs: number): void {
    this.planned[kind] += runs;
  }

  record(kind: UnitKind, ms: number): void {
    this.done[kind] += 1;
    this.spentMs[kind] += ms;
  }

  /** Milliseconds left, or undefined while a kind with runs left has neither a measurement nor a guess. */
  estimateMs(): number | undefined {
    let total = 0;
    for (const kind of ['micro', 'redis'] as const) {
      const left = this.planned[kind] - this.done[kind];
      if (left <= 0) continue;
      const mean = this.done[kind] > 0 ? this.spentMs[kind] / this.done[kind] : this.guessMs[kind];
      if (mean === undefined) return undefined;
      total += left * mean;
    }
    return total;
  }

  describe(): string {
    const ms = this.estimateMs();
    return ms === undefined ? 'time left: estimating' : `~${formatDuration(ms)} left`;
  }
}

export class Progress {
  private lineShown = false;

  constructor(
    private readonly packageName: string,
    readonly timeLeft: TimeLeft,
    private readonly stream: Writable = process.stderr,
  ) {}

  private get live(): boolean {
    return this.stream.isTTY === true;
  }

  /** Message lines (settings, which Redis) and the final table. */
  note(text: string): void {
    this.clear();
    this.stream.write(`${text}\n`);
  }

  /** Before a case runs: rewrites the live line on a terminal, silent elsewhere. */
  caseStarting(
    where: string,
    round: number,
    rounds: number,
    position: number,
    count: number,
    lib: string,
  ): void {
    if (!this.live) return;
    const text = `[bench] ${this.packageName} ${where} · round ${round + 1}/${rounds} · case ${position + 1}/${count} ${lib} · ${this.timeLeft.describe()}`;
    this.stream.write(`\r\x1b[K${text}`);
    this.lineShown = true;
  }

  /** After a round: one line with each case's figure in that round (not on a terminal, where the live line is). */
  roundDone(where: string, round: number, rounds: number, figures: string[]): void {
    if (this.live) return;
    this.stream.write(
      `[bench] ${this.packageName} ${where} · round ${round + 1}/${rounds}: ${figures.join(' · ')} · ${this.timeLeft.describe()}\n`,
    );
  }

  /** Erases the live line, so that stdout lines written next start on a clean line. */
  clear(): void {
    if (this.lineShown) this.stream.write('\r\x1b[K');
    this.lineShown = false;
  }
}
