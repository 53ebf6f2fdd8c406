import { describe, expect, it } from 'vitest';
import {
  AustaMetricsError,
  InvalidLabelsError,
  InvalidMetricError,
  MetricConflictError,
} from '../src/index.js';

describe('error classes', () => {
  it.each([
    [new InvalidMetricError('m'), 'InvalidMetricError', 'E_INVALID_METRIC'],
    [new InvalidLabelsError('m'), 'InvalidLabelsError', 'E_INVALID_LABELS'],
    [new MetricConflictError('m'), 'MetricConflictError', 'E_METRIC_CONFLICT'],
    [new AustaMetricsError('E_INVALID_METRIC', 'm'), 'AustaMetricsError', 'E_INVALID_METRIC'],
  ])('%s has its class name, which logs and stack traces show, and its code', (error, name, code) => {
    expect(error.name).toBe(name);
    expect(error.code).toBe(code);
    expect(String(error)).toBe(`${name}: m`);
  });

  it('carries a cause only when one is given, so logs do not show an empty one', () => {
    const cause = new Error('underlying');
    expect(new InvalidMetricError('m', { cause }).cause).toBe(cause);
    expect('cause' in new InvalidMetricError('m')).toBe(false);
    expect('cause' in new InvalidMetricError('m', { metricName: 'x' })).toBe(false);
  });

  it('isInstance is false, without throwing, for anything that is not an object', () => {
    for (const value of [undefined, null, 'E_INVALID_METRIC', 42, true]) {
      expect(AustaMetricsError.isInstance(value)).toBe(false);
      expect(InvalidMetricError.isInstance(value)).toBe(false);
    }
  });
});
