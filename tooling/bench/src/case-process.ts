import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromWorker, ToWorker } from './protocol.js';
import type { BenchContext, Measurement, MicroMeasurement } from './types.js';

const WORKER = fileURLToPath(new URL('../bin/bench-worker.mjs', import.meta.url));

/** A benchmark case running in its own process, driven one request at a time by the harness. */
export class CaseProcess {
  private readonly child: ChildProcess;
  private pending: { resolve: (message: FromWorker) => void; reject: (error: Error) => void } | undefined;

  /** `v8Flags`: extra flags for this case's process (micro cases need one; see micro.ts). */
  constructor(v8Flags: readonly string[] = []) {
    this.child = fork(WORKER, [], {
      execArgv: ['--expose-gc', ...v8Flags],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (message: FromWorker) => {
      const pending = this.pending;
      this.pending = undefined;
      if (message.type === 'error') pending?.reject(new Error(`bench worker failed: ${message.message}`));
      else pending?.resolve(message);
    });
    this.child.on('exit', (code) => {
      this.pending?.reject(new Error(`bench worker exited with code ${code}`));
      this.pending = undefined;
    });
  }

  private request(message: ToWorker): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.child.send(message);
    });
  }

  async setup(file: string, caseIndex: number, context: BenchContext): Promise<void> {
    await this.request({ type: 'setup', file, caseIndex, context });
  }

  async run(ops: number, warmup: number, concurrency: number): Promise<Measurement> {
    const reply = await this.request({ type: 'run', ops, warmup, concurrency });
    if (reply.type !== 'result') throw new Error(`unexpected reply ${reply.type}`);
    return reply.measurement;
  }

  async setupMicro(file: string, caseIndex: number): Promise<void> {
    await this.request({ type: 'setup-micro', file, caseIndex });
  }

  async runMicro(durationMs: number, warmupMs: number): Promise<MicroMeasurement> {
    const reply = await this.request({ type: 'run-micro', durationMs, warmupMs });
    if (reply.type !== 'micro-result') throw new Error(`unexpected reply ${reply.type}`);
    return reply.measurement;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    await this.request({ type: 'stop' }).catch(() => undefined);
    if (this.child.exitCode === null) this.child.kill();
  }
}
