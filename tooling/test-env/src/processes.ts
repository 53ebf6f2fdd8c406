import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/*
 * Every redis-server we start lives in `<tmpdir>/austa-test-env-<owner pid>-<random>/node-<port>/`
 * with its pidfile. Pidfiles, not ChildProcess objects, are the record: fault helpers restart nodes
 * from test workers, and a crashed run must be cleanable by the next one.
 */

const STATE_DIR_PATTERN = /^austa-test-env-(\d+)-[0-9a-f]+$/;
const PIDFILE = 'redis.pid';

export function createStateDir(): string {
  const dir = join(tmpdir(), `austa-test-env-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function nodeDir(stateDir: string, port: number): string {
  return join(stateDir, `node-${port}`);
}

export function pidfilePath(stateDir: string, port: number): string {
  return join(nodeDir(stateDir, port), PIDFILE);
}

export function writePidfile(stateDir: string, port: number, pid: number): void {
  writeFileSync(pidfilePath(stateDir, port), `${pid}\n`);
}

export function readPidfile(stateDir: string, port: number): number | null {
  try {
    const pid = Number.parseInt(readFileSync(pidfilePath(stateDir, port), 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Ports of every node that has ever had a directory in this state dir. */
export function nodePorts(stateDir: string): number[] {
  try {
    return readdirSync(stateDir)
      .map((name) => /^node-(\d+)$/.exec(name)?.[1])
      .filter((port): port is string => port !== undefined)
      .map(Number);
  } catch {
    return [];
  }
}

function procStat(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
}

/** Alive and not a zombie: a killed child stays in the process table until its parent reaps it. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  const stat = procStat(pid);
  if (stat === null) return process.platform !== 'linux';
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** True while the process is stopped by SIGSTOP (state T). */
export function isPaused(pid: number): boolean {
  const stat = procStat(pid);
  if (stat === null) return false;
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'T';
}

/**
 * Guards against pid reuse: a pidfile left by a crashed run may name a pid that now belongs to
 * something else. Redis sets its title to `redis-server 127.0.0.1:<port> ...`.
 */
export function isOurRedis(pid: number, port: number): boolean {
  if (!isAlive(pid)) return false;
  if (process.platform !== 'linux') return true;
  try {
    const commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    return commandLine.includes('redis-server') && commandLine.includes(`:${port}`);
  } catch {
    return false;
  }
}

export function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone: the goal of every signal we send is reached either way.
  }
}

/** The pid of the live redis-server on `port` from this state dir, or null. */
export function livePid(stateDir: string, port: number): number | null {
  const pid = readPidfile(stateDir, port);
  return pid !== null && isOurRedis(pid, port) ? pid : null;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * SIGTERM, then SIGKILL whatever is still up after `graceMs`. A paused process cannot act on
 * SIGTERM, so it is continued first. Resolves with the pids that refused to die.
 */
export async function terminate(pids: number[], graceMs = 3_000): Promise<number[]> {
  for (const pid of pids) {
    signal(pid, 'SIGCONT');
    signal(pid, 'SIGTERM');
  }
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(25);
  const stubborn = pids.filter(isAlive);
  for (const pid of stubborn) signal(pid, 'SIGKILL');
  const killDeadline = Date.now() + 2_000;
  while (stubborn.some(isAlive) && Date.now() < killDeadline) await sleep(25);
  return stubborn.filter(isAlive);
}

/** Synchronous last resort for 'exit' and signal handlers, where nothing async runs. */
export function killStateDirSync(stateDir: string): void {
  for (const port of nodePorts(stateDir)) {
    const pid = livePid(stateDir, port);
    if (pid === null) continue;
    signal(pid, 'SIGCONT');
    signal(pid, 'SIGKILL');
  }
  rmSync(stateDir, { recursive: true, force: true });
}

/**
 * Removes state dirs of runs whose owner process is gone, killing the servers they left behind.
 * Runs on every start so a crashed or SIGKILLed run never leaves orphans for long.
 */
export function reapStaleStateDirs(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    const owner = Number(STATE_DIR_PATTERN.exec(name)?.[1]);
    if (!Number.isInteger(owner) || owner === process.pid || isAlive(owner)) continue;
    const dir = join(tmpdir(), name);
    if (existsSync(dir)) killStateDirSync(dir);
  }
}

type Cleanup = () => void;
const cleanups = new Set<Cleanup>();
let handlersInstalled = false;

function runCleanups(): void {
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch {
      // Best effort: one failing cleanup must not leave the other servers running.
    }
  }
  cleanups.clear();
}

function onSignal(name: NodeJS.Signals): void {
  runCleanups();
  // A listener replaces Node's default "exit on signal"; when we are the only listener, restore
  // that behaviour so Ctrl-C still stops the process.
  process.removeListener(name, onSignal);
  if (process.listenerCount(name) === 0) process.kill(process.pid, name);
}

/** Registers a synchronous cleanup that runs on exit, SIGINT or SIGTERM. Returns its remover. */
export function onProcessExit(cleanup: Cleanup): () => void {
  if (!handlersInstalled) {
    handlersInstalled = true;
    process.on('exit', runCleanups);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onSignal);
  }
  cleanups.add(cleanup);
  return () => {
    cleanups.delete(cleanup);
  };
}
