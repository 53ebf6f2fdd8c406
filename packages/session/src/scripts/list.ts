import { CLOCK, DECLARED } from './common.js';

/**
 * Lists a user's live sessions (for an "active devices" screen), or counts them, and prunes index entries whose
 * session has expired. KEYS[1] user index, KEYS[2] user-name key, KEYS[3..] member session keys (see DECLARED).
 * ARGV[1] 'list' (return sessions), 'count' or 'prune' (return the refs removed); ARGV[2..] refs.
 * Returns {'declare', members...} (nothing written) | {'ok', count, name, then per session ref, createdAt,
 * lastSeen, absolute, idle, meta ('list') or per removed entry its ref ('prune')}: no data, no tokens. `name` is the
 * encoded user id (cleanupExpiredSessions reports it in audit events).
 */
export const LIST = `${CLOCK}${DECLARED}
local declared = declaredKeys(3, 2)
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, member in ipairs(members) do
  if not declared[member] then return redeclare(KEYS[1]) end
end
local result = {'ok', 0, redis.call('GET', KEYS[2]) or ''}
for _, member in ipairs(members) do
  local h = redis.call('HMGET', declared[member], 'c', 'l', 'a', 'i', 'm')
  if not h[1] or now >= tonumber(h[3]) or now >= tonumber(h[2]) + tonumber(h[4]) then
    redis.call('ZREM', KEYS[1], member)
    if ARGV[1] == 'prune' then result[#result + 1] = member end
  else
    result[2] = result[2] + 1
    if ARGV[1] == 'list' then
      result[#result + 1] = member
      for i = 1, 5 do result[#result + 1] = h[i] end
    end
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[1], KEYS[2]) end
return result
`;
