import { plainScript } from './common.js';

/**
 * getRecentMessages: the owner check and the read in one atomic step, so a conversation deleted and re-created by
 * someone else between the two can never hand one user another's messages.
 *
 * KEYS: meta, messages (one slot). ARGV: 1 check owner ('0'/'1'), 2 userId, 3 tenantId, 4 how many of the newest
 * (0: all).
 * Reply: {element..., 'OK'} (oldest first; the status comes last, so the elements LRANGE returned are passed on as
 *        they are) | {} (no such conversation) | {'OWNER'}.
 * A script, not MULTI: in ioredis a MULTI is four commands and a transaction object per call, which costs the client
 * more than this script costs Redis; Redis also retries a script on TRYAGAIN during a slot migration by itself.
 */
export const READ_MESSAGES = plainScript(
  'read_messages',
  `
local m = redis.call('HMGET', KEYS[1], 'uid', 'tid')
if not m[1] then return {} end
if ARGV[1] == '1' and (m[1] ~= ARGV[2] or (m[2] or '') ~= ARGV[3]) then return { 'OWNER' } end
local count = tonumber(ARGV[4])
local elements = redis.call('LRANGE', KEYS[2], count == 0 and 0 or -count, -1)
elements[#elements + 1] = 'OK'
return elements
`,
);
