import { CLOCK, DECLARED } from './common.js';

/**
 * Creates a session and enforces the per-user cap in one step (so 50 concurrent creates leave exactly the cap).
 * KEYS[1] session hash, KEYS[2] user index (ZSET ref -> absolute deadline in µs), KEYS[3] user-name key,
 * KEYS[4..] session keys of index members the client read (see DECLARED). All share the user's hash tag.
 * ARGV: ref, idleMs, absoluteMs, cap, data, meta, nameValue, replace ('1' to overwrite an existing id), refs of KEYS[4..].
 * Entries past their absolute deadline are dropped by score (no key access). Past the cap, the oldest entries are
 * evicted (an idle-expired one is just removed); if one of them was not declared, nothing is written and the
 * members are returned for a retry.
 * Returns {'exists'} | {'declare', members...} | {'ok', createdAt, absoluteDeadline, evictedRef, evictedMeta, ...}.
 */
export const CREATE = `${CLOCK}${DECLARED}
local ref, idle, absolute, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[8] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', nowUs)
local declared = declaredKeys(4, 9)
local excess = redis.call('ZCARD', KEYS[2]) - cap
if not redis.call('ZSCORE', KEYS[2], ref) then excess = excess + 1 end
local victims = {}
if excess > 0 then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
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
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'c', now, 'l', now, 'a', deadline, 'i', idle, 'v', 1, 'd', ARGV[5], 'm', ARGV[6])
redis.call('PEXPIRE', KEYS[1], math.min(absolute, idle))
redis.call('ZADD', KEYS[2], nowUs + absolute * 1000, ref)
local result = {'ok', tostring(now), tostring(deadline)}
for _, member in ipairs(victims) do
  local key = declared[member]
  local meta = redis.call('HGET', key, 'm')
  if meta then
    result[#result + 1] = member
    result[#result + 1] = meta
    redis.call('DEL', key)
  end
  redis.call('ZREM', KEYS[2], member)
end
-- The index and the name key live as long as the longest-lived session can.
redis.call('SET', KEYS[3], ARGV[7], 'KEEPTTL')
for i = 2, 3 do
  if redis.call('PTTL', KEYS[i]) < absolute then redis.call('PEXPIRE', KEYS[i], absolute) end
end
return result
`;
