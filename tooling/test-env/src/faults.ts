import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ClusterNodeEntry,
  clusterInfoOf,
  clusterNodesOf,
  clusterProblem,
  myselfOf,
  ownsSlot,
  parseClusterNodes,
  replicationInfoOf,
  SLOT_COUNT,
} from './cluster-state.js';
import { keySlot } from './key-slot.js';
import { findFreePortBlock } from './ports.js';
import { isAlive, isPaused, livePid, nodeDir, signal, sleep } from './processes.js';
import {
  findRedisServer,
  LOOPBACK,
  logTail,
  REDIS_MISSING_MESSAGE,
  spawnNode,
  writeNodeConfig,
} from './redis-node.js';
import { asBuffers, asInteger, asText, type RedisAddress, RespConnection, redisCommand } from './resp.js';
import type { RedisClusterTarget, RedisNodeAddress, RedisStandaloneTarget } from './types.js';

/*
 * Fault helpers run in test workers, not in the process that started the servers. They act through
 * the descriptor alone: ports for commands, the state dir for pidfiles and configs.
 */

/** What the fault helpers need from a cluster: a target from `inject()` or a handle. */
export type ClusterDescriptor = Pick<RedisClusterTarget, 'nodes' | 'owned' | 'stateDir'>;
export type ServerDescriptor =
  | ClusterDescriptor
  | Pick<RedisStandaloneTarget, 'host' | 'port' | 'owned' | 'stateDir'>;

export type FailoverMode = 'default' | 'force' | 'takeover';

export type ClientKillFilter =
  | {
      id: number;
      /** Client ids are per node: on a cluster, the node to run the kill on. */
      port?: number;
    }
  | { addr: string }
  | { laddr: string }
  | { user: string }
  /** Kills every connection whose `CLIENT SETNAME` (ioredis `connectionName`) equals this. */
  | { name: string };

export interface MigrateSlotOptions {
  /**
   * Which keys of the slot to MIGRATE before stopping or finishing: all of them (default), none, or
   * the listed ones (each must hash to `slot`).
   */
  keys?: 'all' | 'none' | Array<string | Buffer>;
  /**
   * `'importing'` leaves the slot open (IMPORTING on the target, MIGRATING on the source) after the
   * keys moved, so a client asking the source for a moved key gets `-ASK`. Without it the slot is
   * reassigned on every master and clients get `-MOVED`.
   */
  stopAfter?: 'importing';
  timeoutMs?: number;
}

export interface MigrateSlotResult {
  slot: number;
  fromPort: number;
  toPort: number;
  movedKeys: number;
  /** `open` when stopped after importing; `done` when the target owns the slot everywhere. */
  state: 'open' | 'done';
}

export interface ClusterTopology {
  masters: Array<{ port: number; id: string; slots: Array<[number, number]>; replicaPorts: number[] }>;
}

function assertOwned<T extends { owned: boolean; stateDir: string | null }>(
  target: T,
  action: string,
): asserts target is T & { stateDir: string } {
  if (!target.owned) {
    throw new Error(
      `[test-env] ${action} refused: this server was given through REDIS_URL / REDIS_CLUSTER_NODES, ` +
        'and test-env never harms servers it did not start. Unset those variables to run fault tests.',
    );
  }
  if (target.stateDir === null) {
    throw new Error(
      `[test-env] ${action} needs a server that test-env runs as a local process (not Docker).`,
    );
  }
}

function nodeAt(cluster: ClusterDescriptor, port: number): RedisNodeAddress {
  const node = cluster.nodes.find((candidate) => candidate.port === port);
  if (!node) {
    throw new Error(
      `port ${port} is not a node of this cluster (${cluster.nodes.map((n) => n.port).join(', ')})`,
    );
  }
  return node;
}

function requirePid(stateDir: string, port: number): number {
  const pid = livePid(stateDir, port);
  if (pid === null) throw new Error(`redis-server on port ${port} is not running`);
  return pid;
}

