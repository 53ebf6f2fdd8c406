import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestClient, deleteByPrefix, redisTargets } from '@austa/test-env/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/austa-bench.mjs', import.meta.url));
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  lines: Array<Record<string, unknown>>;
}

/** Runs `austa-bench` on a fixture package with small settings; BENCH_* from the caller's shell never leak in. */
function bench(fixture: string, env: Record<string, string>): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('BENCH_')));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, join(FIXTURES, fixture)],
      {
        env: { ...base, BENCH_ROUNDS: '2', BENCH_MICRO_MS: '20', ...env },
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        const lines = stdout
          .split('\n')
          .filter((line) => line !== '')
          .map((line) => JSON.parse(line) as Record<string, unknown>);
        resolve({ code, stdout, stderr, lines });
      },
    );
  });
}

const byLib = (run: Run) => new Map(run.lines.map((line) => [`${line.op} ${line.lib}`, line]));

describe('austa-bench with in-process (micro) cases only', () => {
  const directory = mkdtempSync(join(tmpdir(), 'austa-bench-out-'));
  let full: Run;
  beforeAll(async () => {
    // A REDIS_URL nothing listens on: the run would fail if the harness tried to use Redis.
    full = await bench('micro-only', { REDIS_URL: 'redis://127.0.0.1:1', BENCH_TOPOLOGIES: 'standalone' });
  });
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  it('never starts or contacts Redis, and prints one JSON line per case on stdout', () => {
    expect(full.stderr).not.toMatch(/ECONNREFUSED|redis-server/);
    expect(full.code).toBe(0);
    expect(full.lines.map((line) => `${line.op} ${line.lib}`)).toEqual([
      'noop baseline',
      'noop baseline (control)',
      'alloc object',
      'alloc array100',
      'alloc buffer2k',
      'async resolved promise',
      'async async function',
    ]);
    for (const line of full.lines) {
      expect(line).toMatchObject({ package: 'micro-fixture', topology: 'in-process' });
      expect(line.nsPerOp).toBeGreaterThan(0);
      expect(line.ops).toBeGreaterThan(0);
    }
  });

  it('measures the bytes an operation allocates: V8 object sizes on the heap, Buffer memory apart', () => {
    const lines = byLib(full);
    // A two-field object is 40 bytes on 64-bit V8 without pointer compression (map, properties, elements, 2 fields);
    // an array of 100 small integers about 850 (array object + 100 slots of 8 bytes); nothing, nothing.
    expect(lines.get('noop baseline')?.bytesPerOp).toBeLessThan(2);
    expect(lines.get('alloc object')?.bytesPerOp).toBeGreaterThanOrEqual(40);
    expect(lines.get('alloc object')?.bytesPerOp).toBeLessThan(42);
    expect(lines.get('alloc array100')?.bytesPerOp).toBeGreaterThanOrEqual(840);
    expect(lines.get('alloc array100')?.bytesPerOp).toBeLessThan(880);
    // Buffer.alloc(2048): the bytes live outside the heap, exactly 2 KiB per call.
    expect(lines.get('alloc buffer2k')?.externalBytesPerOp).toBe(2048);
    expect(lines.get('alloc array100')?.vs).toMatchObject({
      lib: 'object',
      extraBytesPerOp: expect.closeTo(810, -1.5),
    });
    // Promises returned by run() are awaited: both async cases allocate their promise and reaction.
    expect(lines.get('async async function')?.bytesPerOp).toBeGreaterThan(0);
  });

  it('shows progress and a summary table on stderr, never on stdout', () => {
    expect(full.stderr).toMatch(
      /\[bench\] @fixture\/micro-only in-process alloc · round 2\/2: object [\d.]+ ns\/op · array100 [\d.]+ ns\/op · buffer2k [\d.]+ ns\/op · ~\d+s left/,
    );
    expect(full.stderr).toContain('[bench] @fixture/micro-only: summary');
    expect(full.stderr).toMatch(/^\s+array100\s+object\s+[\d.]+\s+[\d.]+\s+0\.0\s+[\d.]+$/m);
    // Every stdout line parsed as JSON in bench(); nothing else is there.
    expect(full.stdout.split('\n').filter((line) => line !== '' && !line.startsWith('{'))).toEqual([]);
  });

  it('BENCH_FILTER runs the matching cases and the baselines they are compared to, nothing else', async () => {
    const run = await bench('micro-only', { BENCH_FILTER: 'array' });
    expect(run.lines.map((line) => `${line.op} ${line.lib}`)).toEqual(['alloc object', 'alloc array100']);
    expect(run.lines[1]?.vs).toMatchObject({ lib: 'object', ratio: expect.any(Number) });
  });

  it('BENCH_FILTER matching nothing says so and exits 0 without running anything', async () => {
    const run = await bench('micro-only', { BENCH_FILTER: '^no such op$' });
    expect(run.code).toBe(0);
    expect(run.lines).toEqual([]);
    expect(run.stderr).toContain('no case matches BENCH_FILTER=^no such op$');
  });

  it('BENCH_OUT appends the same JSON lines to a file, run after run', async () => {
    const out = join(directory, 'nested', 'run.jsonl');
    const first = await bench('micro-only', { BENCH_OUT: out, BENCH_FILTER: 'noop' });
    const second = await bench('micro-only', { BENCH_OUT: out, BENCH_FILTER: 'noop' });
    expect(first.lines).toHaveLength(2);
    expect(readFileSync(out, 'utf8')).toBe(first.stdout + second.stdout);
    // `at` tells appended runs apart.
    expect(first.lines[0]?.at).not.toBe(second.lines[0]?.at);
  });
});

