import type { TagVersion } from './envelope.js';
import { FrequencySketch } from './frequency.js';

/** One value held in memory. Times are `performance.now()` milliseconds of this process. */
export interface L1Entry {
  /** The value's bytes (decoded on every hit, so callers never share an object), or undefined when `value` is kept. */
  bytes: Buffer | undefined;
  /** The decoded value itself, kept only when `copyOnRead` is off. */
  value: unknown;
  /** Bytes charged against `maxBytes`: the stored bytes plus the key. */
  size: number;
  /** After this the entry is stale: served only as a grace value. */
  freshUntil: number;
  /** After this the entry is gone. */
  staleUntil: number;
  /** Served only until then, whatever the bus says (set when it was stored while the bus was not confirmed). */
  trustUntil: number;
  /** The bus generation it was read under; an entry from before a bus drop is trusted only a short while. */
  generation: number;
  tags: TagVersion[];
}

/** How many of the least recently used entries frequency admission compares a newcomer against. */
const VICTIM_CANDIDATES = 8;

/**
 * A least-recently-used map bounded by entries and by bytes. A Map keeps insertion order, so moving an entry to
 * the end on each hit and evicting from the front is LRU with O(1) steps. Tags are indexed so that an invalidation
 * message evicts every entry of a tag without a scan.
 */
export class L1Store {
  private readonly entries = new Map<string, L1Entry>();
  private readonly byTag = new Map<string, Set<string>>();
  private totalBytes = 0;
  private readonly sketch: FrequencySketch | undefined;
  evictions = 0;
  /** New entries turned away by the frequency admission. */
  rejections = 0;

  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number,
    admission: 'lru' | 'frequency' = 'lru',
  ) {
    this.sketch = admission === 'frequency' ? new FrequencySketch(maxEntries) : undefined;
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** The entry, moved to the most recently used end. */
  get(key: string): L1Entry | undefined {
    this.sketch?.increment(key);
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  set(key: string, entry: L1Entry): void {
    if (entry.size > this.maxBytes) {
      this.delete(key);
      return;
    }
    const previous = this.entries.get(key);
    if (previous !== undefined) this.remove(key, previous);
    else if (this.sketch !== undefined && this.entries.size >= this.maxEntries) {
      // Full: a new key gets in only if it is asked for more often than the entry it would push out, the least
      // asked-for of the few least recently used (the very oldest alone is often a hot key between two hits).
      let victim: string | undefined;
      let victimFrequency = Number.POSITIVE_INFINITY;
      let looked = 0;
      for (const candidate of this.entries.keys()) {
        const frequency = this.sketch.estimate(candidate);
        if (frequency < victimFrequency) {
          victim = candidate;
          victimFrequency = frequency;
        }
        if (++looked === VICTIM_CANDIDATES) break;
      }
      if (victim === undefined || this.sketch.estimate(key) <= victimFrequency) {
        this.rejections++;
        return;
      }
      this.remove(victim, this.entries.get(victim) as L1Entry);
      this.evictions++;
    }
    this.entries.set(key, entry);
    this.totalBytes += entry.size;
    for (const { tag } of entry.tags) {
      let keys = this.byTag.get(tag);
      if (keys === undefined) {
        keys = new Set();
        this.byTag.set(tag, keys);
      }
      keys.add(key);
    }
    while (this.entries.size > this.maxEntries || this.totalBytes > this.maxBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.remove(oldest.value, this.entries.get(oldest.value) as L1Entry);
      this.evictions++;
    }
  }

  delete(key: string): boolean {
    const entry = this.entries.get(key);
    if (entry === undefined) return false;
    this.remove(key, entry);
    return true;
  }

  deleteTags(tags: readonly string[]): number {
    let removed = 0;
    for (const tag of tags) {
      const keys = this.byTag.get(tag);
      if (keys === undefined) continue;
      for (const key of [...keys]) if (this.delete(key)) removed++;
    }
    return removed;
  }

  clear(): void {
    this.entries.clear();
    this.byTag.clear();
    this.totalBytes = 0;
  }

  private remove(key: string, entry: L1Entry): void {
    this.entries.delete(key);
    this.totalBytes -= entry.size;
    for (const { tag } of entry.tags) {
      const keys = this.byTag.get(tag);
      if (keys === undefined) continue;
      keys.delete(key);
      if (keys.size === 0) this.byTag.delete(tag);
    }
  }
}
