import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis } from 'ioredis';
import { RedisArgumentError, RedisIncompleteScanError } from './errors.js';
import { escapeGlob } from './glob.js';
import {
  formatRanges,
  type MasterShard,
  mastersThatGainedSlots,
  refreshSlotMap,
  SLOT_COUNT,
  type SlotPlan,
  type SlotRange,
  slotPlan,
  toRanges,
} from './slot-map.js';
import { assertName } from './validation.js';

export interface ScanOptions {
  /** Hint for keys per SCAN call. Default 250. */
  count?: number;
  /** Only keys of this Redis type (`string`, `hash`, `zset`…). */
  type?: string;
  /** Bound on refreshing the cluster slot map and on the reachability check of the masters. Default 5000. */
  timeoutMs?: number;
}

const DEFAULT_COUNT = 250;
const DEFAULT_TIMEOUT_MS = 5000;
/** Rounds of re-scanning masters that gained slots while we scanned, before giving up on a moving cluster. */
const MAX_PASSES = 3;
const ALL_SLOTS: SlotRange[] = [[0, SLOT_COUNT - 1]];

function validate(pattern: unknown, options: ScanOptions): string[] {
  assertName(pattern, 'pattern');
  const count = options.count ?? DEFAULT_COUNT;
  if (!Number.isInteger(count) || count <= 0 || count > 100_000) {
    throw new RedisArgumentError('count must be an integer between 1 and 100000.');
  }
  if (
    options.type !== undefined &&
    (typeof options.type !== 'string' || !/^[a-z]{1,16}$/.test(options.type))
  ) {
    throw new RedisArgumentError('type must be a Redis type name such as "string" or "hash".');
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new RedisArgumentError('timeoutMs must be a positive integer.');
  }
  return [
    'MATCH',
    pattern,
    'COUNT',
    String(count),
    ...(options.type === undefined ? [] : ['TYPE', options.type]),
  ];
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function* scanNode(node: Redis, args: string[], ranges: SlotRange[], where: string) {
  let cursor = '0';
  do {
    let reply: [string, string[]];
    try {
      reply = (await node.call('SCAN', cursor, ...args)) as [string, string[]];
    } catch (cause) {
      throw new RedisIncompleteScanError(
        `SCAN failed on ${where} (${message(cause)}); slots ${formatRanges(ranges)} were not fully scanned.`,
        ranges,
        { cause },
      );
    }
    cursor = reply[0];
    yield* reply[1];
  } while (cursor !== '0');
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Refreshes the slot map, and fails unless every slot has a master that answers PING, so a scan either covers the
 * whole keyspace or yields nothing.
 */
async function reachablePlan(cluster: Cluster, timeoutMs: number): Promise<SlotPlan> {
  try {
    await refreshSlotMap(cluster, timeoutMs);
  } catch (cause) {
    throw new RedisIncompleteScanError(
      `The cluster slot map could not be refreshed (${message(cause)}), so no scan was started.`,
      ALL_SLOTS,
      { cause },
    );
  }
  const plan = slotPlan(cluster);
  const missing: SlotRange[] = [...plan.uncovered];
  const problems: string[] = [];
  if (plan.uncovered.length > 0) problems.push(`slots ${formatRanges(plan.uncovered)} have no master`);
  await Promise.all(
    plan.masters.map(async (master) => {
      try {
        if (master.node === undefined) throw new Error('the client holds no connection to it');
        await withTimeout(master.node.ping(), timeoutMs);
      } catch (error) {
        missing.push(...master.ranges);
        problems.push(`master ${master.address} (slots ${formatRanges(master.ranges)}): ${message(error)}`);
      }
    }),
  );
  if (problems.length > 0) {
    missing.sort((a, b) => a[0] - b[0]);
    throw new RedisIncompleteScanError(
      `The scan cannot cover every hash slot, so it was not started: ${problems.join('; ')}.`,
      missing,
    );
  }
  return plan;
}

interface MigrationTarget {
  address: string;
  node: Redis | undefined;
  slots: number[];
}

/**
 * Where open slot migrations are taking keys: read from each source's own CLUSTER NODES line (`[slot->-<target id>]`).
 * The target may be a master that serves no slot yet (a new, empty master during a scale-out), which the client's slot
 * map does not list at all.
 */
async function migrationTargets(
  cluster: Cluster,
  plan: SlotPlan,
  timeoutMs: number,
): Promise<MigrationTarget[]> {
  const targets = new Map<string, MigrationTarget>();
  const natMapper = (cluster as unknown as { natMapper?: (key: string) => { host: string; port: number } })
    .natMapper;
  await Promise.all(
    plan.masters.map(async (master) => {
      if (master.node === undefined) return;
      const text = (await withTimeout(master.node.call('CLUSTER', 'NODES'), timeoutMs)) as string;
      const lines = text.split('\n').map((line) => line.trim().split(' '));
      const myself = lines.find((fields) => fields[2]?.includes('myself'));
      for (const field of myself?.slice(8) ?? []) {
        const migrating = /^\[(\d+)->-([0-9a-f]+)\]$/.exec(field);
        if (migrating === null) continue;
        const announced = lines.find((fields) => fields[0] === migrating[2])?.[1]?.split('@')[0];
        if (announced === undefined) continue;
        const mapped = natMapper ? natMapper.call(cluster, announced) : undefined;
        const address = mapped ? `${mapped.host}:${mapped.port}` : announced;
        let target = targets.get(address);
        if (target === undefined) {
          const node = cluster.nodes('all').find((candidate) => {
            const options = candidate.options as { host?: string; port?: number };
            return `${options.host}:${options.port}` === address;
          });
          target = { address, node, slots: [] };
          targets.set(address, target);
        }
        target.slots.push(Number(migrating[1]));
      }
    }),
  );
  return [...targets.values()];
}

/** Scans a migration target, over a short-lived connection when the client has none to it. */
async function* scanTarget(cluster: Cluster, target: MigrationTarget, args: string[]) {
  const ranges = toRanges(target.slots.sort((a, b) => a - b));
  if (target.node !== undefined) {
    yield* scanNode(target.node, args, ranges, `migration target ${target.address}`);
    return;
  }
  const index = target.address.lastIndexOf(':');
  const connection = new Redis({
    ...cluster.options.redisOptions,
    host: target.address.slice(0, index),
    port: Number(target.address.slice(index + 1)),
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
    lazyConnect: false,
  });
  connection.on('error', () => {});
  try {
    yield* scanNode(connection, args, ranges, `migration target ${target.address}`);
  } finally {
    connection.disconnect();
  }
}

async function* scanCluster(cluster: Cluster, args: string[], timeoutMs: number) {
  let plan = await reachablePlan(cluster, timeoutMs);
  let pending: MasterShard[] = plan.masters;
  // A slot migration moves keys from a master we may not have scanned yet to one we already scanned. Keys only move
  // towards the importing master, so re-scanning every master that is importing, or that gained slots, after the
  // others were scanned sees each key that existed for the whole scan at least once.
  for (let pass = 0; pending.length > 0; pass++) {
    if (pass === MAX_PASSES) {
      const ranges = pending.flatMap((master) => master.ranges);
      throw new RedisIncompleteScanError(
        `Slots kept moving during the scan (${MAX_PASSES} passes); slots ${formatRanges(ranges)} may be incomplete. Retry when no migration runs.`,
        ranges,
      );
    }
    for (const master of pending) {
      yield* scanNode(master.node as Redis, args, master.ranges, `master ${master.address}`);
    }
    const before = plan;
    plan = await reachablePlan(cluster, timeoutMs);
    const again = new Map<string, MasterShard>();
    for (const master of mastersThatGainedSlots(before, plan)) again.set(master.address, master);
    if (pass === 0) {
      let targets: MigrationTarget[];
      try {
        targets = await migrationTargets(cluster, plan, timeoutMs);
      } catch (cause) {
        throw new RedisIncompleteScanError(
          `Open slot migrations could not be read (${message(cause)}); keys moving during the scan may have been missed.`,
          ALL_SLOTS,
          { cause },
        );
      }
      for (const target of targets) {
        const known = plan.masters.find((master) => master.address === target.address);
        if (known !== undefined) again.set(known.address, known);
        else yield* scanTarget(cluster, target, args);
      }
    }
    pending = [...again.values()];
  }
}

async function* scanStandalone(client: Redis, args: string[]) {
  yield* scanNode(client, args, ALL_SLOTS, 'the server');
}

/**
 * Iterates the keys matching `pattern` on every master. On a cluster it first refreshes the slot map and checks that
 * every one of the 16384 slots has a master that answers; if not, it throws `E_INCOMPLETE_SCAN` (with the
 * `uncoveredSlots`) before yielding anything, and a master that fails mid-scan throws the same error, so a caller
 * never mistakes a partial answer for a complete one. Never uses KEYS.
 *
 * A key can be yielded more than once (slot migrations, and SCAN's own guarantees), so what you do with each key
 * must be idempotent. Keys created or moved during the scan may or may not be seen; keys that exist for the whole
 * scan are seen at least once, also across a slot migration.
 *
 * Works with any ioredis `Redis | Cluster`; escape user-supplied parts of `pattern` with `escapeGlob`.
 * @example
 * for await (const key of scanKeys(redis, `app:session:{u:${escapeGlob(userId)}}:*`)) await redis.unlink(key);
 */
export function scanKeys(
  client: Redis | Cluster,
  pattern: string,
  options: ScanOptions = {},
): AsyncIterableIterator<string> {
  const settings = options ?? {};
  validate(pattern, settings);
  // SCAN's MATCH is not prefixed by ioredis, but every key command is: match under the client's keyPrefix and yield
  // keys without it, so what is yielded can be passed back to the same client (unlinkKeys, get…).
  const prefix = keyPrefixOf(client);
  const args = validate(`${escapeGlob(prefix)}${pattern}`, settings);
  const keys =
    client instanceof Cluster
      ? scanCluster(client, args, settings.timeoutMs ?? DEFAULT_TIMEOUT_MS)
      : scanStandalone(client, args);
  return prefix === '' ? keys : withoutPrefix(keys, prefix.length);
}

function keyPrefixOf(client: Redis | Cluster): string {
  const prefix = (client.options as { keyPrefix?: unknown }).keyPrefix;
  return typeof prefix === 'string' ? prefix : '';
}

async function* withoutPrefix(keys: AsyncIterableIterator<string>, length: number) {
  for await (const key of keys) yield key.slice(length);
}

const UNLINK_BATCH = 500;

/**
 * UNLINKs `keys`, grouped by hash slot so that a cluster never sees a cross-slot command; resolves to the number of
 * keys that existed. Works with any ioredis `Redis | Cluster`.
 */
export async function unlinkKeys(client: Redis | Cluster, keys: readonly string[]): Promise<number> {
  if (!Array.isArray(keys) || keys.some((key) => typeof key !== 'string' || key.length === 0)) {
    throw new RedisArgumentError('keys must be an array of non-empty strings.');
  }
  const groups = new Map<number, string[]>();
  const isCluster = client instanceof Cluster;
  // ioredis prefixes every key with keyPrefix; the slot is that of the prefixed key.
  const prefix = keyPrefixOf(client);
  for (const key of keys) {
    const group = isCluster ? calculateSlot(prefix + key) : 0;
    let list = groups.get(group);
    if (list === undefined) {
      list = [];
      groups.set(group, list);
    }
    list.push(key);
  }
  const batches: string[][] = [];
  for (const list of groups.values()) {
    for (let index = 0; index < list.length; index += UNLINK_BATCH) {
      batches.push(list.slice(index, index + UNLINK_BATCH));
    }
  }
  const removed = await Promise.all(batches.map((batch) => client.unlink(...batch)));
  return removed.reduce((sum, count) => sum + count, 0);
}
