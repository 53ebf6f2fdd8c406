import { rmSync } from 'node:fs';
import { findFreePortBlock } from './ports.js';
import {
  createStateDir,
  isOurRedis,
  killStateDirSync,
  nodePorts,
  onProcessExit,
  readPidfile,
  reapStaleStateDirs,
  terminate,
} from './processes.js';
import { type SpawnedNode, spawnNode, writeNodeConfig } from './redis-node.js';

/**
 * The redis-server processes of one handle and their state dir. Owns cleanup: the handle's stop(),
 * and a synchronous kill if the process exits or is interrupted before stop() runs.
 */
export class OwnedServers {
  private readonly seen = new Map<number, number>();
  private readonly removeExitHook: () => void;
  private stopped = false;

  private constructor(
    readonly stateDir: string,
    readonly ports: number[],
    spawned: SpawnedNode[],
  ) {
    for (const node of spawned) this.seen.set(node.pid, node.port);
    this.removeExitHook = onProcessExit(() => killStateDirSync(stateDir));
  }

  static async start(binary: string, count: number, cluster: boolean): Promise<OwnedServers> {
    reapStaleStateDirs();
    let lastError: unknown;
    // Another process can bind a port between our probe and redis-server's bind; a fresh block
    // on retry makes that race harmless.
    for (let attempt = 0; attempt < 3; attempt++) {
      const stateDir = createStateDir();
      const cleanupOnCrash = onProcessExit(() => killStateDirSync(stateDir));
      const base = await findFreePortBlock(count);
      const ports = Array.from({ length: count }, (_, index) => base + index);
      for (const port of ports) writeNodeConfig({ stateDir, port, cluster });
      const results = await Promise.allSettled(
        ports.map((port) => spawnNode(binary, stateDir, port, { detached: false })),
      );
      const spawned = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
      const failure = results.find((result) => result.status === 'rejected');
      if (!failure) {
        cleanupOnCrash();
        return new OwnedServers(stateDir, ports, spawned);
      }
      lastError = failure.reason;
      await terminate(spawned.map((node) => node.pid));
      rmSync(stateDir, { recursive: true, force: true });
      cleanupOnCrash();
    }
    throw lastError;
  }

  /**
   * Stops every redis-server of this state dir, including nodes that fault helpers restarted from
   * other processes (found through the pidfiles), then removes the dir. Throws if one survives.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const port of nodePorts(this.stateDir)) {
      const pid = readPidfile(this.stateDir, port);
      if (pid !== null) this.seen.set(pid, port);
    }
    const ours = [...this.seen].filter(([pid, port]) => isOurRedis(pid, port)).map(([pid]) => pid);
    const survivors = await terminate(ours);
    const stillUp = [...this.seen].filter(([pid, port]) => isOurRedis(pid, port));
    this.removeExitHook();
    if (survivors.length > 0 || stillUp.length > 0) {
      const list = stillUp.map(([pid, port]) => `pid ${pid} (port ${port})`).join(', ');
      killStateDirSync(this.stateDir);
      throw new Error(`[test-env] redis-server still running after stop: ${list}`);
    }
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}
