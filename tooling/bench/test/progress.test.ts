import { describe, expect, it } from 'vitest';
import { formatDuration, Progress, TimeLeft } from '../src/progress.js';

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, write: (text: string) => chunks.push(text) } };
}

describe('TimeLeft', () => {
  it('uses the guesses until runs are measured, then the measured mean of each kind', () => {
    const timeLeft = new TimeLeft({ micro: 300, redis: 2_000 });
    timeLeft.plan('micro', 10);
    timeLeft.plan('redis', 4);
    expect(timeLeft.estimateMs()).toBe(10 * 300 + 4 * 2_000);
    timeLeft.record('redis', 1_000);
    timeLeft.record('redis', 3_000);
    expect(timeLeft.estimateMs()).toBe(10 * 300 + 2 * 2_000);
    for (let run = 0; run < 10; run++) timeLeft.record('micro', 100);
    expect(timeLeft.estimateMs()).toBe(2 * 2_000);
    expect(timeLeft.describe()).toBe('~4s left');
  });

  it('says it is estimating while a kind has runs left and neither a measurement nor a guess', () => {
    const timeLeft = new TimeLeft();
    timeLeft.plan('redis', 1);
    expect(timeLeft.estimateMs()).toBeUndefined();
    expect(timeLeft.describe()).toBe('time left: estimating');
  });

  it('formats durations in seconds, minutes and hours', () => {
    expect(formatDuration(4_400)).toBe('4s');
    expect(formatDuration(250_000)).toBe('4m10s');
    expect(formatDuration(2 * 3_600_000 + 5 * 60_000)).toBe('2h05m');
  });
});

describe('Progress', () => {
  it('writes one line per round with each case and its figure when stderr is not a terminal (turbo, CI)', () => {
    const { chunks, stream } = sink(false);
    const timeLeft = new TimeLeft({ redis: 1_000 });
    timeLeft.plan('redis', 2);
    const progress = new Progress('@austa/cache', timeLeft, stream);
    progress.caseStarting('standalone GET', 0, 12, 0, 2, 'ioredis');
    progress.roundDone('standalone GET', 0, 12, ['ioredis 61.2k ops/s', '@austa/cache 58.3k ops/s']);
    expect(chunks).toEqual([
      '[bench] @austa/cache standalone GET · round 1/12: ioredis 61.2k ops/s · @austa/cache 58.3k ops/s · ~2s left\n',
    ]);
  });

  it('rewrites one line per case on a terminal and erases it before other output', () => {
    const { chunks, stream } = sink(true);
    const progress = new Progress('@austa/cache', new TimeLeft(), stream);
    progress.caseStarting('cluster SET', 2, 12, 1, 3, '@austa/cache');
    progress.roundDone('cluster SET', 2, 12, ['ignored on a terminal']);
    progress.note('[bench] done');
    expect(chunks).toEqual([
      '\r\x1b[K[bench] @austa/cache cluster SET · round 3/12 · case 2/3 @austa/cache · ~0s left',
      '\r\x1b[K',
      '[bench] done\n',
    ]);
  });
});
