import { describe, expect, it } from 'vitest';
import { createMetrics } from '../src/index.js';

describe('counters', () => {
  it('only go up: negative, NaN and infinite amounts are dropped without throwing', async () => {
    const metrics = createMetrics();
    const counter = metrics.counter({ name: 'austa_guard_total', help: 'h', labelNames: ['k'] });
    const bound = counter.bind({ k: 'a' });
    bound.inc(2);
    bound.inc(-5);
    bound.inc(Number.NaN);
    bound.inc(Number.POSITIVE_INFINITY);
    bound.inc(Number.NEGATIVE_INFINITY);
    counter.inc({ k: 'a' }, -1);
    bound.inc(0);
    bound.inc();
    expect(await metrics.text()).toContain('austa_guard_total{k="a"} 3');
  });
});
