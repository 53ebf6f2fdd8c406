import { formatRanges, type SlotRange } from './slot-map.js';

export interface NodeHealth {
  address: string;
  ok: boolean;
  latencyMs?: number;
  error?: string;
}

export interface HealthResult {
  healthy: boolean;
  topology: 'standalone' | 'cluster';
  /** `cluster_state` from CLUSTER INFO (cluster only). */
  clusterState?: string;
  /** Slots served by a healthy master, out of 16384 (cluster only), from CLUSTER INFO. */
  slotsOk?: number;
  /** Slot ranges with no master in the refreshed slot map, or whose master did not answer (cluster only). */
  uncoveredSlots?: SlotRange[];
  nodes: NodeHealth[];
  /** Why the client is unhealthy, in words an operator can act on. */
  problems: string[];
  checkedAt: number;
}

/** What a health check needs to do, so that the logic is tested without a server and never throws. */
export interface HealthProbe {
  topology: 'standalone' | 'cluster';
  timeoutMs: number;
  /** Cluster: refreshes the slot map. */
  refresh?(): Promise<void>;
  /** The masters to PING with their slot ranges, and the slots without any master. */
  masters(): {
    masters: Array<{ address: string; ranges: SlotRange[]; ping(): Promise<unknown> }>;
    uncovered: SlotRange[];
  };
  /** CLUSTER INFO from a master that answered (cluster only). */
  clusterInfo?(address: string): Promise<Record<string, string>>;
  now(): number;
}

export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** PINGs every master, checks that the masters cover every slot, and reads CLUSTER INFO. Never throws. */
export async function checkHealth(probe: HealthProbe): Promise<HealthResult> {
  const problems: string[] = [];
  const result: HealthResult = {
    healthy: false,
    topology: probe.topology,
    nodes: [],
    problems,
    checkedAt: probe.now(),
  };
  const cluster = probe.topology === 'cluster';
  try {
    if (probe.refresh !== undefined) {
      try {
        await withTimeout(probe.refresh(), probe.timeoutMs, 'refreshing the slot map');
      } catch (error) {
        problems.push(
          `the slot map could not be refreshed (${message(error)}); the list of masters may be stale`,
        );
      }
    }
    const { masters, uncovered } = probe.masters();
    const missing: SlotRange[] = [...uncovered];
    if (cluster && uncovered.length > 0) problems.push(`slots ${formatRanges(uncovered)} have no master`);
    if (masters.length === 0) problems.push('no master is known: the client has no slot map yet');
    result.nodes = await Promise.all(
      masters.map(async (master) => {
        const started = probe.now();
        try {
          await withTimeout(master.ping(), probe.timeoutMs, 'PING');
          return { address: master.address, ok: true, latencyMs: probe.now() - started };
        } catch (error) {
          missing.push(...master.ranges);
          problems.push(
            cluster
              ? `master ${master.address} (slots ${formatRanges(master.ranges)}) did not answer PING: ${message(error)}`
              : `${master.address} did not answer PING: ${message(error)}`,
          );
          return { address: master.address, ok: false, error: message(error) };
        }
      }),
    );
    if (cluster) {
      result.uncoveredSlots = missing.sort((a, b) => a[0] - b[0]);
      const source = masters.find((_, index) => result.nodes[index]?.ok);
      if (source === undefined || probe.clusterInfo === undefined) {
        problems.push('no master answered, so the cluster state is unknown');
      } else {
        try {
          const fields = await withTimeout(
            probe.clusterInfo(source.address),
            probe.timeoutMs,
            'CLUSTER INFO',
          );
          result.clusterState = fields.cluster_state;
          result.slotsOk = Number(fields.cluster_slots_ok ?? 0);
          if (result.clusterState !== 'ok')
            problems.push(`cluster_state is ${result.clusterState ?? 'unknown'}`);
          if (result.slotsOk !== 16384) problems.push(`only ${result.slotsOk} of 16384 slots are served`);
        } catch (error) {
          problems.push(`CLUSTER INFO failed on ${source.address}: ${message(error)}`);
        }
      }
    }
  } catch (error) {
    problems.push(`health check failed: ${message(error)}`);
  }
  result.healthy = problems.length === 0;
  return result;
}