async function until<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | null>,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    try {
      const result = await check();
      if (result !== null) return result;
    } catch (error) {
      lastError = ` (last error: ${(error as Error).message})`;
    }
    if (Date.now() >= deadline) {
      throw new Error(`[test-env] timed out after ${timeoutMs} ms waiting for ${what}${lastError}`);
    }
    await sleep(intervalMs);
  }
}

/** The node's own view, or null when it does not answer quickly (dead or paused). */
async function ownViewOf(address: RedisAddress): Promise<ClusterNodeEntry[] | null> {
  try {
    return await clusterNodesOf(address, 500);
  } catch {
    return null;
  }
}

function isServing(stateDir: string, port: number): boolean {
  const pid = livePid(stateDir, port);
  return pid !== null && !isPaused(pid);
}

/** SIGKILLs a node (no shutdown, no goodbye to the cluster) and waits until it is gone. */
export async function killNode(cluster: ClusterDescriptor, port: number): Promise<void> {
  assertOwned(cluster, 'killNode');
  nodeAt(cluster, port);
  const pid = requirePid(cluster.stateDir, port);
  signal(pid, 'SIGKILL');
  await until(`pid ${pid} (port ${port}) to die`, 5_000, async () => (isAlive(pid) ? null : true), 10);
}

/**
 * Starts a killed node again with its config and nodes.conf, so it rejoins with its old identity,
 * and waits until it answers and reports `cluster_state:ok` and no other node flags it as failing.
 * A master restarted before its replica took over comes back empty (nothing is persisted).
 */
export async function restartNode(
  cluster: ClusterDescriptor,
  port: number,
  options: { timeoutMs?: number } = {},
): Promise<void> {
  assertOwned(cluster, 'restartNode');
  const node = nodeAt(cluster, port);
  if (livePid(cluster.stateDir, port) !== null) {
    throw new Error(`redis-server on port ${port} is still running; killNode() it first`);
  }
  await spawnDetached(cluster.stateDir, port);
  const timeoutMs = options.timeoutMs ?? 30_000;
  await until(`port ${port} to rejoin the cluster`, timeoutMs, async () => {
    const info = await clusterInfoOf(node, 1_000);
    if (info.get('cluster_state') !== 'ok') return null;
    for (const other of cluster.nodes) {
      if (other.port === port || !isServing(cluster.stateDir, other.port)) continue;
      const view = await clusterNodesOf(other, 1_000);
      if (view.some((entry) => entry.port === port && entry.failing)) return null;
    }
    return true;
  });
}

async function spawnDetached(stateDir: string, port: number): Promise<void> {
  const binary = findRedisServer();
  if (binary === null) throw new Error(REDIS_MISSING_MESSAGE);
  await spawnNode(binary, stateDir, port, { detached: true });
}

/** SIGSTOPs a node: its sockets stay open but it answers nothing, like a long GC pause or a hung VM. */
export async function pauseNode(cluster: ServerDescriptor, port?: number): Promise<void> {
  assertOwned(cluster, 'pauseNode');
  const target = port ?? portOfStandalone(cluster);
  const pid = requirePid(cluster.stateDir, target);
  signal(pid, 'SIGSTOP');
  await until(`port ${target} to stop`, 2_000, async () => (isPaused(pid) ? true : null), 5);
}

/** SIGCONTs a paused node and waits until it answers PING. */
export async function resumeNode(cluster: ServerDescriptor, port?: number): Promise<void> {
  assertOwned(cluster, 'resumeNode');
  const target = port ?? portOfStandalone(cluster);
  const pid = requirePid(cluster.stateDir, target);
  signal(pid, 'SIGCONT');
  await until(`port ${target} to answer after SIGCONT`, 5_000, async () =>
    asText(await redisCommand({ host: hostOf(cluster, target), port: target }, ['PING'], 500)) === 'PONG'
      ? true
      : null,
  );
}

function portOfStandalone(server: ServerDescriptor): number {
  if ('port' in server) return server.port;
  throw new Error('a cluster fault needs the port of the node to act on');
}

