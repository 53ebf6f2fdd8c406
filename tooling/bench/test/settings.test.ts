import { describe, expect, it } from 'vitest';
import { readSettings } from '../src/settings.js';

describe('readSettings()', () => {
  it('uses the documented defaults when nothing is set', () => {
    expect(readSettings({})).toEqual({
      ops: 20_000,
      concurrency: 100,
      keys: 1000,
      rounds: 12,
      valueBytes: 256,
      microMs: 250,
      topologies: ['standalone', 'cluster'],
      filter: undefined,
      out: undefined,
    });
  });

  it('reads every knob', () => {
    const settings = readSettings({
      BENCH_OPS: '500',
      BENCH_CONCURRENCY: '10',
      BENCH_KEYS: '20',
      BENCH_ROUNDS: '3',
      BENCH_VALUE_BYTES: '64',
      BENCH_MICRO_MS: '40',
      BENCH_TOPOLOGIES: 'cluster',
      BENCH_FILTER: 'get',
      BENCH_OUT: 'bench-results/run.jsonl',
    });
    expect(settings).toMatchObject({
      ops: 500,
      concurrency: 10,
      keys: 20,
      rounds: 3,
      valueBytes: 64,
      microMs: 40,
      topologies: ['cluster'],
      out: 'bench-results/run.jsonl',
    });
    // Case-insensitive, so `get` finds `GET:autopipeline-on`.
    expect(settings.filter?.test('GET:autopipeline-on')).toBe(true);
  });

  it('names the variable when a number is not a positive integer', () => {
    expect(() => readSettings({ BENCH_CONCURRENCY: '0' })).toThrow(
      'BENCH_CONCURRENCY must be a positive integer',
    );
    expect(() => readSettings({ BENCH_OPS: '1e3.5' })).toThrow('BENCH_OPS must be a positive integer');
    expect(() => readSettings({ BENCH_MICRO_MS: 'fast' })).toThrow(
      'BENCH_MICRO_MS must be a positive integer',
    );
  });

  it('refuses an unknown topology and a filter that is not a regular expression', () => {
    expect(() => readSettings({ BENCH_TOPOLOGIES: 'standalone,sentinel' })).toThrow(
      'BENCH_TOPOLOGIES takes standalone and/or cluster',
    );
    expect(() => readSettings({ BENCH_FILTER: 'GET(' })).toThrow(
      'BENCH_FILTER is not a valid regular expression',
    );
  });
});
