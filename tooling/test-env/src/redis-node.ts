import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { nodeDir, pidfilePath, sleep, writePidfile } from './processes.js';
import { ping } from './resp.js';

export const LOOPBACK = '127.0.0.1';

export const REDIS_MISSING_MESSAGE =
  'redis-server was not found on PATH and no Docker engine answered. Install Redis ' +
  '(Debian/Ubuntu: `apt-get install -y redis-server redis-tools`; macOS: `brew install redis`), ' +
  'or point the tests at servers you run: REDIS_URL=redis://host:port and ' +
  'REDIS_CLUSTER_NODES=host:port,host:port,... (those are never flushed or faulted).';

export function findRedisServer(): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'redis-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this PATH entry.
    }
  }
  return null;
}

function quote(value: string): string {
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

export interface NodeConfigOptions {
  stateDir: string;
  port: number;
  cluster: boolean;
}

/**
 * Writes `node-<port>/redis.conf`. A config file, not command-line flags, because restartNode runs
 * in a test worker that only knows the state dir and the port: the file is the whole recipe.
 */
export function writeNodeConfig({ stateDir, port, cluster }: NodeConfigOptions): string {
  const dir = nodeDir(stateDir, port);
  mkdirSync(dir, { recursive: true });
  const lines = [
    `port ${port}`,
    `bind ${LOOPBACK}`,
    'protected-mode no',
    'daemonize no',
    'save ""',
    'appendonly no',
    `dir ${quote(dir)}`,
    `pidfile ${quote(pidfilePath(stateDir, port))}`,
    `logfile ${quote(join(dir, 'redis.log'))}`,
    // The default 5 s wait lets more replicas share one diskless sync; we have one replica per
    // master and want it attached now.
    'repl-diskless-sync-delay 0',
  ];
  if (cluster) {
    lines.push(
      'cluster-enabled yes',
      `cluster-config-file ${quote(join(dir, 'nodes.conf'))}`,
      // Short enough that a killed master is replaced in a few seconds, long enough that a busy
      // 2-core CI box does not see false failures.
      'cluster-node-timeout 2000',
      `cluster-announce-ip ${LOOPBACK}`,
      // A replica whose link was down for long (say, its master was paused) must still be allowed
      // to take over; the default factor would leave the slots uncovered.
      'cluster-replica-validity-factor 0',
      // CLUSTER SLOTS leaves out a replica until its replication offset is non-zero, and an idle master only
      // advances it with the replication PING (every 10 s by default). Clients would not see replicas until then.
      'repl-ping-replica-period 1',
    );
  }
  const file = join(dir, 'redis.conf');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

export interface SpawnedNode {
  port: number;
  pid: number;
  child: ChildProcess;
}

/**
 * Starts `redis-server <conf>` and waits for PING. `detached` is for restarts from test workers:
 * the node must outlive the worker, and the run's teardown finds it again through the pidfile.
 */
export async function spawnNode(
  binary: string,
  stateDir: string,
  port: number,
  options: { detached: boolean; timeoutMs?: number },
): Promise<SpawnedNode> {
  const config = join(nodeDir(stateDir, port), 'redis.conf');
  const child = spawn(binary, [config], { stdio: 'ignore', detached: options.detached });
  const pid = child.pid;
  if (pid === undefined) {
    const error = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new Error(`could not start ${binary}: ${error.message}`);
  }
  // Written before Redis writes its own, so a crash in between still leaves a record of the pid.
  writePidfile(stateDir, port, pid);
  let exitCode: number | string | null = null;
  child.once('exit', (code, signalName) => {
    exitCode = code ?? signalName;
  });
  if (options.detached) child.unref();

  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  while (Date.now() < deadline) {
    if (exitCode !== null) {
      throw new Error(
        `redis-server on port ${port} exited (${exitCode}) during startup${logTail(stateDir, port)}`,
      );
    }
    if (await ping({ host: LOOPBACK, port }, 500)) return { port, pid, child };
    await sleep(20);
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server on port ${port} did not answer PING in time${logTail(stateDir, port)}`);
}

export function logTail(stateDir: string, port: number, lines = 8): string {
  try {
    const text = readFileSync(join(nodeDir(stateDir, port), 'redis.log'), 'utf8').trimEnd();
    return `\n--- ${join(nodeDir(stateDir, port), 'redis.log')} (last ${lines} lines) ---\n${text.split('\n').slice(-lines).join('\n')}`;
  } catch {
    return '';
  }
}