function hostOf(server: ServerDescriptor, port: number): string {
  return 'nodes' in server ? nodeAt(server, port).host : server.host;
}

/**
 * Runs `CLUSTER FAILOVER [FORCE|TAKEOVER]` on a replica and waits until it is a master that reports
 * `cluster_state:ok`. `default` needs the master to answer; use `force` or `takeover` when it does not.
 */
export async function failover(
  cluster: ClusterDescriptor,
  replicaPort: number,
  mode: FailoverMode = 'default',
  options: { timeoutMs?: number } = {},
): Promise<void> {
  assertOwned(cluster, 'failover');
  const node = nodeAt(cluster, replicaPort);
  const role = (await replicationInfoOf(node)).get('role');
  if (role !== 'slave') {
    throw new Error(`port ${replicaPort} is a ${role}, not a replica: nothing to fail over`);
  }
  await redisCommand(
    node,
    mode === 'default' ? ['CLUSTER', 'FAILOVER'] : ['CLUSTER', 'FAILOVER', mode.toUpperCase()],
  );
  await until(
    `replica ${replicaPort} to become master (CLUSTER FAILOVER ${mode})`,
    options.timeoutMs ?? 20_000,
    async () => {
      const [replication, info] = await Promise.all([
        replicationInfoOf(node, 1_000),
        clusterInfoOf(node, 1_000),
      ]);
      return replication.get('role') === 'master' && info.get('cluster_state') === 'ok' ? true : null;
    },
  );
  await waitForAgreement(cluster, replicaPort, options.timeoutMs ?? 20_000);
}

/**
 * Waits until every serving node sees `port` as the master of its slots, so what a test does next
 * (slotOwner, clusterTopology, a direct connection expecting MOVED) does not depend on which node
 * it happens to ask.
 */
async function waitForAgreement(cluster: ClusterDescriptor, port: number, timeoutMs: number): Promise<void> {
  const myself = myselfOf(await clusterNodesOf(nodeAt(cluster, port)));
  const firstSlot = myself.slots[0]?.[0];
  if (firstSlot !== undefined) await waitForSlotOwner(cluster, firstSlot, myself.id, timeoutMs);
}

/** The slots a node owned when it last saved nodes.conf, which it does on every config change. */
function savedSlotsOf(stateDir: string, port: number): Array<[number, number]> {
  const file = join(nodeDir(stateDir, port), 'nodes.conf');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`no nodes.conf for port ${port}: is it a node of this cluster?`);
  }
  return myselfOf(parseClusterNodes(text)).slots;
}

/**
 * Waits until another node has taken over the slots of a killed or paused master, and resolves with
 * its port. The new master must claim the slots, report `cluster_state:ok`, and every other serving
 * node must agree.
 */
export async function waitForPromotion(
  cluster: ClusterDescriptor,
  deadMasterPort: number,
  timeoutMs = 20_000,
): Promise<number> {
  assertOwned(cluster, 'waitForPromotion');
  nodeAt(cluster, deadMasterPort);
  const firstSlot = savedSlotsOf(cluster.stateDir, deadMasterPort)[0]?.[0];
  if (firstSlot === undefined) throw new Error(`port ${deadMasterPort} owned no slots: it was not a master`);
  const started = Date.now();
  const promoted = await until(`a replica of ${deadMasterPort} to be promoted`, timeoutMs, async () => {
    const candidates = cluster.nodes.filter((node) => node.port !== deadMasterPort);
    const views = await Promise.all(candidates.map(ownViewOf));
    for (const [index, view] of views.entries()) {
      const candidate = candidates[index];
      if (!view || !candidate) continue;
      const myself = myselfOf(view);
      if (myself.role !== 'master' || !ownsSlot(myself, firstSlot)) continue;
      const info = await clusterInfoOf(candidate, 1_000);
      if (info.get('cluster_state') === 'ok') return candidate.port;
    }
    return null;
  });
  await waitForAgreement(cluster, promoted, Math.max(1_000, timeoutMs - (Date.now() - started)));
  return promoted;
}

