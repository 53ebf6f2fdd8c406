import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { resolveRedis, resolveRedisCluster } from '@austa/test-env';
import { Cluster, Redis } from 'ioredis';
import { CaseProcess } from './case-process.js';
import type {
  BenchCase,
  BenchContext,
  BenchDefinition,
  BenchResult,
  BenchTarget,
  Measurement,
  Topology,
} from './types.js';

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`${name} must be a positive integer (got ${raw}).`);
  return value;
}

const settings = {
  ops: intFromEnv('BENCH_OPS', 20_000),
  concurrency: intFromEnv('BENCH_CONCURRENCY', 100),
  keys: intFromEnv('BENCH_KEYS', 1000),
  rounds: intFromEnv('BENCH_ROUNDS', 12),
  valueBytes: intFromEnv('BENCH_VALUE_BYTES', 256),
};

async function withPlainClient(target: BenchTarget, work: (client: Redis | Cluster) => Promise<unknown>) {
  const client =
    target.topology === 'cluster' ? new Cluster(target.nodes ?? []) : new Redis(target.url ?? '');
  try {
    await work(client);
  } finally {
    await client.quit();
  }
}

// Keys are written one by one so a cluster never sees a cross-slot multi-key command; they expire on their own.
const prepareKeys = (target: BenchTarget, context: BenchContext) =>
  withPlainClient(target, (client) =>
    Promise.all(context.keys.map((key) => client.set(key, context.value, 'EX', 900))),
  );

const deleteKeys = (target: BenchTarget, context: BenchContext) =>
  withPlainClient(target, (client) => Promise.all(context.keys.map((key) => client.unlink(key))));

function medianBy<T>(items: T[], value: (item: T) => number): T {
  const sorted = [...items].sort((a, b) => value(a) - value(b));
  const middle = sorted[Math.floor(sorted.length / 2)];
  if (middle === undefined) throw new Error('no measurement');
  return middle;
}

const round3 = (value: number) => Math.round(value * 1000) / 1000;

interface IndexedCase {
  benchCase: BenchCase;
  /** Position in the definition's `cases`, which is how a worker process finds it. */
  index: number;
}

async function runGroup(
  file: string,
  definition: BenchDefinition,
  cases: IndexedCase[],
  context: BenchContext,
): Promise<BenchResult[]> {
  const processes = cases.map(() => new CaseProcess());
  const measurements = cases.map(() => [] as Measurement[]);
  const warmup = Math.max(1000, Math.floor(settings.ops / 10));
  try {
    await Promise.all(processes.map((worker, i) => worker.setup(file, cases[i]?.index ?? -1, context)));
    for (let round = 0; round < settings.rounds; round++) {
      // Rotate the order every round so each case runs in every position equally often: position alone moved
      // results by up to 20% on this class of machine.
      const order = cases.map((_, index) => (index + round) % cases.length);
      for (const index of order) {
        const worker = processes[index];
        if (worker === undefined) continue;
        measurements[index]?.push(await worker.run(settings.ops, warmup, settings.concurrency));
      }
    }
  } finally {
    await Promise.all(processes.map((worker) => worker.stop()));
  }
  const results = cases.map(({ benchCase }, index): BenchResult => {
    const typical = medianBy(measurements[index] ?? [], (m) => m.opsPerSec);
    return {
      package: definition.package,
      op: benchCase.op,
      lib: benchCase.lib,
      topology: context.target.topology,
      concurrency: settings.concurrency,
      ...typical,
      cpuUsPerOp: medianBy(measurements[index] ?? [], (m) => m.cpuUsPerOp).cpuUsPerOp,
    };
  });
  for (const [index, { benchCase }] of cases.entries()) {
    if (benchCase.vs === undefined) continue;
    const rivalIndex = cases.findIndex((other) => other.benchCase.lib === benchCase.vs);
    const own = measurements[index] ?? [];
    const rival = measurements[rivalIndex] ?? [];
    const result = results[index];
    if (rivalIndex < 0 || result === undefined || rival.length !== own.length) continue;
    const perRound = own.map((m, r) => ({
      ratio: m.opsPerSec / (rival[r]?.opsPerSec ?? Number.NaN),
      cpuRatio: m.cpuUsPerOp / (rival[r]?.cpuUsPerOp ?? Number.NaN),
    }));
    result.vs = {
      lib: benchCase.vs,
      ratio: round3(medianBy(perRound, (p) => p.ratio).ratio),
      cpuRatio: round3(medianBy(perRound, (p) => p.cpuRatio).cpuRatio),
    };
  }
  return results;
}

async function loadBenchFiles(
  directory: string,
): Promise<Array<{ file: string; definition: BenchDefinition }>> {
  const benchDirectory = join(directory, 'bench');
  let files: string[];
  try {
    files = readdirSync(benchDirectory).filter((file) => file.endsWith('.bench.ts'));
  } catch {
    return [];
  }
  const definitions: Array<{ file: string; definition: BenchDefinition }> = [];
  for (const file of files.sort()) {
    const path = join(benchDirectory, file);
    const module = (await import(pathToFileURL(path).href)) as { default?: BenchDefinition };
    if (!module.default) throw new Error(`${file} must export default defineBench({...}).`);
    definitions.push({ file: path, definition: module.default });
  }
  return definitions;
}

export async function main(args: string[]): Promise<number> {
  const directory = resolve(args[0] ?? process.cwd());
  const packageName = (JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8')) as { name: string })
    .name;
  const definitions = await loadBenchFiles(directory);
  if (definitions.length === 0) {
    process.stderr.write(`[bench] ${packageName}: no bench/*.bench.ts files\n`);
    return 0;
  }
  const wanted = (process.env.BENCH_TOPOLOGIES ?? 'standalone,cluster').split(',') as Topology[];
  process.stderr.write(
    `[bench] ${packageName}: ops=${settings.ops} concurrency=${settings.concurrency} keys=${settings.keys} rounds=${settings.rounds} (medians over rounds)\n`,
  );
  const standalone = wanted.includes('standalone') ? await resolveRedis() : undefined;
  const cluster = wanted.includes('cluster') ? await resolveRedisCluster() : undefined;
  try {
    const targets: BenchTarget[] = [];
    if (standalone) targets.push({ topology: 'standalone', url: standalone.url });
    if (cluster) targets.push({ topology: 'cluster', nodes: cluster.nodes });
    for (const target of targets) {
      for (const { file, definition } of definitions) {
        if (definition.topologies && !definition.topologies.includes(target.topology)) continue;
        const prefix = `bench:${definition.package}:${Math.random().toString(36).slice(2, 10)}`;
        const context: BenchContext = {
          target,
          prefix,
          keys: Array.from({ length: settings.keys }, (_, i) => `${prefix}:k:${i}`),
          value: 'v'.repeat(settings.valueBytes),
        };
        await prepareKeys(target, context);
        try {
          const groups = new Map<string, IndexedCase[]>();
          for (const [index, benchCase] of definition.cases.entries()) {
            groups.set(benchCase.op, [...(groups.get(benchCase.op) ?? []), { benchCase, index }]);
          }
          for (const cases of groups.values()) {
            for (const result of await runGroup(file, definition, cases, context)) {
              process.stdout.write(`${JSON.stringify(result)}\n`);
            }
          }
        } finally {
          await deleteKeys(target, context);
        }
      }
    }
  } finally {
    await standalone?.stop();
    await cluster?.stop();
  }
  return 0;
}
