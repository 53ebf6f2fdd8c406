import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  type BoundHistogram,
  type Counter,
  createMetrics,
  type DbOperationLabel,
  type Histogram,
  NOOP_SERIES,
} from '../src/index.js';

describe('types', () => {
  it('label names given to an instrument type its bind() and convenience methods', () => {
    const metrics = createMetrics();
    const counter = metrics.counter({
      name: 'austa_t_ops_total',
      help: 'h',
      labelNames: ['cache', 'result'],
    });
    expectTypeOf(counter).toEqualTypeOf<Counter<'cache' | 'result'>>();
    counter.bind({ cache: 'a', result: 'hit' }).inc();
    counter.inc({ result: 'miss' }, 2);
    // @ts-expect-error user is not a label of this counter
    expect(() => counter.inc({ user: 'u1' })).toThrow();
    expectTypeOf(metrics.operationDuration()).toEqualTypeOf<Histogram<DbOperationLabel>>();
  });

  it('NOOP_SERIES fits wherever a bound series does', () => {
    const handle: BoundHistogram = NOOP_SERIES;
    handle.observe(1);
    // Packages often type what they keep structurally; a counter must fit such a type.
    const counter: { bind(labels: Record<string, string>): { inc(value?: number): void } } =
      createMetrics().counter({
        name: 'austa_u_ops_total',
        help: 'h',
        labelNames: ['client', 'type'],
      });
    counter.bind({ client: 'c', type: 'moved' }).inc();
  });
});