function parseClientList(text: string): Array<Map<string, string>> {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const fields = new Map<string, string>();
      for (const pair of line.trim().split(' ')) {
        const equals = pair.indexOf('=');
        if (equals > 0) fields.set(pair.slice(0, equals), pair.slice(equals + 1));
      }
      return fields;
    });
}

/**
 * `CLIENT KILL` on every node of a cluster (or on the standalone server) that is serving, and
 * returns how many connections were killed. Connections are dropped server-side; ioredis sees a
 * closed socket and reconnects, as it would after a network blip or a proxy restart.
 */
export async function clientKill(server: ServerDescriptor, filter: ClientKillFilter): Promise<number> {
  assertOwned(server, 'clientKill');
  const { stateDir } = server;
  let addresses: RedisAddress[] =
    'nodes' in server ? server.nodes : [{ host: server.host, port: server.port }];
  if ('id' in filter) {
    if (filter.port !== undefined) addresses = addresses.filter((address) => address.port === filter.port);
    else if (addresses.length > 1) throw new Error('client ids are per node: pass { id, port } on a cluster');
  }
  // A dead or paused node has no clients to kill and would only make us wait.
  addresses = addresses.filter((address) => isServing(stateDir, address.port));
  const counts = await Promise.all(
    addresses.map(async (address) => {
      if ('name' in filter) {
        const connection = await RespConnection.connect(address, 1_000);
        try {
          const clients = parseClientList(asText(await connection.command(['CLIENT', 'LIST'])));
          let killed = 0;
          for (const client of clients) {
            const id = client.get('id');
            if (client.get('name') !== filter.name || id === undefined) continue;
            // 0 when the client disconnected between LIST and KILL.
            killed += asInteger(await connection.command(['CLIENT', 'KILL', 'ID', id]));
          }
          return killed;
        } finally {
          connection.close();
        }
      }
      const [field, value] =
        'id' in filter
          ? ['ID', String(filter.id)]
          : 'addr' in filter
            ? ['ADDR', filter.addr]
            : 'laddr' in filter
              ? ['LADDR', filter.laddr]
              : ['USER', filter.user];
      return asInteger(await redisCommand(address, ['CLIENT', 'KILL', field, value]));
    }),
  );
  return counts.reduce((sum, count) => sum + count, 0);
}

/** MIGRATEs keys of `slot` from `from` to `to`, in batches; returns how many moved. */
async function moveKeys(
  from: RedisAddress,
  to: RedisAddress,
  slot: number,
  keys: 'all' | Array<string | Buffer>,
  timeoutMs: number,
): Promise<number> {
  const connection = await RespConnection.connect(from, 1_000);
  let moved = 0;
  try {
    const batches: Buffer[][] = [];
    if (keys !== 'all') {
      const buffers = keys.map((key) => (Buffer.isBuffer(key) ? key : Buffer.from(key)));
      const stray = buffers.find((key) => keySlot(key) !== slot);
      if (stray) {
        throw new Error(`key ${JSON.stringify(stray.toString())} is in slot ${keySlot(stray)}, not ${slot}`);
      }
      batches.push(buffers);
    }
    for (;;) {
      const batch =
        keys === 'all'
          ? asBuffers(await connection.command(['CLUSTER', 'GETKEYSINSLOT', slot, 100]))
          : batches.shift();
      if (!batch || batch.length === 0) break;
      const reply = asText(
        await connection.command(
          ['MIGRATE', to.host, to.port, '', 0, timeoutMs, 'KEYS', ...batch],
          timeoutMs + 1_000,
        ),
      );
      // NOKEY: the listed keys do not exist (or expired meanwhile).
      if (reply === 'OK') moved += batch.length;
    }
  } finally {
    connection.close();
  }
  return moved;
}

