import { BUCKETS, PACKAGE_METRIC_PREFIX } from './constants.js';
import { InvalidMetricError } from './errors.js';

/** The three instrument kinds, spelled as prom-client and the exposition format spell them. */
export type InstrumentType = 'counter' | 'gauge' | 'histogram';

// Stricter than Prometheus on purpose: lower-case snake_case only, and no ':' (reserved
// for recording rules), so every name also passes `promtool check metrics`.
const METRIC_NAME = /^[a-z][a-z0-9_]*$/;
const LABEL_NAME = /^[a-z_][a-z0-9_]*$/;
const PACKAGE_NAME = /^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$/;

const ABBREVIATED_UNITS = new Set([
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
]);
const BASE_UNITS = new Set([
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
]);
const NON_BASE_UNITS = new Map([
  ['minutes', 'seconds'],
  ['hours', 'seconds'],
  ['days', 'seconds'],
  ['weeks', 'seconds'],
  ['bits', 'bytes'],
]);
const SCALE_PREFIXES = [
  'pico',
  'nano',
  'micro',
  'milli',
  'centi',
  'deci',
  'deca',
  'hecto',
  'kilo',
  'kibi',
  'mega',
  'mebi',
  'giga',
  'gibi',
  'tera',
  'tebi',
  'peta',
  'pebi',
];
const TYPE_WORDS = new Set(['counter', 'gauge', 'histogram', 'summary']);
const TIME_WORDS = new Set(['duration', 'latency', 'elapsed']);
const RESERVED_LABELS = new Set(['le', 'quantile']);

// Users run redis_exporter and mongodb_exporter next to our services; sharing a name
// with them would silently merge two meanings in one PromQL query.
const EXPORTER_NAMES = new Set(['redis_up', 'redis_commands_total', 'mongodb_up']);
const EXPORTER_PREFIXES = ['mongodb_ss_', 'redis_exporter_', 'mongodb_exporter_'];

function invalid(metricName: string, message: string): InvalidMetricError {
  return new InvalidMetricError(`Invalid metric "${metricName}": ${message}`, { metricName });
}

function unitProblem(segment: string): string | undefined {
  if (ABBREVIATED_UNITS.has(segment)) {
    return `abbreviated unit "${segment}"; spell out the base unit ("seconds", "bytes")`;
  }
  const base = NON_BASE_UNITS.get(segment);
  if (base !== undefined) return `use the base unit "${base}" instead of "${segment}"`;
  for (const prefix of SCALE_PREFIXES) {
    if (!segment.startsWith(prefix)) continue;
    const unit = segment.slice(prefix.length);
    if (BASE_UNITS.has(unit)) return `use the base unit "${unit}" instead of "${segment}"`;
    const nonBase = NON_BASE_UNITS.get(unit);
    if (nonBase !== undefined) return `use the base unit "${nonBase}" instead of "${segment}"`;
  }
  return undefined;
}

/** Throws `E_INVALID_METRIC` unless `name` follows the naming rules for `type`. */
export function validateMetricName(name: unknown, type: InstrumentType): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidMetricError('Invalid metric name: expected a non-empty string');
  }
  if (!METRIC_NAME.test(name)) {
    throw invalid(name, 'names must be lower-case snake_case: [a-z][a-z0-9_]*');
  }
  if (name.endsWith('_')) throw invalid(name, 'names must not end with "_"');
  if (EXPORTER_NAMES.has(name) || EXPORTER_PREFIXES.some((prefix) => name.startsWith(prefix))) {
    throw invalid(name, 'the name belongs to redis_exporter / mongodb_exporter; pick another');
  }
  const isCounter = type === 'counter';
  if (isCounter && !name.endsWith('_total')) throw invalid(name, 'counter names must end with "_total"');
  if (!isCounter && name.endsWith('_total')) throw invalid(name, `${type} names must not end with "_total"`);
  for (const suffix of ['_bucket', '_count', '_sum']) {
    if (name.endsWith(suffix)) throw invalid(name, `"${suffix}" is reserved for histogram series`);
  }
  const segments = name.split('_');
  let hasSeconds = false;
  let timeWord: string | undefined;
  for (const segment of segments) {
    if (TYPE_WORDS.has(segment)) throw invalid(name, `names must not contain the metric type "${segment}"`);
    const problem = unitProblem(segment);
    if (problem !== undefined) throw invalid(name, problem);
    if (segment === 'seconds') hasSeconds = true;
    if (TIME_WORDS.has(segment)) timeWord = segment;
  }
  if (timeWord !== undefined && !hasSeconds) {
    throw invalid(name, `a "${timeWord}" must be measured in seconds; add "_seconds" to the name`);
  }
}

/** Throws `E_INVALID_METRIC` unless `help` is a non-empty string. */
export function validateHelp(help: unknown, metricName: string): asserts help is string {
  if (typeof help !== 'string' || help.trim().length === 0) {
    throw invalid(metricName, 'help must be a non-empty string (promtool flags metrics without help)');
  }
}

