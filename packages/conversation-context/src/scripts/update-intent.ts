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
local m, refused = owned(now)
if refused then return refused end
redis.call('LPUSH', KEYS[3], now .. '|' .. ARGV[7])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
m[8] = '1'
local due, want = commit(m, now, false, tonumber(ARGV[6]), tonumber(ARGV[4]), { 'ix', '1' })
return { 'OK', now, due, m[1], m[2] or '', want }
`,
);
