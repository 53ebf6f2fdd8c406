import {
  addEmptyMaster,
  clusterTopology,
  createTestClient,
  deleteByPrefix,
  keySlot,
  killNode,
  migrateSlot,
  redisTargets,
  restartNode,
  restoreCluster,
  slotOwner,
  uniquePrefix,
  waitForPromotion,
} from '@austa/test-env/vitest';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AustaRedisError, escapeGlob, scanKeys, unlinkKeys } from '../src/index.js';

type Topology = 'standalone' | 'cluster';

async function collect(iterator: AsyncIterable<string>): Promise<string[]> {
  const found: string[] = [];
  for await (const key of iterator) found.push(key);
  return found;
}

/** Keys spread over every slot range: `count` keys without hash tags land on all masters. */
async function writeKeys(client: Redis | Cluster, base: string, count: number): Promise<string[]> {
  const keys = Array.from({ length: count }, (_, i) => `${base}:${i}`);
  await Promise.all(keys.map((key) => client.set(key, 'v', 'EX', 120)));
  return keys;
}

describe.each<Topology>(['standalone', 'cluster'])('scanKeys and unlinkKeys on %s', (topology) => {
  let client: Redis | Cluster;
  let prefix: string;

  beforeAll(() => {
    client = createTestClient(redisTargets(), topology);
    prefix = uniquePrefix(`scan-${topology}`);
  });

  afterAll(async () => {
    await deleteByPrefix(client, prefix);
    await client.quit();
  });

  it('finds every matching key on every master, and escaped user parts match only themselves', async () => {
    const base = `${prefix}:all`;
    const keys = await writeKeys(client, base, 300);
    const users = ['a*', 'a?', '[a]'];
    for (const user of users) await client.set(`${base}:${user}`, 'v', 'EX', 120);
    const found = new Set(await collect(scanKeys(client, `${escapeGlob(base)}:*`, { count: 50 })));
    for (const key of keys) expect(found.has(key)).toBe(true);
    expect(found.size).toBe(303);
    expect(await collect(scanKeys(client, `${escapeGlob(base)}:${escapeGlob('a*')}`))).toEqual([
      `${base}:a*`,
    ]);
  });

  it('filters by type', async () => {
    const base = `${prefix}:typed`;
    await client.set(`${base}:s`, 'v', 'EX', 120);
    await client.hset(`${base}:h`, 'f', 'v');
    await client.expire(`${base}:h`, 120);
    expect(await collect(scanKeys(client, `${escapeGlob(base)}:*`, { type: 'hash' }))).toEqual([`${base}:h`]);
    expect(await collect(scanKeys(client, `${escapeGlob(base)}:*`, { type: 'string' }))).toEqual([
      `${base}:s`,
    ]);
  });

  it('unlinks keys of many slots without a cross-slot error and counts what existed', async () => {
    const base = `${prefix}:unlink`;
    const keys = await writeKeys(client, base, 120);
    expect(await unlinkKeys(client, [...keys, `${base}:missing`])).toBe(120);
    expect(await collect(scanKeys(client, `${escapeGlob(base)}:*`))).toEqual([]);
    expect(await unlinkKeys(client, [])).toBe(0);
  });

  it('works under the keyPrefix of an ioredis client: yields keys as that client names them, and unlinks them', async () => {
    const prefixed = createTestClient(
      redisTargets(),
      topology,
      topology === 'cluster' ? {} : { keyPrefix: `${prefix}:kp:` },
      topology === 'cluster' ? { keyPrefix: `${prefix}:kp:` } : {},
    );
    try {
      await Promise.all(Array.from({ length: 30 }, (_, i) => prefixed.set(`item:${i}`, 'v', 'EX', 120)));
      const found = await collect(scanKeys(prefixed, 'item:*'));
      expect(found.sort()).toEqual(Array.from({ length: 30 }, (_, i) => `item:${i}`).sort());
      expect(await unlinkKeys(prefixed, found)).toBe(30);
      expect(await collect(scanKeys(client, `${escapeGlob(prefix)}:kp:*`))).toEqual([]);
    } finally {
      await prefixed.quit();
    }
  });

  it('rejects bad arguments with E_INVALID_ARGUMENT before sending anything', async () => {
    expect(() => scanKeys(client, '')).toThrowError(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    expect(() => scanKeys(client, '*', { count: 0 })).toThrowError(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
    );
    expect(() => scanKeys(client, '*', { type: 'string DEL' })).toThrowError(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
    );
    expect(() => scanKeys(client, '*', { timeoutMs: -1 })).toThrowError(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
    );
    await expect(unlinkKeys(client, ['ok', ''])).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});

describe('scanKeys on a cluster under faults', () => {
  let client: Cluster;
  let prefix: string;

  beforeAll(() => {
    prefix = uniquePrefix('scan-faults');
  });

  afterEach(async () => {
    await client?.quit().catch(() => client.disconnect());
    await restoreCluster(redisTargets().cluster, 60_000);
  });

  it('covers a promoted replica at once after a failover, without waiting for a user command', async () => {
    const cluster = redisTargets().cluster;
    client = createTestClient(redisTargets(), 'cluster', {}, { retryDelayOnFailover: 200 });
    const keys = await writeKeys(client, `${prefix}:failover`, 300);
    const victim = await slotOwner(cluster, 0);
    await killNode(cluster, victim);
    await waitForPromotion(cluster, victim, 30_000);
    // No command has touched the failed shard since the promotion: ioredis still lists the dead master.
    const found = new Set(await collect(scanKeys(client, `${escapeGlob(prefix)}:failover:*`)));
    expect(keys.filter((key) => !found.has(key))).toEqual([]);
    await restartNode(cluster, victim);
  });

  it('throws E_INCOMPLETE_SCAN naming the uncovered slots, and yields nothing, when a shard has no master', async () => {
    const cluster = redisTargets().cluster;
    client = createTestClient(redisTargets(), 'cluster');
    await writeKeys(client, `${prefix}:down`, 50);
    const master = await slotOwner(cluster, 0);
    const entry = (await clusterTopology(cluster)).masters.find((candidate) => candidate.port === master);
    const replica = entry?.replicaPorts[0];
    if (entry === undefined || replica === undefined) throw new Error(`master ${master} has no replica`);
    await killNode(cluster, replica);
    await killNode(cluster, master);
    const yielded: string[] = [];
    let failure: unknown;
    try {
      for await (const key of scanKeys(client, `${escapeGlob(prefix)}:down:*`, { timeoutMs: 1000 })) {
        yielded.push(key);
      }
    } catch (error) {
      failure = error;
    }
    expect(AustaRedisError.isInstance(failure)).toBe(true);
    expect(failure).toMatchObject({ code: 'E_INCOMPLETE_SCAN' });
    const uncovered = (failure as { uncoveredSlots: Array<[number, number]> }).uncoveredSlots;
    expect(uncovered.some(([first, last]) => first <= 0 && last >= 0)).toBe(true);
    for (const [first, last] of entry.slots) {
      expect(uncovered.some(([a, b]) => a <= first && b >= last)).toBe(true);
    }
    expect(yielded).toEqual([]);
    await restartNode(cluster, master);
    await restartNode(cluster, replica);
  });

  it('still sees keys whose slot moves onto an already scanned master during the scan', async () => {
    const cluster = redisTargets().cluster;
    client = createTestClient(redisTargets(), 'cluster');
    const first = await slotOwner(cluster, 0);
    const last = await slotOwner(cluster, 16383);
    expect(first).not.toBe(last);
    // A tag whose slot the last master serves, and a single key on the first master, so the first master's scan is
    // complete after its first reply.
    let tag = 0;
    while ((await slotOwner(cluster, keySlot(`mv${tag}`))) !== last) tag++;
    let anchor = 0;
    while ((await slotOwner(cluster, keySlot(`${prefix}:move:anchor${anchor}`))) !== first) anchor++;
    const base = `${prefix}:move`;
    const moving = Array.from({ length: 20 }, (_, i) => `${base}:{mv${tag}}:${i}`);
    await Promise.all(moving.map((key) => client.set(key, 'v', 'EX', 120)));
    await client.set(`${base}:anchor${anchor}`, 'v', 'EX', 120);
    const iterator = scanKeys(client, `${escapeGlob(base)}:*`, { count: 1000 });
    const seen = new Set<string>();
    const firstKey = await iterator.next();
    expect(firstKey.done).toBe(false);
    seen.add(firstKey.value as string);
    // The first master has been scanned; now the slot moves from the last master (not yet scanned) onto it.
    await migrateSlot(cluster, keySlot(`mv${tag}`), last, first);
    for await (const key of iterator) seen.add(key);
    expect(moving.filter((key) => !seen.has(key))).toEqual([]);
  });

  it('sees the keys a reshard has already moved to a new master that serves no slot yet', async () => {
    const cluster = redisTargets().cluster;
    client = createTestClient(redisTargets(), 'cluster');
    const base = `${prefix}:scaleout`;
    const spread = await writeKeys(client, `${base}:s`, 100);
    const tagged = Array.from({ length: 40 }, (_, i) => `${base}:{grow}:${i}`);
    await Promise.all(tagged.map((key) => client.set(key, 'v', 'EX', 120)));
    const slot = keySlot('grow');
    const owner = await slotOwner(cluster, slot);
    const extra = await addEmptyMaster(cluster);
    try {
      // Half the slot's keys move to the new master; the migration is still open, as during a live reshard.
      await migrateSlotToNewMaster(owner, extra, slot, tagged.slice(0, 20));
      const found = new Set(await collect(scanKeys(client, `${escapeGlob(base)}:*`)));
      expect([...spread, ...tagged].filter((key) => !found.has(key))).toEqual([]);
    } finally {
      await extra.remove();
    }
  });
});

/** Opens a migration of `slot` from `ownerPort` to the new master and moves `keys` there, leaving it open. */
async function migrateSlotToNewMaster(
  ownerPort: number,
  extra: { port: number; id: string },
  slot: number,
  keys: string[],
): Promise<void> {
  const { Redis: Direct } = await import('ioredis');
  const source = new Direct({ host: '127.0.0.1', port: ownerPort });
  const target = new Direct({ host: '127.0.0.1', port: extra.port });
  try {
    const sourceId = (await source.call('CLUSTER', 'MYID')) as string;
    await target.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', sourceId);
    await source.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', extra.id);
    await source.call('MIGRATE', '127.0.0.1', String(extra.port), '', '0', '5000', 'KEYS', ...keys);
  } finally {
    source.disconnect();
    target.disconnect();
  }
}
