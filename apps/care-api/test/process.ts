import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const APP_DIR = fileURLToPath(new URL('..', import.meta.url));
export const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

/** Variables a developer's shell or CI may carry that would change what "nothing configured" means. */
const SERVICE_VARIABLES =
  /^(NODE_ENV|HOST|PORT|LOG_LEVEL|REDIS_|MONGODB_|SESSION_SECRET|DATA_ENCRYPTION_|TRUST_PROXY|BODY_LIMIT_BYTES|SHUTDOWN_TIMEOUT_MS|HEALTH_TIMEOUT_MS)/;

export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env))
    if (!SERVICE_VARIABLES.test(name)) env[name] = value;
  return { ...env, ...extra };
}

export interface ServiceProcess {
  child: ChildProcess;
  pid: number;
  /** `http://127.0.0.1:<port>` from the "care-api listening" log line. */
  address: string;
  /** Every log line so far (JSON objects where they parse). */
  logs: Array<Record<string, unknown>>;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `node dist/main.js` (the build the Dockerfile runs) on a free port and waits for its "listening" line.
 * Rejects with the process output when it exits first or does not listen within `timeoutMs`.
 */
export function startServiceProcess(
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<ServiceProcess> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run pnpm --filter @austa/care-api build first`);
  const child = spawn(process.execPath, [MAIN], {
    cwd: APP_DIR,
    env: cleanEnv({ PORT: '0', LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  let buffered = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `care-api did not listen within ${timeoutMs} ms; stderr: ${stderr}; logs: ${JSON.stringify(logs)}`,
        ),
      );
    }, timeoutMs);
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line);
        } catch {
          entry = { raw: line };
        }
        logs.push(entry);
        if (entry.msg === 'care-api listening' && typeof entry.address === 'string') {
          clearTimeout(timer);
          resolve({
            child,
            pid: child.pid as number,
            address: entry.address,
            logs,
            stderr: () => stderr,
            exited,
          });
        }
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(
        new Error(
          `care-api exited (${code ?? signal}) before listening; stderr: ${stderr}; logs: ${JSON.stringify(logs)}`,
        ),
      );
    });
  });
}

/** SIGTERM, then the exit; SIGKILL if it outlives `timeoutMs` (a failed test must not leave it running). */
export async function stopServiceProcess(
  service: ServiceProcess,
  timeoutMs = 20_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; durationMs: number }> {
  const started = Date.now();
  if (service.child.exitCode === null && service.child.signalCode === null) service.child.kill('SIGTERM');
  const timer = setTimeout(() => service.child.kill('SIGKILL'), timeoutMs);
  const result = await service.exited;
  clearTimeout(timer);
  return { ...result, durationMs: Date.now() - started };
}

/** Runs the built service with an env and returns its exit code and output (for startup failures). */
export function runToExit(
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN], {
      cwd: APP_DIR,
      env: cleanEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`care-api did not exit within ${timeoutMs} ms: ${stdout}${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}
