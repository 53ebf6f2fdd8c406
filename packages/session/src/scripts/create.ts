import { CLOCK, DECLARED, HEADER } from './common.js';

/**
 * Creates a session and enforces the per-user cap in one step (so 50 concurrent creates leave exactly the cap).
 * KEYS[1] session, KEYS[2] user index (ZSET sessionRef -> absolute deadline in µs), KEYS[3] user-name key,
 * KEYS[4..] session keys of index members the client knows (see DECLARED). All share the user's hash tag.
 * ARGV[1] 'idleMs,absoluteMs,cap,mode,wantRecords': mode 'n' for a token we generated (it cannot exist yet), 'c' for
 * a caller-supplied id that must not exist, 'r' for one to overwrite; wantRecords '1' returns evicted values for
 * audit. ARGV[2] the encoded record, ARGV[3] the encoded user id for KEYS[3], or '' when nobody reads audit events
 * (the user-name key only serves the events of cleanupExpiredSessions).
 * Under the cap this is five or six commands. At the cap, entries past their absolute deadline are dropped by score (no key
 * access), then the oldest are evicted (an idle-expired one is just removed); if one of them was not declared,
 * nothing is written and the members are returned for a retry.
 * Returns {'exists'} | {'declare', members...} | {'ok', createdAt, absoluteDeadline, evictedRef, value-or-'', ...}.
 */
export const CREATE = `${CLOCK}${HEADER}${DECLARED}
local idle, absolute, cap, mode, wantRecords = string.match(ARGV[1], '^(%d+),(%d+),(%d+),(%a),(%d)$')
idle, absolute, cap = tonumber(idle), tonumber(absolute), tonumber(cap)
local ref = string.sub(KEYS[1], -43)
if mode == 'c' and redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
local size = redis.call('ZCARD', KEYS[2])
if mode == 'n' or not redis.call('ZSCORE', KEYS[2], ref) then size = size + 1 end
local victims = {}
local declared
if size > cap then
  -- Entries past their absolute deadline are the oldest scores: prune (and recount) only when there are some.
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if oldest[2] and tonumber(oldest[2]) <= nowUs then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', nowUs)
    size = redis.call('ZCARD', KEYS[2])
    if mode == 'n' or not redis.call('ZSCORE', KEYS[2], ref) then size = size + 1 end
  end
  local excess = size - cap
  if excess > 0 then
    declared = declaredKeys(4)
    for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, excess)) do
      if excess <= 0 then break end
      if member ~= ref then
        if not declared[member] then return redeclare(KEYS[2]) end
        victims[#victims + 1] = member
        excess = excess - 1
      end
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
  local value = wantRecords == '1' and redis.call('GET', key) or ''
  if redis.call('DEL', key) == 1 then
    result[#result + 1] = member
    result[#result + 1] = value
  end
  redis.call('ZREM', KEYS[2], member)
end
-- The index and the name key live as long as the longest-lived session can (GT: never shorten; NX: a new index).
if redis.call('PEXPIRE', KEYS[2], absolute, 'GT') == 0 then redis.call('PEXPIRE', KEYS[2], absolute, 'NX') end
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3], 'PX', absolute) end
return result
`;