/** Assigns `slot` to `toId` the way redis-cli does: target, then source, then every other master. */
async function assignSlot(
  masters: RedisAddress[],
  from: RedisAddress,
  to: RedisAddress,
  slot: number,
  toId: string,
): Promise<void> {
  await redisCommand(to, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]);
  await redisCommand(from, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]);
  const others = masters.filter((master) => master.port !== from.port && master.port !== to.port);
  await Promise.all(others.map((master) => redisCommand(master, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId])));
}

async function mastersOf(cluster: ClusterDescriptor): Promise<RedisAddress[]> {
  const view = await clusterView(cluster);
  return view
    .filter((entry) => entry.role === 'master' && !entry.failing)
    .map(({ host, port }) => ({ host, port }));
}

/** The first answering node's `CLUSTER NODES`. */
async function clusterView(cluster: ClusterDescriptor): Promise<ClusterNodeEntry[]> {
  for (const node of cluster.nodes) {
    const view = await ownViewOf(node);
    if (view) return view;
  }
  throw new Error(`no node of the cluster answers (${cluster.nodes.map((node) => node.port).join(', ')})`);
}

/**
 * Moves `slot` from the master on `fromPort` to the master on `toPort` with the real protocol:
 * SETSLOT IMPORTING on the target, SETSLOT MIGRATING on the source, MIGRATE of the keys, then
 * SETSLOT NODE on every master. See {@link MigrateSlotOptions} for stopping halfway (ASK).
 */
export async function migrateSlot(
  cluster: ClusterDescriptor,
  slot: number,
  fromPort: number,
  toPort: number,
  options: MigrateSlotOptions = {},
): Promise<MigrateSlotResult> {
  assertOwned(cluster, 'migrateSlot');
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOT_COUNT) {
    throw new Error(`slot must be 0..16383 (got ${slot})`);
  }
  if (fromPort === toPort) throw new Error('migrateSlot needs two different nodes');
  const from = nodeAt(cluster, fromPort);
  const to = nodeAt(cluster, toPort);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const [fromView, toView] = await Promise.all([clusterNodesOf(from), clusterNodesOf(to)]);
  const source = myselfOf(fromView);
  const target = myselfOf(toView);
  if (source.role !== 'master' || !ownsSlot(source, slot)) {
    const owner = fromView.find((entry) => entry.role === 'master' && ownsSlot(entry, slot));
    throw new Error(`slot ${slot} is served by port ${owner?.port ?? '?'}, not by ${fromPort}`);
  }
  if (target.role !== 'master') {
    throw new Error(`port ${toPort} is a replica; a slot can only move to a master`);
  }

  await redisCommand(to, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id]);
  await redisCommand(from, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id]);
  const keys = options.keys ?? 'all';
  const movedKeys = keys === 'none' ? 0 : await moveKeys(from, to, slot, keys, timeoutMs);
  if (options.stopAfter === 'importing') return { slot, fromPort, toPort, movedKeys, state: 'open' };

  await assignSlot(await mastersOf(cluster), from, to, slot, target.id);
  await waitForSlotOwner(cluster, slot, target.id, timeoutMs);
  return { slot, fromPort, toPort, movedKeys, state: 'done' };
}

/** Waits until every serving node agrees that `ownerId` owns `slot`, so clients get a stable MOVED. */
async function waitForSlotOwner(
  cluster: ClusterDescriptor,
  slot: number,
  ownerId: string,
  timeoutMs: number,
) {
  const stateDir = cluster.stateDir as string;
  await until(`every node to see slot ${slot} on its new owner`, timeoutMs, async () => {
    for (const node of cluster.nodes) {
      if (!isServing(stateDir, node.port)) continue;
      const view = await clusterNodesOf(node, 1_000);
      const owner = view.find((entry) => entry.role === 'master' && ownsSlot(entry, slot));
      if (owner?.id !== ownerId) return null;
    }
    return true;
  });
}

/**
 * The port of the master serving `slot`. Each node is asked about itself, and the highest config
 * epoch wins: right after a failover some nodes' views of the others are still stale, but the
 * new master's claim on its own slots is already authoritative.
 */
