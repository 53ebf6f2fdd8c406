import { Redis } from 'ioredis';
import { clusterNodesOf, clusterProblem, SLOT_COUNT } from './cluster-state.js';
import { dockerAnswers } from './docker.js';
import {
  type ClientKillFilter,
  clientKill,
  type FailoverMode,
  failover,
  killNode,
  type MigrateSlotOptions,
  type MigrateSlotResult,
  migrateSlot,
  pauseNode,
  restartNode,
  restoreCluster,
  resumeNode,
  slotOwner,
  waitForPromotion,
} from './faults.js';
import { OwnedServers } from './owned-servers.js';
import { sleep } from './processes.js';
import { findRedisServer, LOOPBACK, REDIS_MISSING_MESSAGE } from './redis-node.js';
import { asText, type RedisAddress, redisCommand } from './resp.js';
import type { RedisClusterTarget } from './types.js';

const MASTERS = 3;

export interface ClusterHandle extends RedisClusterTarget {
  /** The same fields as a plain object, safe to pass to `project.provide()`. */
  target: RedisClusterTarget;
  /** Stops every node of this handle, restarted ones included; a no-op for REDIS_CLUSTER_NODES. */
  stop(): Promise<void>;
  killNode(port: number): Promise<void>;
  restartNode(port: number): Promise<void>;
  pauseNode(port: number): Promise<void>;
  resumeNode(port: number): Promise<void>;
  failover(replicaPort: number, mode?: FailoverMode): Promise<void>;
  waitForPromotion(deadMasterPort: number, timeoutMs?: number): Promise<number>;
  clientKill(filter: ClientKillFilter): Promise<number>;
  migrateSlot(
    slot: number,
    fromPort: number,
    toPort: number,
    options?: MigrateSlotOptions,
  ): Promise<MigrateSlotResult>;
  slotOwner(slot: number): Promise<number>;
  restoreCluster(timeoutMs?: number): Promise<void>;
}

