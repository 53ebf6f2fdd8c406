import { type ChildProcess, spawn } from 'node:child_process';
import {
  accessSync,
  constants,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/*
 * The development default: with no REDIS_URL / REDIS_CLUSTER_NODES, `pnpm start` runs its own redis-server on a free
 * loopback port, without persistence, and stops it on exit. Never used with NODE_ENV=production (config refuses).
 *
 * The child runs in its own process group: Ctrl-C in a terminal signals the whole foreground group, and Redis must
 * outlive the service's graceful shutdown, which still talks to it. A pidfile per run lets the next start remove a
 * server left behind by a service that was SIGKILLed.
 */

const STATE_PREFIX = 'care-api-redis-';

export interface EmbeddedRedis {
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

export class EmbeddedRedisError extends Error {
  readonly code = 'E_EMBEDDED_REDIS';
  constructor(message: string) {
    super(message);
    this.name = 'EmbeddedRedisError';
  }
}

export function findOnPath(binary: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, binary), constants.X_OK);
      return join(dir, binary);
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function isRedisServer(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('redis-server');
  } catch {
    return false;
  }
}

/** Removes state dirs of earlier runs whose service is gone, stopping the redis-server each one left. */
function reapStale(root: string): void {
  let entries: string[];
  try {
    entries = readdirSync(root).filter((name) => name.startsWith(STATE_PREFIX));
  } catch {
    return;
  }
  for (const name of entries) {
    const dir = join(root, name);
    try {
      const { owner, server } = JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8')) as {
        owner: number;
        server: number;
      };
      if (alive(owner)) continue;
      if (alive(server) && isRedisServer(server)) process.kill(server, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // A directory being written by another starting service, or not ours: leave it.
    }
  }
}

function ping(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const timer = setTimeout(() => finish(false), timeoutMs);
    let reply = '';
    function finish(ok: boolean) {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    }
    socket.once('error', () => finish(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
  });
}

function logTail(dir: string): string {
  try {
    return readFileSync(join(dir, 'redis.log'), 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return 'no log';
  }
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Starts redis-server on a free loopback port and resolves once it answers PING. */
export async function startEmbeddedRedis(
  options: { readyTimeoutMs?: number; binary?: string } = {},
): Promise<EmbeddedRedis> {
  const binary = options.binary ?? findOnPath('redis-server');
  if (binary === undefined) {
    throw new EmbeddedRedisError(
      'No REDIS_URL or REDIS_CLUSTER_NODES is set and redis-server is not on PATH, so the development Redis cannot ' +
        'start. Install Redis (Debian/Ubuntu: apt-get install -y redis-server) or set REDIS_URL=redis://host:6379.',
    );
  }
  const root = tmpdir();
  reapStale(root);
  const dir = mkdtempSync(join(root, STATE_PREFIX));
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const child = spawn(
    binary,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--protected-mode',
      'yes',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--logfile',
      join(dir, 'redis.log'),
      '--daemonize',
      'no',
    ],
    { detached: true, stdio: 'ignore', cwd: dir },
  );
  const pid = child.pid;
  if (pid === undefined) throw new EmbeddedRedisError(`redis-server (${binary}) could not be started`);
  writeFileSync(join(dir, 'owner.json'), JSON.stringify({ owner: process.pid, server: pid, port }));
  // Also stopped on a crash or process.exit(): 'exit' handlers may only do synchronous work, and a signal is that.
  const killOnExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', killOnExit);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });

  const deadline = Date.now() + (options.readyTimeoutMs ?? 10_000);
  while (!(await ping(port, 500))) {
    if (exited || Date.now() > deadline) {
      const why = exited
        ? `exited with ${child.exitCode ?? child.signalCode}`
        : 'did not answer PING in time';
      const tail = logTail(dir);
      killOnExit();
      process.removeListener('exit', killOnExit);
      throw new EmbeddedRedisError(`the development redis-server on port ${port} ${why} (${tail})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  let stopping: Promise<void> | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid,
    stop() {
      stopping ??= (async () => {
        if (!exited) {
          child.kill('SIGTERM');
          if (!(await waitForExit(child, 3000))) {
            child.kill('SIGKILL');
            await waitForExit(child, 2000);
          }
        }
        process.removeListener('exit', killOnExit);
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}
