import { describe, expect, it } from 'vitest';
import { buildSeriesLabels, labelValue } from '../src/labels.js';
import {
  assertOptions,
  metricName,
  normalizePrefix,
  validateBuckets,
  validateHelp,
  validateLabelName,
  validateLabelNames,
  validateMaxSeries,
  validateMetricName,
} from '../src/validation.js';

function failure(run: () => unknown): { code?: string; message: string; metricName?: string } {
  try {
    run();
  } catch (error) {
    return error as { code?: string; message: string; metricName?: string };
  }
  throw new Error('expected an error');
}

describe('metric names: every rule says what is wrong', () => {
  it.each([
    ['', 'counter', 'Invalid metric name: expected a non-empty string'],
    [
      'Req_total',
      'counter',
      'Invalid metric "Req_total": names must be lower-case snake_case: [a-z][a-z0-9_]*',
    ],
    ['a_total_', 'counter', 'Invalid metric "a_total_": names must not end with "_"'],
    [
      'redis_up',
      'gauge',
      'Invalid metric "redis_up": the name belongs to redis_exporter / mongodb_exporter; pick another',
    ],
    ['redis_commands_total', 'counter', 'the name belongs to redis_exporter'],
    ['mongodb_up', 'gauge', 'the name belongs to redis_exporter'],
    ['mongodb_ss_x', 'gauge', 'the name belongs to redis_exporter'],
    ['redis_exporter_x', 'gauge', 'the name belongs to redis_exporter'],
    ['mongodb_exporter_x', 'gauge', 'the name belongs to redis_exporter'],
    ['austa_requests', 'counter', 'Invalid metric "austa_requests": counter names must end with "_total"'],
    [
      'austa_requests_total',
      'gauge',
      'Invalid metric "austa_requests_total": gauge names must not end with "_total"',
    ],
    ['austa_x_bucket', 'histogram', '"_bucket" is reserved for histogram series'],
    ['austa_x_count', 'gauge', '"_count" is reserved for histogram series'],
    ['austa_x_sum', 'gauge', '"_sum" is reserved for histogram series'],
    ['austa_gauge_value', 'gauge', 'names must not contain the metric type "gauge"'],
    ['austa_wait_ms', 'gauge', 'abbreviated unit "ms"; spell out the base unit ("seconds", "bytes")'],
    ['austa_wait_minutes', 'gauge', 'use the base unit "seconds" instead of "minutes"'],
    ['austa_size_kilobytes', 'gauge', 'use the base unit "bytes" instead of "kilobytes"'],
    ['austa_size_megabits', 'gauge', 'use the base unit "bytes" instead of "megabits"'],
    [
      'austa_request_duration',
      'histogram',
      'a "duration" must be measured in seconds; add "_seconds" to the name',
    ],
    ['austa_latency_total', 'counter', 'a "latency" must be measured in seconds'],
  ])('%s as a %s', (name, type, message) => {
    const error = failure(() => validateMetricName(name, type as 'counter'));
    expect(error.code).toBe('E_INVALID_METRIC');
    expect(error.message).toContain(message);
  });

  it.each([
    ['austa_requests_total', 'counter'],
    ['austa_request_duration_seconds', 'histogram'],
    ['austa_payload_bytes', 'histogram'],
    ['austa_pool_connections', 'gauge'],
    ['austa_mass_grams', 'gauge'],
    ['austa_settings', 'gauge'],
  ])('accepts %s as a %s', (name, type) => {
    expect(() => validateMetricName(name, type as 'counter')).not.toThrow();
  });

  it('names the metric on the error', () => {
    expect(failure(() => validateMetricName('austa_x', 'counter')).metricName).toBe('austa_x');
  });
});

