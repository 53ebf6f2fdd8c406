import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { resolveRedis, resolveRedisCluster } from '@austa/test-env';
import { Cluster, Redis } from 'ioredis';
import { CaseProcess } from './case-process.js';
import { MICRO_V8_FLAGS } from './micro.js';
import { lineAppender, outputPath } from './output.js';
import { Progress, TimeLeft, type UnitKind } from './progress.js';
import { checkCases, groupByOp, type Indexed, selectCases } from './select.js';
import { readSettings, type Settings } from './settings.js';
import { formatSummary } from './summary.js';
import type {
  BenchCase,
  BenchContext,
  BenchDefinition,
  BenchResult,
  BenchTarget,
  Measurement,
  MicroCase,
  MicroMeasurement,
  MicroResult,
  Topology,
} from './types.js';

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

function compact(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return String(Math.round(value));
}

/** What every group runner needs besides its cases. */
interface RunState {
  packageName: string;
  settings: Settings;
  progress: Progress;
  timeLeft: TimeLeft;
}

/**
 * Runs one op's cases round by round, each case in its own process, the order rotated every round so each case runs
 * in every position equally often (position alone moved results by up to 20% on this class of machine). Returns the
 * measurements, one array per case, one entry per round.
 */
async function runRounds<M>(
  state: RunState,
  where: string,
  kind: UnitKind,
  libs: string[],
  v8Flags: readonly string[],
  setup: (worker: CaseProcess, position: number) => Promise<void>,
  run: (worker: CaseProcess) => Promise<M>,
  figure: (measurement: M) => string,
): Promise<M[][]> {
  const { settings, progress, timeLeft } = state;
  const processes = libs.map(() => new CaseProcess(v8Flags));
  const measurements = libs.map(() => [] as M[]);
  try {
    await Promise.all(processes.map((worker, position) => setup(worker, position)));
    for (let round = 0; round < settings.rounds; round++) {
      const order = libs.map((_, position) => (position + round) % libs.length);
      for (const [step, position] of order.entries()) {
        const worker = processes[position];
        if (worker === undefined) continue;
        progress.caseStarting(where, round, settings.rounds, step, libs.length, libs[position] ?? '');
        const started = performance.now();
        measurements[position]?.push(await run(worker));
        timeLeft.record(kind, performance.now() - started);
      }
      const figures = libs.map((lib, position) => {
        const latest = measurements[position]?.[round];
        return `${lib} ${latest === undefined ? '-' : figure(latest)}`;
      });
      progress.roundDone(where, round, settings.rounds, figures);
    }
  } finally {
    await Promise.all(processes.map((worker) => worker.stop()));
  }
  return measurements;
}

/** The median over rounds of `own ÷ rival` per round: both ran back to back, so slow drifts hit both. */
function perRoundRatio<M>(own: M[], rival: M[], value: (own: M, rival: M) => number): number {
  const ratios = own.map((measurement, round) => {
    const other = rival[round];
    return other === undefined ? Number.NaN : value(measurement, other);
  });
  return round3(medianBy(ratios, (ratio) => ratio));
}

async function runRedisGroup(
  state: RunState,
  file: string,
  definition: BenchDefinition,
  cases: Indexed<BenchCase>[],
  context: BenchContext,
): Promise<BenchResult[]> {
  const { settings } = state;
  const warmup = redisWarmupOps(settings);
  const op = cases[0]?.benchCase.op ?? '';
  const measurements = await runRounds<Measurement>(
    state,
    `${context.target.topology} ${op}`,
    'redis',
    cases.map(({ benchCase }) => benchCase.lib),
    [],
    (worker, position) => worker.setup(file, cases[position]?.index ?? -1, context),
    (worker) => worker.run(settings.ops, warmup, settings.concurrency),
    (measurement) => `${compact(measurement.opsPerSec)} ops/s`,
  );
  return cases.map(({ benchCase }, position): BenchResult => {
    const own = measurements[position] ?? [];
    const result: BenchResult = {
      package: definition.package,
      op: benchCase.op,
      lib: benchCase.lib,
      topology: context.target.topology,
      concurrency: settings.concurrency,
      ...medianBy(own, (m) => m.opsPerSec),
      cpuUsPerOp: medianBy(own, (m) => m.cpuUsPerOp).cpuUsPerOp,
    };
    const rivalPosition = cases.findIndex((other) => other.benchCase.lib === benchCase.vs);
    const rival = measurements[rivalPosition];
    if (benchCase.vs !== undefined && rival !== undefined && rival.length === own.length) {
      result.vs = {
        lib: benchCase.vs,
        ratio: perRoundRatio(own, rival, (a, b) => a.opsPerSec / b.opsPerSec),
        cpuRatio: perRoundRatio(own, rival, (a, b) => a.cpuUsPerOp / b.cpuUsPerOp),
      };
    }
    return result;
  });
}

