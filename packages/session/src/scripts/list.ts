import { CLOCK, DECLARED, HEADER } from './common.js';

/**
 * Lists a user's live sessions (for an "active devices" screen), or counts them, and prunes index entries whose
 * session has expired. KEYS[1] user index, KEYS[2] user-name key, KEYS[3..] member session keys (see DECLARED).
 * ARGV[1] 'list' (return the sessions' stored values), 'count', or 'prune'.
 * Returns {'declare', members...} (nothing written) | {'ok', count, encodedName, removedCount, then the ref of each
 * removed entry (its session expired: the client audits it as 'expire' whichever mode found it), then per live
 * session its ref and stored value ('list' only)}. No tokens are stored, so none can be returned.
 */
export const LIST = `${CLOCK}${HEADER}${DECLARED}
local declared = declaredKeys(3)
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, member in ipairs(members) do
  if not declared[member] then return redeclare(KEYS[1]) end
end
local result = {'ok', 0, redis.call('GET', KEYS[2]) or '', 0}
local live = {}
for _, member in ipairs(members) do
  local value = ARGV[1] == 'list' and redis.call('GET', declared[member])
    or redis.call('GETRANGE', declared[member], 0, HEADER_BYTES - 1)
  if not alive(readHeader(value)) then
    redis.call('ZREM', KEYS[1], member)
    result[4] = result[4] + 1
    result[#result + 1] = member
  else
    result[2] = result[2] + 1
    if ARGV[1] == 'list' then
      live[#live + 1] = member
      live[#live + 1] = value
    end
  end
end
for _, item in ipairs(live) do result[#result + 1] = item end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[1], KEYS[2]) end
return result
`;
