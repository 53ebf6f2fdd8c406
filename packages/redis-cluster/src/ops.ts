import { Cluster, type Redis } from 'ioredis';
import { address, queueLength } from './connection.js';
import { RedisArgumentError } from './errors.js';
import type { HealthProbe } from './health.js';
import { message } from './health.js';
import { type ParsedInfo, parseInfo } from './info.js';
import { refreshSlotMap, SLOT_COUNT, slotPlan } from './slot-map.js';

export interface NodeStats {
  /** `host:port` of the node. */
  address: string;
  role: 'standalone' | 'master' | 'replica';
  /** ioredis connection status: `wait`, `connecting`, `connect`, `ready`, `reconnecting`, `end`… */
  status: string;
  /** Commands written and waiting for a reply. */
  commandQueueLength: number;
  /** Commands held while the connection is down. */
  offlineQueueLength: number;
}

export type NodeInfo =
  | { role: NodeStats['role']; ok: true; sections: ParsedInfo }
  | { role: NodeStats['role']; ok: false; error: string };

export function nodesOf(
  client: Redis | Cluster,
  role: 'master' | 'all',
): Array<{ node: Redis; role: NodeStats['role'] }> {
  if (!(client instanceof Cluster)) return [{ node: client, role: 'standalone' }];
  const list: Array<{ node: Redis; role: NodeStats['role'] }> = client
    .nodes('master')
    .map((node) => ({ node, role: 'master' }));
  if (role === 'all') for (const node of client.nodes('slave')) list.push({ node, role: 'replica' });
  return list;
}

const SECTION = /^[a-z_]{1,32}$/i;

/** `INFO` of every node, parsed, keyed by `host:port`; a node that fails is reported, not thrown. */
export async function infoOfNodes(
  client: Redis | Cluster,
  section?: string,
): Promise<Record<string, NodeInfo>> {
  if (section !== undefined && (typeof section !== 'string' || !SECTION.test(section))) {
    throw new RedisArgumentError('section must be an INFO section name such as "server", "memory" or "all".');
  }
  const list = nodesOf(client, 'all');
  const results = await Promise.allSettled(
    list.map(({ node }) => (section === undefined ? node.info() : node.info(section))),
  );
  const byNode: Record<string, NodeInfo> = {};
  list.forEach(({ node, role }, index) => {
    const result = results[index];
    byNode[address(node)] =
      result?.status === 'fulfilled'
        ? { role, ok: true, sections: parseInfo(result.value) }
        : { role, ok: false, error: message(result?.reason) };
  });
  return byNode;
}

export function nodeStats(client: Redis | Cluster): NodeStats[] {
  return nodesOf(client, 'all').map(({ node, role }) => ({
    address: address(node),
    role,
    status: node.status,
    commandQueueLength: queueLength(node, 'commandQueue'),
    offlineQueueLength: queueLength(node, 'offlineQueue'),
  }));
}

/** The health checks against a live client: a refreshed slot map, PING per master, CLUSTER INFO. */
export function healthProbe(client: Redis | Cluster, timeoutMs: number): HealthProbe {
  const now = () => performance.now();
  if (!(client instanceof Cluster)) {
    return {
      topology: 'standalone',
      timeoutMs,
      now,
      masters: () => ({
        masters: [{ address: address(client), ranges: [[0, SLOT_COUNT - 1]], ping: () => client.ping() }],
        uncovered: [],
      }),
    };
  }
  return {
    topology: 'cluster',
    timeoutMs,
    now,
    refresh: () => refreshSlotMap(client, timeoutMs),
    masters() {
      const plan = slotPlan(client);
      return {
        uncovered: plan.uncovered,
        masters: plan.masters.map((master) => ({
          address: master.address,
          ranges: master.ranges,
          ping: () =>
            master.node === undefined
              ? Promise.reject(new Error('the client holds no connection to it'))
              : master.node.ping(),
        })),
      };
    },
    async clusterInfo(from) {
      const node = slotPlan(client).masters.find((master) => master.address === from)?.node;
      if (node === undefined) throw new Error('the client holds no connection to it');
      const info = parseInfo((await node.call('CLUSTER', 'INFO')) as string);
      return Object.values(info)[0] ?? {};
    },
  };
}