describe('help, labels, buckets, caps, prefixes and package names', () => {
  it('needs help text', () => {
    expect(failure(() => validateHelp('  ', 'm')).message).toBe(
      'Invalid metric "m": help must be a non-empty string (promtool flags metrics without help)',
    );
    expect(failure(() => validateHelp(undefined, 'm')).code).toBe('E_INVALID_METRIC');
    expect(() => validateHelp('ok', 'm')).not.toThrow();
  });

  it('checks label names', () => {
    expect(failure(() => validateLabelName('Bad', 'metric "m"')).message).toBe(
      'Invalid label name "Bad" in metric "m": label names must be lower-case snake_case',
    );
    expect(failure(() => validateLabelName('__x', 'm')).message).toBe(
      'Invalid label name "__x" in m: "__" is reserved',
    );
    expect(failure(() => validateLabelName('le', 'm')).message).toBe(
      'Invalid label name "le" in m: "le" is reserved for histograms and summaries',
    );
    expect(failure(() => validateLabelName('quantile', 'm')).code).toBe('E_INVALID_METRIC');
    expect(() => validateLabelName('_ok', 'm')).not.toThrow();
    expect(failure(() => validateLabelNames('x' as never, 'm')).message).toBe(
      'Invalid metric "m": labelNames must be an array of strings',
    );
    expect(failure(() => validateLabelNames(['a', 'a'], 'm')).message).toBe(
      'Invalid metric "m": label "a" is listed twice',
    );
    expect(validateLabelNames(undefined, 'm')).toEqual([]);
    expect(Object.isFrozen(validateLabelNames(['a'], 'm'))).toBe(true);
  });

  it('checks buckets', () => {
    expect(failure(() => validateBuckets([], 'm')).message).toBe(
      'Invalid metric "m": buckets must be a non-empty array of numbers',
    );
    expect(failure(() => validateBuckets([1, Number.POSITIVE_INFINITY], 'm')).message).toBe(
      'Invalid metric "m": bucket Infinity is not a finite number (+Inf is always added)',
    );
    expect(failure(() => validateBuckets([1, 1], 'm')).message).toBe(
      'Invalid metric "m": buckets must be strictly increasing',
    );
    expect(validateBuckets([0.1, 1], 'm')).toEqual([0.1, 1]);
  });

  it('checks caps', () => {
    expect(failure(() => validateMaxSeries(0, 'x')).message).toBe(
      'Invalid maxSeries 0 for x: expected a positive integer or Infinity',
    );
    expect(failure(() => validateMaxSeries(1.5, 'x')).code).toBe('E_INVALID_METRIC');
    expect(failure(() => validateMaxSeries('5', 'x')).code).toBe('E_INVALID_METRIC');
    expect(validateMaxSeries(Number.POSITIVE_INFINITY, 'x')).toBe(Number.POSITIVE_INFINITY);
    expect(validateMaxSeries(1, 'x')).toBe(1);
  });

  it('normalises prefixes', () => {
    expect(normalizePrefix(undefined)).toBe('');
    expect(normalizePrefix('')).toBe('');
    expect(normalizePrefix('billing')).toBe('billing_');
    expect(normalizePrefix('billing_')).toBe('billing_');
    expect(failure(() => normalizePrefix('Billing')).message).toBe(
      'Invalid prefix "Billing": expected lower-case snake_case such as "billing" or "billing_"',
    );
    expect(failure(() => normalizePrefix('billing__')).code).toBe('E_INVALID_METRIC');
    expect(failure(() => normalizePrefix('billing x')).code).toBe('E_INVALID_METRIC');
    expect(failure(() => normalizePrefix(5)).code).toBe('E_INVALID_METRIC');
  });

  it('builds package metric names', () => {
    expect(metricName('rate-limit', 'decisions_total')).toBe('austa_rate_limit_decisions_total');
    expect(failure(() => metricName('Rate', 'x')).message).toBe(
      'Invalid package name "Rate": expected lower-case words joined by "-" or "_"',
    );
    expect(failure(() => metricName('cache', '')).message).toBe(
      'Invalid metric suffix "" for package "cache": expected snake_case such as "requests_total"',
    );
    expect(failure(() => metricName('cache', '_x')).code).toBe('E_INVALID_METRIC');
    expect(failure(() => metricName('cache', 5 as never)).code).toBe('E_INVALID_METRIC');
  });

  it('needs an options object', () => {
    expect(failure(() => assertOptions(null, 'counter')).message).toBe(
      'counter() expects an options object with name and help',
    );
    expect(failure(() => assertOptions('x', 'gauge')).code).toBe('E_INVALID_METRIC');
    expect(() => assertOptions({}, 'gauge')).not.toThrow();
  });
});