/** Checks one label name; `context` names the metric or option for the message. */
export function validateLabelName(labelName: unknown, context: string): asserts labelName is string {
  if (typeof labelName !== 'string' || !LABEL_NAME.test(labelName)) {
    throw new InvalidMetricError(
      `Invalid label name ${JSON.stringify(labelName)} in ${context}: label names must be lower-case snake_case`,
    );
  }
  if (labelName.startsWith('__')) {
    throw new InvalidMetricError(`Invalid label name "${labelName}" in ${context}: "__" is reserved`);
  }
  if (RESERVED_LABELS.has(labelName)) {
    throw new InvalidMetricError(
      `Invalid label name "${labelName}" in ${context}: "${labelName}" is reserved for histograms and summaries`,
    );
  }
}

/** Validates label names and returns a frozen copy in the caller's order. */
export function validateLabelNames<L extends string>(
  labelNames: readonly L[] | undefined,
  metricName: string,
): readonly L[] {
  if (labelNames === undefined) return Object.freeze([]);
  if (!Array.isArray(labelNames)) throw invalid(metricName, 'labelNames must be an array of strings');
  const seen = new Set<string>();
  for (const labelName of labelNames) {
    validateLabelName(labelName, `metric "${metricName}"`);
    if (seen.has(labelName)) throw invalid(metricName, `label "${labelName}" is listed twice`);
    seen.add(labelName);
  }
  return Object.freeze([...labelNames]);
}

/** Validates histogram upper bounds: finite, strictly increasing, at least one. */
export function validateBuckets(buckets: readonly number[], metricName: string): readonly number[] {
  if (!Array.isArray(buckets) || buckets.length === 0) {
    throw invalid(metricName, 'buckets must be a non-empty array of numbers');
  }
  let previous = Number.NEGATIVE_INFINITY;
  for (const bound of buckets) {
    if (typeof bound !== 'number' || !Number.isFinite(bound)) {
      throw invalid(metricName, `bucket ${String(bound)} is not a finite number (+Inf is always added)`);
    }
    if (bound <= previous) throw invalid(metricName, 'buckets must be strictly increasing');
    previous = bound;
  }
  return Object.freeze([...buckets]);
}

/** Buckets for a histogram defined without any: chosen from the unit at the end of its name. */
export function defaultBuckets(metricName: string): readonly number[] {
  if (metricName.endsWith('_seconds')) return BUCKETS.requestSeconds;
  if (metricName.endsWith('_bytes')) return BUCKETS.payloadBytes;
  throw invalid(metricName, 'pass buckets (defaults exist only for names ending in _seconds or _bytes)');
}

/** Validates a series cap: a positive integer, or `Infinity` to turn the guard off. */
export function validateMaxSeries(maxSeries: unknown, context: string): number {
  if (
    typeof maxSeries !== 'number' ||
    !(maxSeries >= 1) ||
    (maxSeries !== Number.POSITIVE_INFINITY && !Number.isInteger(maxSeries))
  ) {
    throw new InvalidMetricError(
      `Invalid maxSeries ${String(maxSeries)} for ${context}: expected a positive integer or Infinity`,
    );
  }
  return maxSeries;
}

/** Normalises the `prefix` option: `''`, or snake_case ending with exactly one `_`. */
export function normalizePrefix(prefix: unknown): string {
  if (prefix === undefined || prefix === '') return '';
  if (typeof prefix !== 'string' || !/^[a-z][a-z0-9_]*$/.test(prefix) || prefix.endsWith('__')) {
    throw new InvalidMetricError(
      `Invalid prefix ${JSON.stringify(prefix)}: expected lower-case snake_case such as "billing" or "billing_"`,
    );
  }
  return prefix.endsWith('_') ? prefix : `${prefix}_`;
}

/**
 * Builds a package metric name: `metricName('rate-limit', 'decisions_total')` is
 * `austa_rate_limit_decisions_total`. Dashes in the package name become underscores.
 * The result is not validated here; creating the instrument validates it.
 */
export function metricName(packageName: string, suffix: string): string {
  if (typeof packageName !== 'string' || !PACKAGE_NAME.test(packageName)) {
    throw new InvalidMetricError(
      `Invalid package name ${JSON.stringify(packageName)}: expected lower-case words joined by "-" or "_"`,
    );
  }
  if (typeof suffix !== 'string' || suffix.length === 0 || suffix.startsWith('_')) {
    throw new InvalidMetricError(
      `Invalid metric suffix ${JSON.stringify(suffix)} for package "${packageName}": expected snake_case such as "requests_total"`,
    );
  }
  return `${PACKAGE_METRIC_PREFIX}${packageName.replaceAll('-', '_')}_${suffix}`;
}

/** Throws `E_INVALID_METRIC` unless `options` is an object (the instrument methods' only argument). */
export function assertOptions(options: unknown, method: string): void {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidMetricError(`${method}() expects an options object with name and help`);
  }
}
