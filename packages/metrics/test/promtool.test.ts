import { execFileSync, spawnSync } from 'node:child_process';
import { register as globalRegister, Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BUCKETS, createMetrics } from '../src/index.js';

afterEach(() => {
  vi.restoreAllMocks();
});

function promtoolAvailable(): boolean {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  return probe.error === undefined && probe.status === 0;
}

function writeToEveryInstrument(registry: Registry) {
  vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
  const metrics = createMetrics({ registry, defaultLabels: { service: 'care-api' } });

  const duration = metrics.operationDuration();
  duration.bind({ db_system_name: 'redis', db_operation_name: 'get', error_type: '' }).observe(0.00021);
  duration.observe({ db_system_name: 'redis', db_operation_name: 'evalsha', error_type: 'timeout' }, 1.2);
  duration.observe({ db_system_name: 'mongodb', db_operation_name: 'find', error_type: '' }, 0.004);

  const cache = metrics.packageInstruments('cache');
  const requests = cache.counter({
    name: 'requests_total',
    help: 'Cache lookups by cache, tier and result.',
    labelNames: ['cache', 'tier', 'result'],
    maxSeries: 2,
  });
  requests.bind({ cache: 'sessions', tier: 'l1', result: 'hit' }).inc();
  requests.inc({ cache: 'sessions', tier: 'l2', result: 'miss' }, 3);
  // Past the cap: the new cache name folds into "other" (known tier and result stay) and is counted.
  requests.inc({ cache: 'users', tier: 'l1', result: 'hit' });

  metrics
    .counter({
      name: metrics.name('session', 'evictions_total'),
      help: 'Sessions evicted to respect the cap.',
    })
    .bind()
    .inc();
  metrics
    .counter({
      name: 'mongodb_change_stream_events_total',
      help: 'Change stream events by collection and operation type.',
      labelNames: ['collection', 'operation_type'],
    })
    .inc({ collection: 'patients', operation_type: 'insert' });

  const connections = metrics.gauge({
    name: metrics.name('redis', 'connections'),
    help: 'Connections by role and status, read at scrape time.',
    labelNames: ['role', 'status'],
  });
  connections.onCollect((set) => set({ role: 'master', status: 'ready' }, 3));
  connections.bind({ role: 'replica', status: 'ready' }).set(2);
  metrics
    .gauge({ name: metrics.name('cache', 'entries'), help: 'Entries in the local tier.' })
    .bind()
    .inc(10);

  metrics
    .histogram({
      name: metrics.name('codec', 'value_bytes'),
      help: 'Encoded value sizes.',
      labelNames: ['codec'],
      buckets: BUCKETS.payloadBytes,
    })
    .observe({ codec: 'json' }, 900);
  metrics
    .histogram({
      name: metrics.name('rate-limit', 'check_duration_seconds'),
      help: 'checkLimit time, in seconds.',
    })
    .bind()
    .observe(0.0004);
  return metrics;
}

describe('promtool check metrics', () => {
  it('finds no problem in a registry every instrument has written to', async () => {
    if (!promtoolAvailable()) {
      throw new Error('promtool is not installed; install it with: apt-get install -y prometheus');
    }
    const metrics = writeToEveryInstrument(new Registry());
    const input = await metrics.text();
    expect(input).toContain(
      'austa_cache_requests_total{cache="other",tier="l1",result="hit",service="care-api"} 1',
    );
    expect(input).toContain('austa_metrics_cardinality_overflow_total{metric="austa_cache_requests_total"');

    const result = spawnSync('promtool', ['check', 'metrics'], { input, encoding: 'utf8' });
    expect(`${result.stdout}${result.stderr}`).toBe('');
    expect(result.status).toBe(0);
    // The same check through execFileSync, which throws on a non-zero exit.
    expect(() => execFileSync('promtool', ['check', 'metrics'], { input, stdio: 'pipe' })).not.toThrow();
  });

  it('never writes to prom-client’s global registry', async () => {
    writeToEveryInstrument(new Registry());
    expect(globalRegister.getMetricsAsArray()).toHaveLength(0);
    expect(await globalRegister.metrics()).toBe('\n');
  });
});
