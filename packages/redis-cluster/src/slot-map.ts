import type { Cluster, Redis } from 'ioredis';

export const SLOT_COUNT = 16384;

/** An inclusive range of hash slots, `[first, last]`. */
export type SlotRange = [number, number];

export interface MasterShard {
  /** `host:port` as the cluster announces it (after `natMap`). */
  address: string;
  /** The node connection, or `undefined` when the client holds none for this address. */
  node: Redis | undefined;
  ranges: SlotRange[];
}

export interface SlotPlan {
  masters: MasterShard[];
  /** Slot ranges no master serves in the refreshed map. */
  uncovered: SlotRange[];
  /** Master address of every slot (`undefined` where uncovered), to compare two plans. */
  owners: Array<string | undefined>;
}

function nodeAddress(node: Redis): string {
  const options = node.options as { host?: string; port?: number };
  return `${options.host ?? '127.0.0.1'}:${options.port ?? 6379}`;
}

/** Merges sorted slot numbers into inclusive ranges. */
export function toRanges(slots: Iterable<number>): SlotRange[] {
  const ranges: SlotRange[] = [];
  let current: SlotRange | undefined;
  for (const slot of slots) {
    if (current !== undefined && slot === current[1] + 1) current[1] = slot;
    else {
      current = [slot, slot];
      ranges.push(current);
    }
  }
  return ranges;
}

export function formatRanges(ranges: readonly SlotRange[]): string {
  return ranges.map(([first, last]) => (first === last ? `${first}` : `${first}-${last}`)).join(', ');
}

/**
 * Asks the cluster for its slot map again. ioredis keeps the map (and its list of masters) it had until a command
 * happens to touch a moved or failed shard; anything that enumerates masters must not trust that stale list.
 */
export function refreshSlotMap(cluster: Cluster, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      reject(new Error(`refreshing the cluster slot map took longer than ${timeoutMs} ms`));
    }, timeoutMs);
    cluster.refreshSlotsCache((error?: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve();
    });
  });
}

/** Groups the client's current slot map by master. Call `refreshSlotMap` first. */
export function slotPlan(cluster: Cluster): SlotPlan {
  const byAddress = new Map<string, Redis>();
  for (const node of cluster.nodes('master')) {
    if (node.status !== 'end') byAddress.set(nodeAddress(node), node);
  }
  const owners: Array<string | undefined> = new Array(SLOT_COUNT);
  const slotsOf = new Map<string, number[]>();
  const uncovered: number[] = [];
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    const owner = cluster.slots[slot]?.[0];
    owners[slot] = owner;
    if (owner === undefined) {
      uncovered.push(slot);
      continue;
    }
    let list = slotsOf.get(owner);
    if (list === undefined) {
      list = [];
      slotsOf.set(owner, list);
    }
    list.push(slot);
  }
  const masters = [...slotsOf].map(([address, slots]) => ({
    address,
    node: byAddress.get(address),
    ranges: toRanges(slots),
  }));
  return { masters, uncovered: toRanges(uncovered), owners };
}

/** Masters of `after` that serve a slot they did not serve in `before`: keys may have moved onto them. */
export function mastersThatGainedSlots(before: SlotPlan, after: SlotPlan): MasterShard[] {
  return after.masters.filter((master) =>
    master.ranges.some(([first, last]) => {
      for (let slot = first; slot <= last; slot++) if (before.owners[slot] !== master.address) return true;
      return false;
    }),
  );
}
