import { asText, parseInfo, type RedisAddress, RespConnection, redisCommand } from './resp.js';

export const SLOT_COUNT = 16_384;

export interface ClusterNodeEntry {
  id: string;
  host: string;
  port: number;
  flags: string[];
  myself: boolean;
  role: 'master' | 'replica';
  /** The master's node id for a replica; null for a master. */
  masterId: string | null;
  configEpoch: number;
  /** True when flagged `fail` or `fail?` (PFAIL) in this view. */
  failing: boolean;
  connected: boolean;
  /** Inclusive ranges. */
  slots: Array<[number, number]>;
  migrating: Array<{ slot: number; nodeId: string }>;
  importing: Array<{ slot: number; nodeId: string }>;
}

/** Parses `CLUSTER NODES` (and nodes.conf, which shares the format). */
export function parseClusterNodes(text: string): ClusterNodeEntry[] {
  const entries: ClusterNodeEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(' ');
    const [id, address, flagText, master, , , configEpoch, linkState, ...slotFields] = fields;
    if (!id || !address || !flagText || !master || !linkState || id === 'vars') continue;
    // `ip:port@cport[,hostname]`
    const hostPort = address.split('@')[0] ?? '';
    const colon = hostPort.lastIndexOf(':');
    const flags = flagText.split(',');
    const entry: ClusterNodeEntry = {
      id,
      host: hostPort.slice(0, colon),
      port: Number(hostPort.slice(colon + 1)),
      flags,
      myself: flags.includes('myself'),
      role: flags.includes('master') ? 'master' : 'replica',
      masterId: master === '-' ? null : master,
      configEpoch: Number(configEpoch),
      failing: flags.includes('fail') || flags.includes('fail?'),
      connected: linkState === 'connected',
      slots: [],
      migrating: [],
      importing: [],
    };
    for (const slotField of slotFields) {
      const open = /^\[(\d+)-([<>])-([0-9a-f]+)\]$/.exec(slotField);
      if (open) {
        const target = open[2] === '>' ? entry.migrating : entry.importing;
        target.push({ slot: Number(open[1]), nodeId: open[3] ?? '' });
        continue;
      }
      const [start, end] = slotField.split('-');
      if (start === undefined || start === '') continue;
      entry.slots.push([Number(start), Number(end ?? start)]);
    }
    entries.push(entry);
  }
  return entries;
}

export function ownsSlot(entry: ClusterNodeEntry, slot: number): boolean {
  return entry.slots.some(([start, end]) => slot >= start && slot <= end);
}

export async function clusterNodesOf(address: RedisAddress, timeoutMs = 2_000): Promise<ClusterNodeEntry[]> {
  return parseClusterNodes(asText(await redisCommand(address, ['CLUSTER', 'NODES'], timeoutMs)));
}

export async function clusterInfoOf(address: RedisAddress, timeoutMs = 2_000): Promise<Map<string, string>> {
  return parseInfo(asText(await redisCommand(address, ['CLUSTER', 'INFO'], timeoutMs)));
}

export async function replicationInfoOf(
  address: RedisAddress,
  timeoutMs = 2_000,
): Promise<Map<string, string>> {
  return parseInfo(asText(await redisCommand(address, ['INFO', 'replication'], timeoutMs)));
}

export function myselfOf(entries: ClusterNodeEntry[]): ClusterNodeEntry {
  const myself = entries.find((entry) => entry.myself);
  if (!myself) throw new Error('CLUSTER NODES has no `myself` line');
  return myself;
}

interface NodeView {
  address: RedisAddress;
  info: Map<string, string>;
  nodes: ClusterNodeEntry[];
  replication: Map<string, string>;
  slotReplicaCounts: number[];
}

async function viewOf(address: RedisAddress): Promise<NodeView> {
  const connection = await RespConnection.connect(address, 1_000);
  try {
    const [info, nodes, replication, slots] = await Promise.all([
      connection.command(['CLUSTER', 'INFO'], 2_000),
      connection.command(['CLUSTER', 'NODES'], 2_000),
      connection.command(['INFO', 'replication'], 2_000),
      connection.command(['CLUSTER', 'SLOTS'], 2_000),
    ]);
    return {
      address,
      info: parseInfo(asText(info)),
      nodes: parseClusterNodes(asText(nodes)),
      replication: parseInfo(asText(replication)),
      // Each CLUSTER SLOTS entry is [start, end, master, ...replicas]; clients discover replicas only from it.
      slotReplicaCounts: Array.isArray(slots)
        ? slots.map((entry) => (Array.isArray(entry) ? entry.length - 3 : 0))
        : [],
    };
  } finally {
    connection.close();
  }
}

/**
 * Returns null when the cluster is healthy, else the first problem found. Healthy means: every node
 * answers and reports `cluster_state:ok` with all 16384 slots ok, every view agrees on who masters
 * which slots and who replicates whom, there are exactly `masters` masters with slots and each has
 * exactly one replica whose replication link is up, nothing is failing, no slot is open.
 */
export async function clusterProblem(addresses: RedisAddress[], masters = 3): Promise<string | null> {
  let views: NodeView[];
  try {
    views = await Promise.all(addresses.map(viewOf));
  } catch (error) {
    return (error as Error).message;
  }
  const signatures = new Set<string>();
  for (const view of views) {
    const where = `${view.address.host}:${view.address.port}`;
    if (view.info.get('cluster_state') !== 'ok') {
      return `${where} reports cluster_state:${view.info.get('cluster_state')}`;
    }
    if (view.info.get('cluster_slots_ok') !== String(SLOT_COUNT)) {
      return `${where} reports cluster_slots_ok:${view.info.get('cluster_slots_ok')}`;
    }
    if (view.nodes.length !== addresses.length) {
      return `${where} knows ${view.nodes.length} of ${addresses.length} nodes`;
    }
    for (const entry of view.nodes) {
      if (entry.failing || entry.flags.includes('handshake') || entry.flags.includes('noaddr')) {
        return `${where} sees ${entry.host}:${entry.port} as ${entry.flags.join(',')}`;
      }
      if (!entry.myself && !entry.connected) return `${where} has no bus link to ${entry.host}:${entry.port}`;
      if (entry.migrating.length > 0 || entry.importing.length > 0) {
        return `${entry.host}:${entry.port} has an open slot (${[...entry.migrating, ...entry.importing].map((open) => open.slot).join(',')})`;
      }
    }
    if (view.slotReplicaCounts.some((count) => count < 1)) {
      return `${where} lists a slot range without a replica in CLUSTER SLOTS (replica offset not advertised yet)`;
    }
    const myself = myselfOf(view.nodes);
    if (myself.role === 'replica' && view.replication.get('master_link_status') !== 'up') {
      return `replica ${where} replication link is ${view.replication.get('master_link_status')}`;
    }
    signatures.add(
      view.nodes
        .map((entry) => `${entry.id}:${entry.role}:${entry.masterId ?? ''}:${JSON.stringify(entry.slots)}`)
        .sort()
        .join('|'),
    );
  }
  if (signatures.size > 1) return 'nodes disagree about the topology (gossip still spreading)';
  const nodes = views[0]?.nodes ?? [];
  const slotted = nodes.filter((entry) => entry.role === 'master' && entry.slots.length > 0);
  if (slotted.length !== masters) return `${slotted.length} masters own slots, expected ${masters}`;
  for (const master of slotted) {
    const replicas = nodes.filter((entry) => entry.masterId === master.id);
    if (replicas.length !== 1) {
      return `master ${master.host}:${master.port} has ${replicas.length} replicas, expected 1`;
    }
  }
  return null;
}