export async function slotOwner(cluster: ClusterDescriptor, slot: number): Promise<number> {
  const views = await Promise.all(cluster.nodes.map(ownViewOf));
  const claims = views
    .flatMap((view) => (view ? [myselfOf(view)] : []))
    .filter((myself) => myself.role === 'master' && ownsSlot(myself, slot))
    .sort((a, b) => b.configEpoch - a.configEpoch);
  const owner = claims[0];
  if (!owner) throw new Error(`no answering master serves slot ${slot}`);
  return owner.port;
}

/** Masters (owning slots) and their replicas, as the first answering node sees them. */
export async function clusterTopology(cluster: ClusterDescriptor): Promise<ClusterTopology> {
  const view = await clusterView(cluster);
  return {
    masters: view
      .filter((entry) => entry.role === 'master' && entry.slots.length > 0)
      .sort((a, b) => (a.slots[0]?.[0] ?? 0) - (b.slots[0]?.[0] ?? 0))
      .map((master) => ({
        port: master.port,
        id: master.id,
        slots: master.slots,
        replicaPorts: view.filter((entry) => entry.masterId === master.id).map((entry) => entry.port),
      })),
  };
}

/** Finishes migrations left open (by a test or by a failure halfway) by moving the rest to the target. */
async function closeOpenSlots(cluster: ClusterDescriptor & { stateDir: string }): Promise<void> {
  for (const node of cluster.nodes) {
    if (!isServing(cluster.stateDir, node.port)) continue;
    const view = await clusterNodesOf(node, 1_000);
    const myself = myselfOf(view);
    for (const { slot, nodeId } of myself.migrating) {
      const target = view.find((entry) => entry.id === nodeId);
      if (!target || target.failing) continue;
      await moveKeys(node, target, slot, 'all', 10_000);
      await assignSlot(await mastersOf(cluster), node, target, slot, nodeId);
    }
    for (const { slot, nodeId } of myself.importing) {
      const source = view.find((entry) => entry.id === nodeId);
      // The source finishes this one from its side; an importing slot whose source no longer
      // migrates it (the source failed over, say) can only be closed here.
      const sourceStillMigrating =
        source &&
        !source.failing &&
        myselfOf(await clusterNodesOf(source, 1_000)).migrating.some((open) => open.slot === slot);
      if (!sourceStillMigrating) await redisCommand(node, ['CLUSTER', 'SETSLOT', slot, 'STABLE']);
    }
  }
}

/**
 * Gives every slotted master a replica: a master that lost its slots, or the second replica of
 * another master, is pointed at the master that has none. Redis' replica migration would get there
 * too, but only after the orphaned master has been seen for a while.
 */
async function rebalanceReplicas(cluster: ClusterDescriptor & { stateDir: string }): Promise<void> {
  const view = await clusterView(cluster);
  if (view.some((entry) => entry.failing || entry.flags.includes('handshake'))) return;
  const slotted = view.filter((entry) => entry.role === 'master' && entry.slots.length > 0);
  const orphans = slotted.filter((master) => !view.some((entry) => entry.masterId === master.id));
  const spares = [
    ...view.filter((entry) => entry.role === 'master' && entry.slots.length === 0),
    ...slotted.flatMap((master) => view.filter((entry) => entry.masterId === master.id).slice(1)),
  ];
  for (const orphan of orphans) {
    const spare = spares.shift();
    if (!spare) return;
    await redisCommand(spare, ['CLUSTER', 'REPLICATE', orphan.id]);
  }
}

/**
 * Brings the cluster back to health after fault tests: resumes paused nodes, restarts dead ones,
 * finishes open slot migrations, re-pairs replicas, then waits until every node reports
 * `cluster_state:ok` with full coverage and 3 masters each with one attached replica. Which nodes
 * are masters may differ from before.
 */
