import { LuaScript } from '../redis-io.js';

/**
 * Gets the current version of each tag, creating it if missing, and records entry keys in each tag's member set.
 * KEYS: version and member-set key of each tag, in pairs (v1, k1, v2, k2…). On a cluster the cache sends one tag per
 * call (the pair shares the tag's hash tag, so one slot); on a standalone server, all tags at once.
 * ARGV[1]: TTL in ms the tag keys must live at least (the longest entry TTL written under them, plus margin), so a
 * tag key never expires before an entry that depends on it. ARGV[2..]: entry keys to add to every member set.
 * Returns the versions, in KEYS order; a version this call created is prefixed with `+` (getOrSet reads versions
 * before its factory runs, and a key missing then must have been created by its own write, not by an invalidation).
 * A missing version is created from the server clock in microseconds (TIME), never from 0: a tag key that vanished
 * (expiry, eviction, clear) and comes back must not repeat a version an old entry was written under. Versions then
 * only grow by INCR. Atomic so that the version returned is the one whose TTL was extended.
 */
export const prepareTags = new LuaScript(
  'prepare-tags',
  `local ttl = tonumber(ARGV[1])
local versions = {}
for i = 1, #KEYS, 2 do
  local v = redis.call('GET', KEYS[i])
  if not v then
    local t = redis.call('TIME')
    v = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', KEYS[i], v, 'PX', ttl)
    v = '+' .. v
  else
    local pttl = redis.call('PTTL', KEYS[i])
    if pttl < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
  versions[#versions + 1] = v
  if #ARGV > 1 then
    redis.call('SADD', KEYS[i + 1], unpack(ARGV, 2))
    local pttl = redis.call('PTTL', KEYS[i + 1])
    if pttl < ttl then redis.call('PEXPIRE', KEYS[i + 1], ttl) end
  end
end
return versions`,
);
