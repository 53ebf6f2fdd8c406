import { LuaScript } from '../redis-io.js';

/**
 * Unlinks an entry only if it is still the one a caller read. KEYS[1]: the entry. ARGV[1]: its 8-byte write id
 * (envelope bytes 6-13).
 * The sweep decides from a header it read earlier that an entry is stale; a set() since then wrote a new entry
 * under the same key, which must survive. Comparing the write id and deleting in one script closes that window.
 */
export const unlinkIfWriteId = new LuaScript(
  'unlink-if-write-id',
  `if redis.call('GETRANGE', KEYS[1], 6, 13) == ARGV[1] then return redis.call('UNLINK', KEYS[1]) end
return 0`,
);

/**
 * Sets an entry's TTL only if it is still the one the caller read. KEYS[1]: the entry. ARGV[1]: write id,
 * ARGV[2]: TTL in ms. Returns 1 when the TTL was set.
 * extendTTL first extends the entry's tag keys (a tag key must outlive its entries), then the entry; if the entry
 * was replaced in between, its tags may differ and it must not get a TTL its tags were not extended for.
 */
export const pexpireIfWriteId = new LuaScript(
  'pexpire-if-write-id',
  `if redis.call('GETRANGE', KEYS[1], 6, 13) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`,
);
