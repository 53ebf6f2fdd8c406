import type { Metrics } from '@austa/metrics';
import type { CommandObserver } from './redis-io.js';

interface Inc {
  inc(value?: number): void;
}
interface Observe {
  observe(value: number): void;
}
const NOOP: Inc & Observe = Object.freeze({ inc() {}, observe() {} });

export type Tier = 'l1' | 'l2';
export type RequestResult = 'hit' | 'miss' | 'stale' | 'error';
export type Operation =
  | 'get'
  | 'get_many'
  | 'get_or_set'
  | 'set'
  | 'set_many'
  | 'delete'
  | 'delete_many'
  | 'delete_pattern'
  | 'invalidate_by_tags'
  | 'exists'
  | 'get_ttl'
  | 'extend_ttl'
  | 'clear'
  | 'warm_up';
export type DegradedReason = 'timeout' | 'circuit_open' | 'connection' | 'redis_error' | 'bus_untrusted';
export type FactoryResult = 'ok' | 'error' | 'timeout';

const OPERATIONS: Operation[] = [
  'get',
  'get_many',
  'get_or_set',
  'set',
  'set_many',
  'delete',
  'delete_many',
  'delete_pattern',
  'invalidate_by_tags',
  'exists',
  'get_ttl',
  'extend_ttl',
  'clear',
  'warm_up',
];

/**
 * Cache latency starts at 5 µs: an L1 hit takes a few microseconds, an L2 hit a few hundred; the shared Redis
 * histogram's first bucket (0.1 ms) would put every L1 hit in one bucket.
 */
const LATENCY_BUCKETS = [
  0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
  0.25, 0.5, 1, 2.5, 5, 10,
];
const DELAY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Counters behind getStats(), kept whether or not metrics are configured (plain increments). */
export class Counters {
  l1 = { hits: 0, misses: 0, staleHits: 0 };
  l2 = { hits: 0, misses: 0, staleHits: 0, errors: 0 };
  factory = { calls: 0, errors: 0, timeouts: 0 };
  degraded = 0;
  invalidations = { sent: 0, received: 0 };
  swept = 0;
}

export interface Instruments {
  request(tier: Tier, result: RequestResult): void;
  degraded(operation: Operation, reason: DegradedReason): void;
  duration(operation: Operation, seconds: number): void;
  factory(result: FactoryResult, seconds: number): void;
  invalidationMessage(direction: 'sent' | 'received', delaySeconds?: number): void;
  busDrop(reason: 'closed' | 'silent' | 'gap' | 'resubscribed'): void;
  swept(count: number): void;
  lock(result: 'acquired' | 'waited' | 'timeout'): void;
  /** Redis command latency for the shared histogram, or undefined when the client already records it. */
  readonly redisObserver: CommandObserver | undefined;
  onCollect(read: () => { l1Entries: number; l1Bytes: number; breakersOpen: number }): () => void;
  readonly counters: Counters;
}

/** A small label-value cache for the shared Redis histogram, keyed by command name and error type. */
function redisObserver(metrics: Metrics, errorTypeOf: (error: unknown) => string): CommandObserver {
  const duration = metrics.operationDuration();
  const series = new Map<string, Observe>();
  return (name, seconds, error) => {
    const errorType = error === undefined ? '' : errorTypeOf(error);
    const id = `${name}\u0000${errorType}`;
    let bound = series.get(id);
    if (bound === undefined) {
      bound = duration.bind({ db_system_name: 'redis', db_operation_name: name, error_type: errorType });
      series.set(id, bound);
    }
    bound.observe(seconds);
  };
}