export async function restoreCluster(cluster: ClusterDescriptor, timeoutMs = 60_000): Promise<void> {
  assertOwned(cluster, 'restoreCluster');
  const owned = cluster as ClusterDescriptor & { stateDir: string };
  for (const node of cluster.nodes) {
    const pid = livePid(cluster.stateDir, node.port);
    if (pid !== null) signal(pid, 'SIGCONT');
  }
  await Promise.all(
    cluster.nodes
      .filter((node) => livePid(owned.stateDir, node.port) === null)
      .map((node) => spawnDetached(owned.stateDir, node.port)),
  );
  const deadline = Date.now() + timeoutMs;
  let problem: string | null = null;
  let nextRepairAt = 0;
  while (Date.now() < deadline) {
    problem = await clusterProblem(cluster.nodes);
    if (problem === null) return;
    // Repairs act on views that gossip may not have settled yet; doing them at most once a
    // second keeps us from fighting Redis' own convergence.
    if (Date.now() >= nextRepairAt) {
      nextRepairAt = Date.now() + 1_000;
      try {
        await closeOpenSlots(owned);
        await rebalanceReplicas(owned);
      } catch {
        // The next round sees fresher views; a persisting problem ends in the timeout below.
      }
    }
    await sleep(50);
  }
  const logs = cluster.nodes.map((node) => logTail(owned.stateDir, node.port, 3)).join('');
  throw new Error(`[test-env] restoreCluster: cluster not healthy after ${timeoutMs} ms: ${problem}${logs}`);
}

export interface ExtraMaster {
  port: number;
  /** The node's cluster id. */
  id: string;
  /** Cancels the node's open migrations, stops it and makes the cluster forget it. */
  remove(): Promise<void>;
}

/**
 * Adds a master that serves no slot yet, as a scale-out does before resharding, and waits until every node knows it.
 * It is not in `cluster.nodes`; call `remove()` (in a `finally`) before `restoreCluster`.
 */
export async function addEmptyMaster(cluster: ClusterDescriptor, timeoutMs = 20_000): Promise<ExtraMaster> {
  assertOwned(cluster, 'addEmptyMaster');
  const owned = cluster as ClusterDescriptor & { stateDir: string };
  const port = await findFreePortBlock(1);
  writeNodeConfig({ stateDir: owned.stateDir, port, cluster: true });
  await spawnDetached(owned.stateDir, port);
  const address = { host: LOOPBACK, port };
  const id = asText(await redisCommand(address, ['CLUSTER', 'MYID']));
  const seed = cluster.nodes[0] as RedisNodeAddress;
  await redisCommand(seed, ['CLUSTER', 'MEET', seed.host, String(port)]);
  await until(`port ${port} to join the cluster`, timeoutMs, async () => {
    if ((await clusterInfoOf(address, 1_000)).get('cluster_state') !== 'ok') return null;
    for (const node of [...cluster.nodes, address]) {
      const view = await clusterNodesOf(node, 1_000);
      if (
        view.length !== cluster.nodes.length + 1 ||
        view.some((entry) => entry.flags.includes('handshake'))
      ) {
        return null;
      }
    }
    return true;
  });
  return {
    port,
    id,
    async remove() {
      // An open migration towards this node would leave its slot half-owned.
      for (const node of cluster.nodes) {
        const text = asText(await redisCommand(node, ['CLUSTER', 'NODES']).catch(() => ''));
        const line = text.split('\n').find((candidate) => candidate.includes('myself')) ?? '';
        for (const match of line.matchAll(/\[(\d+)->-([0-9a-f]+)\]/g)) {
          if (match[2] === id) await redisCommand(node, ['CLUSTER', 'SETSLOT', match[1] as string, 'STABLE']);
        }
      }
      const pid = livePid(owned.stateDir, port);
      if (pid !== null) signal(pid, 'SIGKILL');
      await Promise.all(
        cluster.nodes.map((node) => redisCommand(node, ['CLUSTER', 'FORGET', id]).catch(() => undefined)),
      );
    },
  };
}