async function runMicroGroup(
  state: RunState,
  file: string,
  definition: BenchDefinition,
  cases: Indexed<MicroCase>[],
): Promise<MicroResult[]> {
  const { settings } = state;
  const op = cases[0]?.benchCase.op ?? '';
  const measurements = await runRounds<MicroMeasurement>(
    state,
    `in-process ${op}`,
    'micro',
    cases.map(({ benchCase }) => benchCase.lib),
    MICRO_V8_FLAGS,
    (worker, position) => worker.setupMicro(file, cases[position]?.index ?? -1),
    (worker) => worker.runMicro(settings.microMs, microWarmupMs(settings)),
    (measurement) => `${measurement.nsPerOp.toFixed(1)} ns/op`,
  );
  return cases.map(({ benchCase }, position): MicroResult => {
    const own = measurements[position] ?? [];
    const typical = medianBy(own, (m) => m.nsPerOp);
    const bytes = (values: Array<number | null>) => {
      const known = values.filter((value): value is number => value !== null);
      return known.length === 0 ? null : medianBy(known, (value) => value);
    };
    const result: MicroResult = {
      package: definition.package,
      op: benchCase.op,
      lib: benchCase.lib,
      topology: 'in-process',
      ops: typical.ops,
      opsPerSec: typical.opsPerSec,
      nsPerOp: typical.nsPerOp,
      bytesPerOp: bytes(own.map((m) => m.bytesPerOp)),
      externalBytesPerOp: bytes(own.map((m) => m.externalBytesPerOp)),
    };
    const rivalPosition = cases.findIndex((other) => other.benchCase.lib === benchCase.vs);
    const rival = measurements[rivalPosition];
    if (benchCase.vs !== undefined && rival !== undefined && rival.length === own.length) {
      const rivalBytes = bytes(rival.map((m) => m.bytesPerOp));
      result.vs = {
        lib: benchCase.vs,
        ratio: perRoundRatio(own, rival, (a, b) => b.nsPerOp / a.nsPerOp),
        extraBytesPerOp:
          result.bytesPerOp === null || rivalBytes === null
            ? null
            : Math.round((result.bytesPerOp - rivalBytes) * 10) / 10,
      };
    }
    return result;
  });
}

const redisWarmupOps = (settings: Settings) => Math.max(1000, Math.floor(settings.ops / 10));
const microWarmupMs = (settings: Settings) => Math.max(20, Math.round(settings.microMs / 5));

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

/** One bench file with the cases BENCH_FILTER left, grouped by op, and the topologies its Redis cases run on. */
interface PlannedFile {
  file: string;
  definition: BenchDefinition;
  micro: Indexed<MicroCase>[][];
  redis: Indexed<BenchCase>[][];
  topologies: Topology[];
}

function plan(
  files: Array<{ file: string; definition: BenchDefinition }>,
  packageName: string,
  settings: Settings,
): PlannedFile[] {
  return files.map(({ file, definition }) => {
    const micro = definition.micro ?? [];
    const redis = definition.cases ?? [];
    checkCases(micro, file, 'micro');
    checkCases(redis, file, 'cases');
    const topologies = settings.topologies.filter(
      (topology) => definition.topologies === undefined || definition.topologies.includes(topology),
    );
    return {
      file,
      definition,
      micro: groupByOp(micro, selectCases(micro, packageName, settings.filter)),
      redis:
        topologies.length === 0 ? [] : groupByOp(redis, selectCases(redis, packageName, settings.filter)),
      topologies,
    };
  });
}