describe('label values', () => {
  it('exports strings as they are, numbers and booleans in decimal, and absent labels as empty', () => {
    expect(labelValue('x')).toBe('x');
    expect(labelValue('')).toBe('');
    expect(labelValue(5)).toBe('5');
    expect(labelValue(true)).toBe('true');
    expect(labelValue(undefined)).toBe('');
    expect(labelValue(null)).toBe('');
  });

  it('builds frozen series labels in the instrument order, and refuses what cannot be a label', () => {
    const labels = buildSeriesLabels(['a', 'b'], { b: 2, a: 'x' }, 'm');
    expect(Object.keys(labels)).toEqual(['a', 'b']);
    expect(labels).toEqual({ a: 'x', b: '2' });
    expect(Object.isFrozen(labels)).toBe(true);
    expect(buildSeriesLabels(['a'], undefined, 'm')).toEqual({ a: '' });
    expect(buildSeriesLabels(['a'], { a: null }, 'm')).toEqual({ a: '' });
    expect(buildSeriesLabels(['a'], { a: false }, 'm')).toEqual({ a: 'false' });
    const unknown = failure(() => buildSeriesLabels(['a', 'b'], { c: 'x' }, 'm'));
    expect(unknown).toMatchObject({
      code: 'E_INVALID_LABELS',
      message: 'Unknown label "c" for "m"; its label names are [a, b]',
      metricName: 'm',
    });
    const object = failure(() => buildSeriesLabels(['a'], { a: {} }, 'm'));
    expect(object).toMatchObject({
      code: 'E_INVALID_LABELS',
      message: 'Label "a" of "m" must be a string, number or boolean, got object',
      metricName: 'm',
    });
    expect(failure(() => buildSeriesLabels(['a'], 'x' as never, 'm'))).toMatchObject({
      code: 'E_INVALID_LABELS',
      message: 'Labels for "m" must be an object',
      metricName: 'm',
    });
  });
});

describe('unit words: each listed spelling is refused, with the base unit to use', () => {
  it.each([
    's',
    'sec',
    'secs',
    'ms',
    'us',
    'ns',
    'm',
    'h',
    'hr',
    'hrs',
    'd',
    'b',
    'kb',
    'mb',
    'gb',
    'tb',
    'pb',
  ])('abbreviated unit %s', (unit) => {
    expect(failure(() => validateMetricName(`austa_wait_${unit}`, 'gauge')).message).toBe(
      `Invalid metric "austa_wait_${unit}": abbreviated unit "${unit}"; spell out the base unit ("seconds", "bytes")`,
    );
  });

  it.each([
    ['minutes', 'seconds'],
    ['hours', 'seconds'],
    ['days', 'seconds'],
    ['weeks', 'seconds'],
    ['bits', 'bytes'],
  ])('%s, which is not a base unit', (unit, base) => {
    expect(failure(() => validateMetricName(`austa_wait_${unit}`, 'gauge')).message).toBe(
      `Invalid metric "austa_wait_${unit}": use the base unit "${base}" instead of "${unit}"`,
    );
  });

  it.each([
    'seconds',
    'bytes',
    'meters',
    'metres',
    'grams',
    'joules',
    'volts',
    'amperes',
    'celsius',
    'kelvin',
  ])('a scaled %s, while the plain base unit passes', (unit) => {
    expect(() => validateMetricName(`austa_reading_${unit}`, 'gauge')).not.toThrow();
    expect(failure(() => validateMetricName(`austa_reading_milli${unit}`, 'gauge')).message).toBe(
      `Invalid metric "austa_reading_milli${unit}": use the base unit "${unit}" instead of "milli${unit}"`,
    );
  });

  it('checks every scale prefix, not only the first that matches the start of a word', () => {
    // "deca" comes after "deci" in the list, so the loop must go on past a prefix that does not match.
    expect(failure(() => validateMetricName('austa_wait_decaseconds', 'gauge')).message).toBe(
      'Invalid metric "austa_wait_decaseconds": use the base unit "seconds" instead of "decaseconds"',
    );
    expect(failure(() => validateMetricName('austa_wait_kilominutes', 'gauge')).message).toBe(
      'Invalid metric "austa_wait_kilominutes": use the base unit "seconds" instead of "kilominutes"',
    );
    // A word that starts like a prefix but names no unit is an ordinary word.
    expect(() => validateMetricName('austa_microservice_requests_total', 'counter')).not.toThrow();
    expect(() => validateMetricName('austa_kilometer_reading', 'gauge')).not.toThrow();
    // Only a word that starts with a prefix is split: "four" is as long as "pico" but is no prefix.
    expect(() => validateMetricName('austa_reading_fourseconds', 'gauge')).not.toThrow();
  });

  it.each(['counter', 'gauge', 'histogram', 'summary'])('the metric type word %s', (word) => {
    expect(failure(() => validateMetricName(`austa_${word}_value`, 'gauge')).message).toBe(
      `Invalid metric "austa_${word}_value": names must not contain the metric type "${word}"`,
    );
  });

  it.each(['duration', 'latency', 'elapsed'])('the time word %s without seconds', (word) => {
    expect(failure(() => validateMetricName(`austa_request_${word}`, 'gauge')).message).toBe(
      `Invalid metric "austa_request_${word}": a "${word}" must be measured in seconds; add "_seconds" to the name`,
    );
    expect(() => validateMetricName(`austa_request_${word}_seconds`, 'gauge')).not.toThrow();
  });
});