export function createInstruments(
  metrics: Metrics | undefined,
  cache: string,
  options: { recordRedis: boolean; errorTypeOf: (error: unknown) => string },
): Instruments {
  const counters = new Counters();
  if (metrics === undefined) {
    return {
      counters,
      redisObserver: undefined,
      request(tier, result) {
        count(counters, tier, result);
      },
      degraded() {
        counters.degraded++;
      },
      duration() {},
      factory(result) {
        countFactory(counters, result);
      },
      invalidationMessage(direction) {
        counters.invalidations[direction]++;
      },
      busDrop() {},
      swept(n) {
        counters.swept += n;
      },
      lock() {},
      onCollect: () => () => {},
    };
  }
  const instruments = metrics.packageInstruments('cache');
  const requests = instruments.counter({
    name: 'requests_total',
    help: 'Cache lookups by tier (l1 memory, l2 Redis) and result (hit, miss, stale, error).',
    labelNames: ['cache', 'tier', 'result'],
  });
  const requestSeries = new Map<string, Inc>();
  for (const tier of ['l1', 'l2'] as const) {
    for (const result of ['hit', 'miss', 'stale', 'error'] as const) {
      requestSeries.set(`${tier}:${result}`, requests.bind({ cache, tier, result }));
    }
  }
  const degraded = instruments.counter({
    name: 'degraded_total',
    help: 'Answers given without Redis (a miss, a stale or L1 value, or a factory result) because Redis failed or its circuit breaker was open.',
    labelNames: ['cache', 'operation', 'reason'],
  });
  const durationHistogram = instruments.histogram({
    name: 'operation_duration_seconds',
    help: 'Time of each cache operation as its caller saw it, L1 hits included.',
    labelNames: ['cache', 'operation'],
    buckets: LATENCY_BUCKETS,
  });
  const durations = new Map<string, Observe>();
  for (const operation of OPERATIONS) durations.set(operation, durationHistogram.bind({ cache, operation }));
  const factoryCalls = instruments.counter({
    name: 'factory_calls_total',
    help: 'getOrSet factory calls by result (ok, error, timeout).',
    labelNames: ['cache', 'result'],
  });
  const factorySeries = {
    ok: factoryCalls.bind({ cache, result: 'ok' }),
    error: factoryCalls.bind({ cache, result: 'error' }),
    timeout: factoryCalls.bind({ cache, result: 'timeout' }),
  };
  const factoryDuration = instruments
    .histogram({
      name: 'factory_duration_seconds',
      help: 'Time getOrSet factories took, to their result or error.',
      labelNames: ['cache'],
      buckets: LATENCY_BUCKETS,
    })
    .bind({ cache });
  const messages = instruments.counter({
    name: 'invalidation_messages_total',
    help: 'L1 invalidation messages published and received on the bus.',
    labelNames: ['cache', 'direction'],
  });
  const sent = messages.bind({ cache, direction: 'sent' });
  const received = messages.bind({ cache, direction: 'received' });
  const delay = instruments
    .histogram({
      name: 'invalidation_delay_seconds',
      help: 'Time from publishing an invalidation to evicting the entries on a receiving instance (sender and receiver clocks).',
      labelNames: ['cache'],
      buckets: DELAY_BUCKETS,
    })
    .bind({ cache });
  const drops = instruments.counter({
    name: 'bus_drops_total',
    help: 'Times the invalidation bus lost its guarantee (connection closed, silent, message gap), after which older L1 entries stop being trusted.',
    labelNames: ['cache', 'reason'],
  });
  const sweptCounter = instruments
    .counter({
      name: 'swept_entries_total',
      help: 'Tag-invalidated entries deleted by the background sweep.',
      labelNames: ['cache'],
    })
    .bind({ cache });
  const locks = instruments.counter({
    name: 'lock_total',
    help: 'Distributed getOrSet locks: acquired, waited for another process, or given up waiting.',
    labelNames: ['cache', 'result'],
  });
  const l1Entries = instruments.gauge({
    name: 'l1_entries',
    help: 'Entries held in the L1 memory tier.',
    labelNames: ['cache'],
  });
  const l1Bytes = instruments.gauge({
    name: 'l1_bytes',
    help: 'Bytes held in the L1 memory tier (stored values and keys).',
    labelNames: ['cache'],
  });
  const breakers = instruments.gauge({
    name: 'circuit_breakers_open',
    help: 'Redis shards whose circuit breaker is open: calls to them degrade at once.',
    labelNames: ['cache'],
  });
  return {
    counters,
    redisObserver: options.recordRedis ? redisObserver(metrics, options.errorTypeOf) : undefined,
    request(tier, result) {
      count(counters, tier, result);
      (requestSeries.get(`${tier}:${result}`) ?? NOOP).inc();
    },
    degraded(operation, reason) {
      counters.degraded++;
      degraded.inc({ cache, operation, reason });
    },
    duration(operation, seconds) {
      (durations.get(operation) ?? NOOP).observe(seconds);
    },
    factory(result, seconds) {
      countFactory(counters, result);
      factorySeries[result].inc();
      factoryDuration.observe(seconds);
    },
    invalidationMessage(direction, delaySeconds) {
      counters.invalidations[direction]++;
      if (direction === 'sent') sent.inc();
      else {
        received.inc();
        if (delaySeconds !== undefined) delay.observe(Math.max(0, delaySeconds));
      }
    },
    busDrop(reason) {
      drops.inc({ cache, reason });
    },
    swept(n) {
      counters.swept += n;
      sweptCounter.inc(n);
    },
    lock(result) {
      locks.inc({ cache, result });
    },
    onCollect(read) {
      const stops = [
        l1Entries.onCollect((set) => set({ cache }, read().l1Entries)),
        l1Bytes.onCollect((set) => set({ cache }, read().l1Bytes)),
        breakers.onCollect((set) => set({ cache }, read().breakersOpen)),
      ];
      return () => {
        for (const stop of stops) stop();
      };
    },
  };
}

function count(counters: Counters, tier: Tier, result: RequestResult): void {
  const target = counters[tier] as { hits: number; misses: number; staleHits: number; errors?: number };
  if (result === 'hit') target.hits++;
  else if (result === 'miss') target.misses++;
  else if (result === 'stale') target.staleHits++;
  else if (target.errors !== undefined) target.errors++;
}

function countFactory(counters: Counters, result: FactoryResult): void {
  counters.factory.calls++;
  if (result === 'error') counters.factory.errors++;
  else if (result === 'timeout') counters.factory.timeouts++;
}
