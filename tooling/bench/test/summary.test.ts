import { describe, expect, it } from 'vitest';
import { formatSummary } from '../src/summary.js';
import type { BenchResult, MicroResult } from '../src/types.js';

function redis(lib: string, topology: 'standalone' | 'cluster', ratio?: number): BenchResult {
  return {
    package: 'cache',
    op: 'getOrSet:hit',
    lib,
    topology,
    concurrency: 100,
    ops: 20_000,
    opsPerSec: 50_000,
    p50Ms: 1,
    p99Ms: 5,
    p999Ms: 9,
    cpuUsPerOp: 20,
    ...(ratio === undefined ? {} : { vs: { lib: 'bentocache', ratio, cpuRatio: 1 / ratio } }),
  };
}

describe('formatSummary()', () => {
  it('lines up each compared case with its ratio on every topology, one row per case', () => {
    const text = formatSummary(
      '@austa/cache',
      [
        redis('bentocache', 'standalone'),
        redis('bentocache (control)', 'standalone', 1.012),
        redis('@austa/cache', 'standalone', 1.31),
        redis('bentocache', 'cluster'),
        redis('bentocache (control)', 'cluster', 0.987),
        redis('@austa/cache', 'cluster', 1.254),
      ],
      [],
      12,
    );
    const lines = text.split('\n');
    expect(lines[0]).toBe('[bench] @austa/cache: summary');
    expect(text).toContain('median of 12 per-round ratios');
    const header = lines.find((line) => line.startsWith('op '));
    expect(header).toMatch(/^op\s+lib\s+vs\s+standalone ops×\s+cpu×\s+cluster ops×\s+cpu×$/);
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^getOrSet:hit\s+bentocache \(control\)\s+bentocache\s+1\.012\s+0\.988\s+0\.987\s+1\.013$/,
      ),
    );
    // The op is written once per group; the rival's own rows (no vs) are not ratios and are left out.
    expect(lines).toContainEqual(
      expect.stringMatching(/^\s+@austa\/cache\s+bentocache\s+1\.310\s+0\.763\s+1\.254\s+0\.797$/),
    );
    expect(
      lines.filter(
        (line) =>
          line.includes('bentocache') &&
          !line.includes('control') &&
          !line.includes('@austa/cache') &&
          !line.startsWith('ops×'),
      ),
    ).toEqual([]);
  });

  it('shows ns, heap and Buffer bytes per op for in-process cases, with the ratio to the baseline', () => {
    const micro: MicroResult[] = [
      {
        package: 'codec',
        op: 'encode+decode:1KiB',
        lib: 'JSON',
        topology: 'in-process',
        ops: 1e6,
        opsPerSec: 500_000,
        nsPerOp: 2000,
        bytesPerOp: 3100,
        externalBytesPerOp: 0,
      },
      {
        package: 'codec',
        op: 'encode+decode:1KiB',
        lib: '@austa/codec',
        topology: 'in-process',
        ops: 1e6,
        opsPerSec: 450_000,
        nsPerOp: 2222.2,
        bytesPerOp: 3400.5,
        externalBytesPerOp: 1024,
        vs: { lib: 'JSON', ratio: 0.9, extraBytesPerOp: 300.5 },
      },
    ];
    const lines = formatSummary('@austa/codec', [], micro, 12).split('\n');
    expect(lines).toContainEqual(
      expect.stringMatching(/^op \(in-process\)\s+lib\s+vs\s+ns\/op\s+heap B\/op\s+ext B\/op\s+ops×$/),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^encode\+decode:1KiB\s+JSON\s+2000\.0\s+3100\.0\s+0\.0$/),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^\s+@austa\/codec\s+JSON\s+2222\.2\s+3400\.5\s+1024\.0\s+0\.900$/),
    );
  });

  it('prints nothing when nothing ran', () => {
    expect(formatSummary('@austa/cache', [], [], 12)).toBe('');
  });
});
