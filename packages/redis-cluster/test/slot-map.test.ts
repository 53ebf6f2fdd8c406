import type { Cluster, Redis } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  formatRanges,
  mastersThatGainedSlots,
  refreshSlotMap,
  SLOT_COUNT,
  slotPlan,
  toRanges,
} from '../src/slot-map.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('slot ranges', () => {
  it('merges consecutive slots into inclusive ranges', () => {
    expect(toRanges([])).toEqual([]);
    expect(toRanges([5])).toEqual([[5, 5]]);
    expect(toRanges([0, 1, 2, 4, 6, 7])).toEqual([
      [0, 2],
      [4, 4],
      [6, 7],
    ]);
  });

  it('formats single slots and ranges', () => {
    expect(formatRanges([])).toBe('');
    expect(
      formatRanges([
        [0, 99],
        [200, 200],
      ]),
    ).toBe('0-99, 200');
  });
});

// A stand-in for an ioredis Cluster: its slot map (`slots[slot] = [master, ...replicas]`) and its node connections.
function fakeCluster(owners: (slot: number) => string | undefined, nodes: Array<Partial<Redis>>): Cluster {
  const slots: string[][] = [];
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    const owner = owners(slot);
    if (owner !== undefined) slots[slot] = [owner, 'replica:1'];
  }
  return { slots, nodes: (role: string) => (role === 'master' ? nodes : []) } as unknown as Cluster;
}

const node = (host: string | undefined, port: number | undefined, status = 'ready') =>
  ({ options: { host, port }, status }) as unknown as Partial<Redis>;

describe('slotPlan', () => {
  it('groups slots by master, with the node connection of each', () => {
    const a = node('10.0.0.1', 7000);
    const b = node('10.0.0.2', 7001);
    const plan = slotPlan(fakeCluster((slot) => (slot < 8192 ? '10.0.0.1:7000' : '10.0.0.2:7001'), [a, b]));
    expect(plan.masters).toEqual([
      { address: '10.0.0.1:7000', node: a, ranges: [[0, 8191]] },
      { address: '10.0.0.2:7001', node: b, ranges: [[8192, 16383]] },
    ]);
    expect(plan.uncovered).toEqual([]);
    expect(plan.owners).toHaveLength(SLOT_COUNT);
    expect(plan.owners[0]).toBe('10.0.0.1:7000');
    expect(plan.owners[16383]).toBe('10.0.0.2:7001');
  });

  it('lists the slots no master serves, and has no node for an address it holds no live connection to', () => {
    const ended = node('10.0.0.2', 7001, 'end');
    const plan = slotPlan(
      fakeCluster(
        (slot) => (slot < 100 ? undefined : slot < 8192 ? '10.0.0.1:7000' : '10.0.0.2:7001'),
        [node('10.0.0.1', 7000), ended],
      ),
    );
    expect(plan.uncovered).toEqual([[0, 99]]);
    expect(plan.owners[0]).toBeUndefined();
    expect(plan.masters.map((master) => [master.address, master.node === undefined])).toEqual([
      ['10.0.0.1:7000', false],
      ['10.0.0.2:7001', true],
    ]);
  });

  it('names a node without host or port by the ioredis defaults', () => {
    const local = node(undefined, undefined);
    const plan = slotPlan(fakeCluster(() => '127.0.0.1:6379', [local]));
    expect(plan.masters).toEqual([{ address: '127.0.0.1:6379', node: local, ranges: [[0, 16383]] }]);
  });

  it('finds the masters that serve a slot they did not serve before', () => {
    const nodes = [node('a', 1), node('b', 2)];
    const before = slotPlan(fakeCluster((slot) => (slot < 8192 ? 'a:1' : 'b:2'), nodes));
    expect(mastersThatGainedSlots(before, before)).toEqual([]);
    // Slot 8191 moved from a to b: only b gained a slot.
    const after = slotPlan(fakeCluster((slot) => (slot < 8191 ? 'a:1' : 'b:2'), nodes));
    expect(mastersThatGainedSlots(before, after).map((master) => master.address)).toEqual(['b:2']);
    // A master with two ranges that gained a slot in only one of them.
    const split = slotPlan(fakeCluster((slot) => (slot < 100 || slot >= 8191 ? 'b:2' : 'a:1'), nodes));
    const splitAfter = slotPlan(fakeCluster((slot) => (slot < 100 || slot >= 8190 ? 'b:2' : 'a:1'), nodes));
    expect(mastersThatGainedSlots(split, splitAfter).map((master) => master.address)).toEqual(['b:2']);
    // The last slot of a range counts too.
    const last = slotPlan(fakeCluster((slot) => (slot < 16383 ? 'a:1' : 'c:3'), nodes));
    const lastBefore = slotPlan(fakeCluster((slot) => (slot < 16383 ? 'a:1' : 'b:2'), nodes));
    expect(mastersThatGainedSlots(lastBefore, last).map((master) => master.address)).toEqual(['c:3']);
  });
});

describe('refreshSlotMap', () => {
  it('resolves when ioredis has refreshed its slot map, and rejects with its error', async () => {
    let done: ((error?: Error | null) => void) | undefined;
    const cluster = { refreshSlotsCache: (callback: typeof done) => (done = callback) } as unknown as Cluster;
    const refreshed = refreshSlotMap(cluster, 1000);
    done?.();
    await expect(refreshed).resolves.toBeUndefined();
    const failed = refreshSlotMap(cluster, 1000);
    done?.(new Error('Failed to refresh slots cache.'));
    await expect(failed).rejects.toThrow('Failed to refresh slots cache.');
  });

  it('gives up after the timeout, and ignores a late answer', async () => {
    vi.useFakeTimers();
    let done: ((error?: Error | null) => void) | undefined;
    const cluster = { refreshSlotsCache: (callback: typeof done) => (done = callback) } as unknown as Cluster;
    const refreshed = refreshSlotMap(cluster, 500);
    const outcome = refreshed.then(
      () => 'resolved',
      (error: Error) => error.message,
    );
    vi.advanceTimersByTime(499);
    done?.(new Error('too late?'));
    // Settled by the answer just before the deadline.
    expect(await outcome).toBe('too late?');
    const slow = refreshSlotMap(cluster, 500).then(
      () => 'resolved',
      (error: Error) => error.message,
    );
    vi.advanceTimersByTime(500);
    done?.();
    expect(await slow).toBe('refreshing the cluster slot map took longer than 500 ms');
  });
});
