import { CLOCK, DECLARED, HEADER } from './common.js';

/**
 * Creates a session and enforces the per-user cap in one step (so 50 concurrent creates leave exactly the cap).
 * KEYS[1] session, KEYS[2] user index (ZSET sessionRef -> absolute deadline in µs), KEYS[3] user-name key,
 * KEYS[4..] session keys of index members the client knows (see DECLARED). All share the user's hash tag.
 * ARGV[1] 'idleMs,absoluteMs,cap,replace,wantRecords' (replace '1' overwrites an existing id; wantRecords '1'
 * returns evicted records for audit), ARGV[2] the encoded record, ARGV[3] the encoded user id for KEYS[3].
 * Entries past their absolute deadline are dropped by score (no key access). Past the cap, the oldest entries are
 * evicted (an idle-expired one is just removed); if one of them was not declared, nothing is written and the
 * members are returned for a retry.
 * Returns {'exists'} | {'declare', members...} | {'ok', createdAt, absoluteDeadline, evictedRef, record-or-'', ...}.
 */
export const CREATE = `${CLOCK}${HEADER}${DECLARED}
local idle, absolute, cap, replace, wantRecords = string.match(ARGV[1], '^(%d+),(%d+),(%d+),(%d),(%d)$')
idle, absolute, cap = tonumber(idle), tonumber(absolute), tonumber(cap)
local ref = string.sub(KEYS[1], -43)
if replace ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', nowUs)
local declared = declaredKeys(4)
local excess = redis.call('ZCARD', KEYS[2]) - cap
if not redis.call('ZSCORE', KEYS[2], ref) then excess = excess + 1 end
local victims = {}
if excess > 0 then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, excess + 1)) do
    if excess <= 0 then break end
    if member ~= ref then
      if not declared[member] then return redeclare(KEYS[2]) end
      victims[#victims + 1] = member
      excess = excess - 1
    end
  end
end
-- Nothing was written above this line.
local deadline = now + absolute
redis.call('SET', KEYS[1], header(now, deadline, idle, now, 1) .. ARGV[2], 'PX', math.min(absolute, idle))
redis.call('ZADD', KEYS[2], nowUs + absolute * 1000, ref)
local result = {'ok', tostring(now), tostring(deadline)}
for _, member in ipairs(victims) do
  local key = declared[member]
  local value = redis.call('GET', key)
  if value then
    result[#result + 1] = member
    result[#result + 1] = wantRecords == '1' and value or ''
    redis.call('DEL', key)
  end
  redis.call('ZREM', KEYS[2], member)
end
-- The index and the name key live as long as the longest-lived session can.
if redis.call('PTTL', KEYS[2]) < absolute then redis.call('PEXPIRE', KEYS[2], absolute) end
if redis.call('PTTL', KEYS[3]) < absolute then redis.call('SET', KEYS[3], ARGV[3], 'PX', absolute) end
return result
`;