describe('values that are not strings or numbers', () => {
  it('refuses a metric name that is not a string', () => {
    expect(failure(() => validateMetricName(42, 'gauge')).message).toBe(
      'Invalid metric name: expected a non-empty string',
    );
  });

  it('refuses a label name that is not a string, naming the metric', () => {
    expect(failure(() => validateLabelName(7, 'm')).message).toBe(
      'Invalid label name 7 in m: label names must be lower-case snake_case',
    );
    // An array whose text is a valid label name must not slip through.
    expect(failure(() => validateLabelName(['a'], 'm')).message).toBe(
      'Invalid label name ["a"] in m: label names must be lower-case snake_case',
    );
    expect(failure(() => validateLabelNames(['ok', 'Bad'], 'austa_x')).message).toBe(
      'Invalid label name "Bad" in metric "austa_x": label names must be lower-case snake_case',
    );
  });

  it('refuses a bucket that is not a number', () => {
    expect(failure(() => validateBuckets([0.1, '1' as never], 'm')).message).toBe(
      'Invalid metric "m": bucket 1 is not a finite number (+Inf is always added)',
    );
    expect(failure(() => validateBuckets([Number.NaN], 'm')).message).toContain('bucket NaN');
  });

  it('refuses a cap that is a numeric string or a boolean', () => {
    expect(failure(() => validateMaxSeries('5', 'x')).message).toBe(
      'Invalid maxSeries 5 for x: expected a positive integer or Infinity',
    );
    expect(failure(() => validateMaxSeries(true, 'x')).code).toBe('E_INVALID_METRIC');
  });

  it('refuses a prefix or package name that is not a string, or has a trailing dash', () => {
    expect(failure(() => normalizePrefix(['billing'])).message).toBe(
      'Invalid prefix ["billing"]: expected lower-case snake_case such as "billing" or "billing_"',
    );
    expect(failure(() => metricName(['cache'] as never, 'x_total')).message).toBe(
      'Invalid package name ["cache"]: expected lower-case words joined by "-" or "_"',
    );
    expect(failure(() => metricName('cache-', 'x_total')).code).toBe('E_INVALID_METRIC');
    expect(failure(() => metricName('cache x', 'x_total')).code).toBe('E_INVALID_METRIC');
  });
});
