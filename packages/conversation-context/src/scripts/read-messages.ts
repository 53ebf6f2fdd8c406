import { script } from './common.js';

/**
 * getRecentMessages: the owner check and the read in one step, so a caller who fails the check never sees a byte.
 *
 * KEYS: meta, messages, intents (one slot). ARGV: 1 check owner, 2 userId, 3 tenantId, 4 limit (0: all).
 * Reply: {'OK', elements... (oldest first)} | {'NOTFOUND'} | {'OWNER'}
 */
export const READ_MESSAGES = script(
  'get_recent_messages',
  `
local m = load(now_ms())
if not m then return { 'NOTFOUND' } end
if mismatch(m, ARGV[1], ARGV[2], ARGV[3]) then return { 'OWNER' } end
local limit = tonumber(ARGV[4])
local items
if limit > 0 then items = redis.call('LRANGE', KEYS[2], -limit, -1) else items = redis.call('LRANGE', KEYS[2], 0, -1) end
local reply = { 'OK' }
for i = 1, #items do reply[i + 1] = items[i] end
return reply
`,
);
