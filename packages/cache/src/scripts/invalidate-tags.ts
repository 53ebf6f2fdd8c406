import { LuaScript } from '../redis-io.js';

/**
 * Invalidates tags: INCR of each version key. KEYS: the version keys (one per call on a cluster, all on a standalone
 * server). ARGV[1]: TTL in ms for a version key that does not exist yet.
 * Returns the new versions as strings, in KEYS order.
 * INCR keeps the key's TTL, which set() already made longer than any entry of the tag. A missing version is created
 * from TIME in microseconds, like prepare-tags: larger than any version handed out before. The script is atomic per
 * key, so two concurrent invalidations give two distinct versions and neither is lost. Entries are not touched: they
 * read as misses at once because their envelope carries an older version; the sweep reclaims them later.
 */
export const invalidateTags = new LuaScript(
  'invalidate-tags',
  `local out = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCR', KEYS[i])
    -- GET, not the INCR reply: Lua prints numbers past 1e14 in exponent form.
    out[i] = redis.call('GET', KEYS[i])
  else
    local t = redis.call('TIME')
    out[i] = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', KEYS[i], out[i], 'PX', ARGV[1])
  end
end
return out`,
);
