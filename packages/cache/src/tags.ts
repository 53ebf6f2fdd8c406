import { decodeHeader, type TagVersion, writeIdOf } from './envelope.js';
import type { KeyLayout } from './keys.js';
import type { RedisIo } from './redis-io.js';
import { invalidateTags } from './scripts/invalidate-tags.js';
import { prepareTags } from './scripts/prepare-tags.js';
import { unlinkIfWriteId } from './scripts/write-id.js';

/** Entry keys added to member sets per script call (Lua's unpack() has a stack limit). */
const MEMBERS_PER_CALL = 500;
const SWEEP_BATCH = 200;
const SWEEP_CONCURRENCY = 16;

/** Runs `work` over `items` with at most `limit` in flight. */
export async function eachLimit<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Tag versions in Redis. Each tag has a version key (INCR on invalidation) and a member set of the entry keys
 * written under it. Entries carry the versions they were written under; an entry is current only while every
 * one of its tags still has that version. A missing version key reads as "invalidated": whatever removed it
 * (expiry, eviction under maxmemory, clear()), no entry can come back to life, and a recreated key starts from
 * the server clock, above every version handed out before.
 */
export class TagStore {
  constructor(
    private readonly io: RedisIo,
    private readonly layout: KeyLayout,
    private readonly headerMaxBytes: number,
  ) {}

  /**
   * The current version of each tag (created when missing), after making every tag key live at least `ttlMs` and
   * adding `entryKeys` to each member set. One script per tag on a cluster (each tag is its own slot), one in all
   * on a standalone server.
   */
  async prepare(
    tags: readonly string[],
    entryKeys: readonly string[],
    ttlMs: number,
    deadline: number,
  ): Promise<Array<TagVersion & { created: boolean }>> {
    const batches: string[][] = [];
    for (let i = 0; i < entryKeys.length; i += MEMBERS_PER_CALL) {
      batches.push(entryKeys.slice(i, i + MEMBERS_PER_CALL) as string[]);
    }
    if (batches.length === 0) batches.push([]);
    const groups = this.io.isCluster ? tags.map((tag) => [tag]) : [tags as string[]];
    const versions = new Map<string, string>();
    await Promise.all(
      groups.map(async (group) => {
        const keys = group.flatMap((tag) => [this.layout.tagVersion(tag), this.layout.tagMembers(tag)]);
        for (const [index, batch] of batches.entries()) {
          const reply = await this.io.eval<unknown[]>(prepareTags, keys, [ttlMs, ...batch], false, deadline);
          if (index === 0) {
            for (const [i, tag] of group.entries()) versions.set(tag, String(reply[i]));
          }
        }
      }),
    );
    return tags.map((tag) => {
      const version = versions.get(tag) as string;
      return version.startsWith('+')
        ? { tag, version: version.slice(1), created: true }
        : { tag, version, created: false };
    });
  }

  /** Current versions (null when the version key is missing), in the order of `tags`. */
  async current(tags: readonly string[], deadline: number): Promise<Array<string | null>> {
    if (!this.io.isCluster) {
      const keys = tags.map((tag) => this.layout.tagVersion(tag));
      return this.io.send<Array<string | null>>('mget', keys, keys[0], false, deadline);
    }
    return Promise.all(
      tags.map((tag) => {
        const key = this.layout.tagVersion(tag);
        return this.io.send<string | null>('get', [key], key, false, deadline);
      }),
    );
  }

  /** Whether an entry written under `stored` versions is still current. */
  async isCurrent(stored: readonly TagVersion[], deadline: number): Promise<boolean> {
    const now = await this.current(
      stored.map((entry) => entry.tag),
      deadline,
    );
    return stored.every((entry, index) => now[index] === entry.version);
  }

  /** INCRs every tag's version; resolves with the new versions. */
  async invalidate(tags: readonly string[], minTtlMs: number, deadline: number): Promise<string[]> {
    const groups = this.io.isCluster ? tags.map((tag) => [tag]) : [tags as string[]];
    const out = new Map<string, string>();
    await Promise.all(
      groups.map(async (group) => {
        const keys = group.map((tag) => this.layout.tagVersion(tag));
        const reply = await this.io.eval<string[]>(invalidateTags, keys, [minTtlMs], false, deadline);
        for (const [i, tag] of group.entries()) out.set(tag, String(reply[i]));
      }),
    );
    return tags.map((tag) => out.get(tag) as string);
  }

  /**
   * Deletes the entries of `tag` that are stale (written under an older version, or whose tag key is gone) and
   * forgets members whose entry no longer exists or no longer has the tag. Each delete is conditional on the write
   * id read, so an entry rewritten since survives. Returns how many entries were deleted.
   */
  async sweep(tag: string, timeoutMs: number): Promise<number> {
    const versionKey = this.layout.tagVersion(tag);
    const membersKey = this.layout.tagMembers(tag);
    const deadline = () => performance.now() + timeoutMs;
    const current = await this.io.send<string | null>('get', [versionKey], versionKey, false, deadline());
    const currentVersion = current === null ? null : BigInt(current);
    let cursor = '0';
    let removed = 0;
    do {
      const [next, members] = await this.io.send<[string, string[]]>(
        'sscan',
        [membersKey, cursor, 'COUNT', SWEEP_BATCH],
        membersKey,
        false,
        deadline(),
      );
      cursor = next;
      const forget: string[] = [];
      await eachLimit(members, SWEEP_CONCURRENCY, async (member) => {
        const head = await this.io.send<Buffer | null>(
          'getrange',
          [member, 0, this.headerMaxBytes - 1],
          member,
          true,
          deadline(),
        );
        if (head === null || head.length === 0) {
          forget.push(member);
          return;
        }
        const header = decodeHeader(head);
        if (header === undefined) return;
        const own = header.tags.find((entry) => entry.tag === tag);
        if (own === undefined) {
          forget.push(member);
          return;
        }
        if (currentVersion !== null && BigInt(own.version) >= currentVersion) return;
        const deleted = await this.io.eval<number>(
          unlinkIfWriteId,
          [member],
          [writeIdOf(head)],
          false,
          deadline(),
        );
        removed += deleted;
        forget.push(member);
      });
      if (forget.length > 0) {
        await this.io.send('srem', [membersKey, ...forget], membersKey, false, deadline());
      }
    } while (cursor !== '0');
    return removed;
  }
}