const casesIn = (groups: unknown[][]) => groups.reduce((sum, group) => sum + group.length, 0);

export async function main(args: string[]): Promise<number> {
  const directory = resolve(args[0] ?? process.cwd());
  const packageName = (JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8')) as { name: string })
    .name;
  const settings = readSettings();
  const files = await loadBenchFiles(directory);
  if (files.length === 0) {
    process.stderr.write(`[bench] ${packageName}: no bench/*.bench.ts files\n`);
    return 0;
  }
  const planned = plan(files, packageName, settings);
  const microRuns = planned.reduce((sum, file) => sum + casesIn(file.micro), 0) * settings.rounds;
  const redisRuns =
    planned.reduce((sum, file) => sum + casesIn(file.redis) * file.topologies.length, 0) * settings.rounds;
  if (microRuns + redisRuns === 0) {
    process.stderr.write(`[bench] ${packageName}: no case matches BENCH_FILTER=${settings.filter?.source}\n`);
    return 0;
  }

  // Guesses until a run of each kind has been timed: a micro run lasts what the settings say; a Redis run is
  // guessed at 15k ops/s, what this class of machine does at the default concurrency.
  const timeLeft = new TimeLeft({
    micro: settings.microMs + microWarmupMs(settings) + 50,
    redis: ((settings.ops + redisWarmupOps(settings)) / 15_000) * 1000,
  });
  timeLeft.plan('micro', microRuns);
  timeLeft.plan('redis', redisRuns);
  const progress = new Progress(packageName, timeLeft);
  const state: RunState = { packageName, settings, progress, timeLeft };
  const appendLine = settings.out ? lineAppender(outputPath(settings.out, directory)) : undefined;
  const at = new Date().toISOString();
  const emit = (result: BenchResult | MicroResult) => {
    const line = JSON.stringify({ ...result, at });
    progress.clear();
    process.stdout.write(`${line}\n`);
    appendLine?.(line);
  };

  progress.note(
    `[bench] ${packageName}: ${redisRuns > 0 ? `ops=${settings.ops} concurrency=${settings.concurrency} keys=${settings.keys} ` : ''}` +
      `${microRuns > 0 ? `micro=${settings.microMs}ms/round ` : ''}rounds=${settings.rounds} (medians over rounds)` +
      `${settings.filter ? ` filter=/${settings.filter.source}/i` : ''}` +
      `${settings.out ? ` out=${outputPath(settings.out, directory)}` : ''}`,
  );
  const redisResults: BenchResult[] = [];
  const microResults: MicroResult[] = [];

  // In-process cases first: they need no Redis, and a file with only those never starts one.
  for (const { file, definition, micro } of planned) {
    for (const cases of micro) {
      for (const result of await runMicroGroup(state, file, definition, cases)) {
        microResults.push(result);
        emit(result);
      }
    }
  }

  const wants = (topology: Topology) =>
    planned.some((file) => file.redis.length > 0 && file.topologies.includes(topology));
  const standalone = wants('standalone') ? await resolveRedis() : undefined;
  const cluster = wants('cluster') ? await resolveRedisCluster() : undefined;
  try {
    const targets: BenchTarget[] = [];
    if (standalone) targets.push({ topology: 'standalone', url: standalone.url });
    if (cluster) targets.push({ topology: 'cluster', nodes: cluster.nodes });
    for (const target of targets) {
      for (const { file, definition, redis, topologies } of planned) {
        if (redis.length === 0 || !topologies.includes(target.topology)) continue;
        const prefix = `bench:${definition.package}:${Math.random().toString(36).slice(2, 10)}`;
        const context: BenchContext = {
          target,
          prefix,
          keys: Array.from({ length: settings.keys }, (_, i) => `${prefix}:k:${i}`),
          value: 'v'.repeat(settings.valueBytes),
        };
        await prepareKeys(target, context);
        try {
          for (const cases of redis) {
            for (const result of await runRedisGroup(state, file, definition, cases, context)) {
              redisResults.push(result);
              emit(result);
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
  const summary = formatSummary(packageName, redisResults, microResults, settings.rounds);
  if (summary) progress.note(summary);
  return 0;
}
