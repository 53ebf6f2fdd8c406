import type { BenchResult, MicroResult, Topology } from './types.js';

/*
 * The table printed (on stderr) at the end of a package's run: the ratios a reader wants at a glance, one row per
 * compared case, the topologies side by side. The JSON lines keep every figure; this only lines up the ratios.
 */

function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, column) => {
      widths[column] = Math.max(widths[column] ?? 0, cell.length);
    });
  }
  return rows.map((row) =>
    row
      .map((cell, column) => {
        const width = widths[column] ?? 0;
        // Text columns (op, lib, vs) align left, figures right.
        return column < 3 ? cell.padEnd(width) : cell.padStart(width);
      })
      .join('  ')
      .trimEnd(),
  );
}

const fixed = (value: number | null | undefined, digits: number) =>
  value === null || value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits);

function redisTable(results: BenchResult[], rounds: number): string[] {
  const compared = results.filter((result) => result.vs !== undefined);
  if (compared.length === 0) return [];
  const topologies = [...new Set(compared.map((result) => result.topology))] as Topology[];
  const rows = new Map<string, Map<Topology, BenchResult>>();
  for (const result of compared) {
    const key = JSON.stringify([result.op, result.lib, result.vs?.lib]);
    const row = rows.get(key) ?? new Map<Topology, BenchResult>();
    row.set(result.topology, result);
    rows.set(key, row);
  }
  const header = ['op', 'lib', 'vs', ...topologies.flatMap((topology) => [`${topology} ops×`, 'cpu×'])];
  const body: string[][] = [];
  let previousOp: string | undefined;
  for (const [key, byTopology] of rows) {
    const [op, lib, vs] = JSON.parse(key) as [string, string, string];
    body.push([
      op === previousOp ? '' : op,
      lib,
      vs,
      ...topologies.flatMap((topology) => {
        const result = byTopology.get(topology);
        return [fixed(result?.vs?.ratio, 3), fixed(result?.vs?.cpuRatio, 3)];
      }),
    ]);
    previousOp = op;
  }
  return [
    `ops× = ops/s of lib ÷ ops/s of vs (>1: lib is faster); cpu× = client CPU per op of lib ÷ that of vs (>1: lib costs more).`,
    `Each is the median of ${rounds} per-round ratios. A "(control)" row is the rival against itself: the noise floor of this run.`,
    ...table([header, ...body]),
  ];
}

function microTable(results: MicroResult[], rounds: number): string[] {
  if (results.length === 0) return [];
  const header = ['op (in-process)', 'lib', 'vs', 'ns/op', 'heap B/op', 'ext B/op', 'ops×'];
  const body: string[][] = [];
  let previousOp: string | undefined;
  for (const result of results) {
    body.push([
      result.op === previousOp ? '' : result.op,
      result.lib,
      result.vs?.lib ?? '',
      fixed(result.nsPerOp, 1),
      fixed(result.bytesPerOp, 1),
      fixed(result.externalBytesPerOp, 1),
      result.vs ? fixed(result.vs.ratio, 3) : '',
    ]);
    previousOp = result.op;
  }
  return [
    `ns/op and B/op (heap; ext = Buffer memory) are medians over ${rounds} rounds; ops× = speed of lib ÷ speed of vs, the median of per-round ratios (0.90 = 10% slower).`,
    ...table([header, ...body]),
  ];
}

export function formatSummary(
  packageName: string,
  redis: BenchResult[],
  micro: MicroResult[],
  rounds: number,
): string {
  const sections = [microTable(micro, rounds), redisTable(redis, rounds)].filter((lines) => lines.length > 0);
  if (sections.length === 0) return '';
  return [`[bench] ${packageName}: summary`, ...sections.flatMap((lines) => ['', ...lines])].join('\n');
}