describe('austa-bench with Redis cases, a control and a ceiling', () => {
  const targets = redisTargets();
  const clients = (['standalone', 'cluster'] as const).map((topology) => createTestClient(targets, topology));
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.quit()));
  });

  it('runs every case on both topologies at BENCH_CONCURRENCY=10, with ratios, then removes its keys', async () => {
    const run = await bench('redis-and-micro', {
      REDIS_URL: targets.standalone.url,
      REDIS_CLUSTER_NODES: targets.cluster.nodes.map((node) => `${node.host}:${node.port}`).join(','),
      BENCH_OPS: '300',
      BENCH_KEYS: '20',
      BENCH_CONCURRENCY: '10',
    });
    expect(run.code, run.stderr).toBe(0);
    const seen = run.lines.map(
      (line) => `${line.topology} ${line.lib}${line.vs ? ` vs ${(line.vs as { lib: string }).lib}` : ''}`,
    );
    expect(seen).toEqual([
      'in-process template literal',
      'in-process array join vs template literal',
      'standalone ioredis',
      'standalone ioredis (control) vs ioredis',
      'standalone GET through a script vs ioredis',
      'standalone raw EVALSHA (ceiling) vs GET through a script',
      'cluster ioredis',
      'cluster ioredis (control) vs ioredis',
      'cluster GET through a script vs ioredis',
      'cluster raw EVALSHA (ceiling) vs GET through a script',
    ]);
    for (const line of run.lines.filter((candidate) => candidate.topology !== 'in-process')) {
      expect(line).toMatchObject({ concurrency: 10, ops: 300 });
      expect(line.opsPerSec).toBeGreaterThan(0);
      if (line.vs) expect((line.vs as { ratio: number }).ratio).toBeGreaterThan(0);
    }
    expect(run.stderr).toMatch(/^op\s+lib\s+vs\s+standalone ops×\s+cpu×\s+cluster ops×\s+cpu×$/m);
    expect(run.stderr).toMatch(
      /^\s+raw EVALSHA \(ceiling\)\s+GET through a script\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+$/m,
    );
    // The harness wrote its keys under bench:redis-fixture:<random> and removed them afterwards.
    for (const client of clients) expect(await deleteByPrefix(client, 'bench:redis-fixture:')).toBe(0);
  });
});
