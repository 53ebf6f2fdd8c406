import { plainScript, script } from './common.js';

/**
 * extendTTL: give all of a conversation's keys at least ttlMs more (capped by the absolute lifetime).
 *
 * KEYS: meta, messages, intents (one slot). ARGV: 1 check owner, 2 userId, 3 tenantId, 4 ttlMs.
 * Reply: {'OK', ttlMs, userId, tenantId, updatedMs} | {'NOTFOUND'} | {'OWNER'}
 */
export const EXTEND = script(
  'extend_ttl',
  `
local now = now_ms()
local m, refused = owned(now)
if refused then return refused end
local want = ttl_for(now, tonumber(ARGV[4]), m)
redis.call('HSET', KEYS[1], 'ext', now + want)
expire_all(want, m)
return { 'OK', want, m[1], m[2] or '', redis.call('HGET', KEYS[1], 'updated') or '0' }
`,
);

/**
 * deleteContext: remove the three keys after the owner check. With ARGV[4] = '1' (cleanup) only the lists of a
 * conversation whose meta hash is gone are removed; a live conversation is left alone.
 *
 * KEYS: meta, messages, intents (one slot). ARGV: 1 check owner, 2 userId, 3 tenantId, 4 orphans only ('1'/'0').
 * Reply: {'OK', userId, tenantId, keysRemoved, now} | {'NOTFOUND', keysRemoved} | {'OWNER'} | {'LIVE'}
 */
export const DELETE = script(
  'delete_context',
  `
local m = redis.call('HMGET', KEYS[1], 'uid', 'tid')
if not m[1] then
  -- No meta hash: remove leftover lists (evicted meta), which no reader can reach anyway.
  return { 'NOTFOUND', redis.call('DEL', KEYS[2], KEYS[3]) }
end
if ARGV[4] == '1' then return { 'LIVE' } end
if mismatch(m, ARGV[1], ARGV[2], ARGV[3]) then return { 'OWNER' } end
return { 'OK', m[1], m[2] or '', redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]), now_ms() }
`,
);

/**
 * The per-user index (another slot than the conversation): raise a member's score to the given last activity (never
 * lower it) and make the index live at least as long as the conversation.
 *
 * KEYS: index sorted set. ARGV: 1 conversation id, 2 last activity ms, 3 ttlMs.
 */
export const INDEX_TOUCH = plainScript(
  'index_touch',
  `
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not current or tonumber(current) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
`,
);

/**
 * Removes index entries found stale (expired, deleted or owned by someone else), each only if its score is still
 * the one the caller saw, or lower: between the caller's read and this, the same id may have been created again,
 * and INDEX_TOUCH raised its score; that live entry stays.
 *
 * KEYS: index sorted set. ARGV: id, score seen, id, score seen, ...
 * Reply: the number of entries removed.
 */
export const INDEX_PRUNE = plainScript(
  'index_prune',
  `
local removed = 0
for i = 1, #ARGV, 2 do
  local current = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if current and tonumber(current) <= tonumber(ARGV[i + 1]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
`,
);
