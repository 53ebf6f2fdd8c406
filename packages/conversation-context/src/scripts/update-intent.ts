import { script } from './common.js';

/**
 * updateIntent: the new intent goes to the head of a bounded history list (the head is the current intent).
 *
 * KEYS: meta, messages, intents (one slot).
 * ARGV: 1 check owner, 2 userId, 3 tenantId, 4 ttlMs, 5 history size, 6 indexRefreshMs, 7 encoded intent.
 * An element is `recordedMs|` followed by the (possibly encrypted) intent.
 * Reply: {'OK', now, indexDue, userId, tenantId, ttlMs} | {'NOTFOUND'} | {'OWNER'}
 */
export const UPDATE_INTENT = script(
  'update_intent',
  `
local now = now_ms()
local m = load(now)
if not m then return { 'NOTFOUND' } end
if mismatch(m, ARGV[1], ARGV[2], ARGV[3]) then return { 'OWNER' } end
redis.call('LPUSH', KEYS[3], now .. '|' .. ARGV[7])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
m[8] = '1'
local want = ttl_for(now, tonumber(ARGV[4]), m)
local fields = { 'updated', now, 'ext', now + want, 'ix', '1' }
local due = index_due(m, now, false, tonumber(ARGV[6]), fields)
redis.call('HSET', KEYS[1], unpack(fields))
expire_all(want, m)
return { 'OK', now, due, m[1], m[2] or '', want }
`,
);