function handleOf(target: RedisClusterTarget, stop: () => Promise<void>): ClusterHandle {
  return {
    ...target,
    target: { ...target, nodes: target.nodes.map((node) => ({ ...node })) },
    stop,
    killNode: (port) => killNode(target, port),
    restartNode: (port) => restartNode(target, port),
    pauseNode: (port) => pauseNode(target, port),
    resumeNode: (port) => resumeNode(target, port),
    failover: (replicaPort, mode) => failover(target, replicaPort, mode),
    waitForPromotion: (deadMasterPort, timeoutMs) => waitForPromotion(target, deadMasterPort, timeoutMs),
    clientKill: (filter) => clientKill(target, filter),
    migrateSlot: (slot, fromPort, toPort, options) => migrateSlot(target, slot, fromPort, toPort, options),
    slotOwner: (slot) => slotOwner(target, slot),
    restoreCluster: (timeoutMs) => restoreCluster(target, timeoutMs),
  };
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<string | null>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let problem: string | null = null;
  while (Date.now() < deadline) {
    problem = await check();
    if (problem === null) return;
    await sleep(25);
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms: ${problem}`);
}

/**
 * Builds the cluster by hand rather than with `redis-cli --cluster create`, which sleeps a second
 * per convergence check: distinct config epochs up front (no collision rounds), slots to the first
 * three nodes, a full mesh of MEETs (no waiting for gossip to spread), then one REPLICATE each.
 */
async function formCluster(addresses: RedisAddress[], timeoutMs: number): Promise<void> {
  const ids = await Promise.all(
    addresses.map(async (address) => asText(await redisCommand(address, ['CLUSTER', 'MYID']))),
  );
  await Promise.all(
    addresses.map((address, index) => redisCommand(address, ['CLUSTER', 'SET-CONFIG-EPOCH', index + 1])),
  );
  await Promise.all(
    addresses.slice(0, MASTERS).map((address, index) => {
      const first = Math.floor((SLOT_COUNT * index) / MASTERS);
      const last = Math.floor((SLOT_COUNT * (index + 1)) / MASTERS) - 1;
      // ADDSLOTS with every slot listed works on Redis 6 too (ADDSLOTSRANGE is 7.0+).
      const slots = Array.from({ length: last - first + 1 }, (_, offset) => first + offset);
      return redisCommand(address, ['CLUSTER', 'ADDSLOTS', ...slots]);
    }),
  );
  const meets: Promise<unknown>[] = [];
  for (const [index, from] of addresses.entries()) {
    for (const to of addresses.slice(index + 1))
      meets.push(redisCommand(from, ['CLUSTER', 'MEET', to.host, to.port]));
  }
  await Promise.all(meets);
  const known = new Set(ids);
  await waitFor('every node knowing every other', timeoutMs, async () => {
    for (const address of addresses) {
      const entries = await clusterNodesOf(address);
      const complete =
        entries.length === addresses.length &&
        entries.every((entry) => known.has(entry.id) && !entry.flags.includes('handshake'));
      if (!complete) return `${address.port} knows ${entries.length} nodes`;
    }
    return null;
  });
  await Promise.all(
    addresses
      .slice(MASTERS)
      .map((address, index) => redisCommand(address, ['CLUSTER', 'REPLICATE', ids[index] as string])),
  );
  await waitFor('a healthy cluster', timeoutMs, () => clusterProblem(addresses, MASTERS));
}

/**
 * Starts 6 redis-server processes on consecutive loopback ports and forms a cluster of 3 masters,
 * each with one replica. Resolves once every node reports `cluster_state:ok`, all slots are
 * covered and every replica's link is up. Masters are `nodes[0..2]`, their replicas `nodes[3..5]`.
 */
export async function startRedisCluster(options: { timeoutMs?: number } = {}): Promise<ClusterHandle> {
  const binary = findRedisServer();
  if (binary === null) {
    const docker = await dockerAnswers();
    throw new Error(
      docker.ok
        ? 'redis-server was not found on PATH. A Docker engine answers, but test-env does not run Redis ' +
            'Cluster in containers (announced addresses would not be reachable from the host). Install Redis ' +
            '(`apt-get install -y redis-server redis-tools`) or set REDIS_CLUSTER_NODES=host:port,...'
        : `${REDIS_MISSING_MESSAGE} (${docker.reason})`,
    );
  }
  const servers = await OwnedServers.start(binary, MASTERS * 2, true);
  const nodes = servers.ports.map((port) => ({ host: LOOPBACK, port }));
  try {
    await formCluster(nodes, options.timeoutMs ?? 30_000);
  } catch (error) {
    await servers.stop().catch(() => {});
    throw error;
  }
  return handleOf(
    { topology: 'cluster', nodes, owned: true, source: 'process', stateDir: servers.stateDir },
    () => servers.stop(),
  );
}

export function parseClusterNodesEnv(value: string): RedisAddress[] {
  const nodes = value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const colon = part.lastIndexOf(':');
      const port = Number(part.slice(colon + 1));
      if (colon <= 0 || !Number.isInteger(port)) {
        throw new Error(`REDIS_CLUSTER_NODES must be host:port,host:port,... (got ${JSON.stringify(part)})`);
      }
      return { host: part.slice(0, colon), port };
    });
  if (nodes.length === 0) throw new Error('REDIS_CLUSTER_NODES is set but lists no nodes');
  return nodes;
}

/**
 * `REDIS_CLUSTER_NODES` when set (each node must answer and report `cluster_state:ok`; never
 * flushed, stopped or faulted), else our own 6-node cluster.
 */
export async function resolveRedisCluster(): Promise<ClusterHandle> {
  const value = process.env.REDIS_CLUSTER_NODES;
  if (!value) return startRedisCluster();
  const nodes = parseClusterNodesEnv(value);
  for (const node of nodes) {
    const client = new Redis({
      ...node,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    // ioredis reports the socket error as an event and rejects with a generic "Connection is closed".
    let socketError: Error | undefined;
    client.on('error', (error: Error) => {
      socketError = error;
    });
    try {
      await client.connect();
      const info = await client.cluster('INFO');
      if (!info.includes('cluster_state:ok')) throw new Error('cluster_state is not ok');
    } catch (error) {
      throw new Error(
        `REDIS_CLUSTER_NODES node ${node.host}:${node.port} is not usable: ${(socketError ?? (error as Error)).message}`,
      );
    } finally {
      client.disconnect();
    }
  }
  return handleOf(
    { topology: 'cluster', nodes, owned: false, source: 'env', stateDir: null },
    async () => {},
  );
}
