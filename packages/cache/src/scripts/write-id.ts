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

/**
 * Writes a getOrSet result only if the entry is still the one its read saw. KEYS[1]: the entry. ARGV[1]: the write
 * id that read saw ('' when it saw no entry), ARGV[2]: the new envelope, ARGV[3]: TTL in ms. Returns 1 when written.
 * A factory can run for seconds; a set() of a newer value meanwhile (here or in another process) must not be
 * overwritten by a result computed from older data.
 */
export const setIfUnchanged = new LuaScript(
  'set-if-unchanged',
  `local seen = ARGV[1]
if seen == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
elseif redis.call('GETRANGE', KEYS[1], 6, 13) ~= seen then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`,
);
