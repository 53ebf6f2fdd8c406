import type { Topology } from './types.js';

/** Everything `pnpm bench` reads from the environment, checked once up front. */
export interface Settings {
  /** Timed operations per case per round (Redis cases). */
  ops: number;
  /** Callers in flight (Redis cases). */
  concurrency: number;
  keys: number;
  rounds: number;
  valueBytes: number;
  /** Timed milliseconds per micro case per round. */
  microMs: number;
  topologies: Topology[];
  /** Runs only cases whose op, lib or package matches (plus the cases they are compared to). */
  filter: RegExp | undefined;
  /** Where JSON lines are appended, besides stdout. */
  out: string | undefined;
}

type Env = Record<string, string | undefined>;

function intFromEnv(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer (got ${raw}).`);
  }
  return value;
}

function topologiesFromEnv(env: Env): Topology[] {
  const raw = env.BENCH_TOPOLOGIES;
  if (raw === undefined || raw.trim() === '') return ['standalone', 'cluster'];
  const names = raw.split(',').map((name) => name.trim());
  for (const name of names) {
    if (name !== 'standalone' && name !== 'cluster') {
      throw new Error(`BENCH_TOPOLOGIES takes standalone and/or cluster, comma-separated (got ${raw}).`);
    }
  }
  return names as Topology[];
}

function filterFromEnv(env: Env): RegExp | undefined {
  const raw = env.BENCH_FILTER;
  if (raw === undefined || raw === '') return undefined;
  try {
    return new RegExp(raw, 'i');
  } catch (error) {
    throw new Error(`BENCH_FILTER is not a valid regular expression (${(error as Error).message}).`);
  }
}

export function readSettings(env: Env = process.env): Settings {
  return {
    ops: intFromEnv(env, 'BENCH_OPS', 20_000),
    concurrency: intFromEnv(env, 'BENCH_CONCURRENCY', 100),
    keys: intFromEnv(env, 'BENCH_KEYS', 1000),
    rounds: intFromEnv(env, 'BENCH_ROUNDS', 12),
    valueBytes: intFromEnv(env, 'BENCH_VALUE_BYTES', 256),
    microMs: intFromEnv(env, 'BENCH_MICRO_MS', 250),
    topologies: topologiesFromEnv(env),
    filter: filterFromEnv(env),
    out: env.BENCH_OUT === '' ? undefined : env.BENCH_OUT,
  };
}
