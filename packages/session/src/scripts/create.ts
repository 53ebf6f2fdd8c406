import { CLOCK, DECLARED, FORMAT_HEADER } from './common.js';

/**
 * Creates a session and enforces the per-user cap in one step (so 50 concurrent creates leave exactly the cap).
 * KEYS[1] session, KEYS[2] user index (ZSET sessionRef -> the session's deadline in µs, see common.ts), KEYS[3]
 * user-name key, KEYS[4..] session keys of index members the client expects to evict (see DECLARED). All share the
 * user's hash tag.
 * ARGV[1] 'idleMs,absoluteMs,cap,mode,wantRecords,indexTtlMs,extend,keepCreated,keepAbsolute': mode 'n' for a token
 * we generated (it cannot exist yet), 'c' for a caller-supplied id that must not exist, 'r' for one to overwrite
 * (also a retry of 'n'); wantRecords '1' returns evicted values for audit; indexTtlMs the TTL to give the index
 * (absolute + slack), extend '0' when the client extended it less than the slack ago; keepCreated and keepAbsolute
 * (ms, '0' for none) carry the creation time and absolute deadline of a session moved from another slot (an adapter
 * session that logged in), which a move must not push back. ARGV[2] the encoded record, ARGV[3] the encoded user id
 * for KEYS[3], or '' when nobody reads audit events (the user-name key only serves the events of
 * cleanupExpiredSessions).
 * Under the cap this is four commands. Past it, the members with the lowest deadlines are popped: sessions that
 * already expired (their index entries linger until popped or pruned) first, then the least recently active. If one
 * of them was not declared, they are put back as they were and the members are returned for a retry: nothing changed.
 * Returns {'exists'} | {'gone'} (the kept absolute deadline has passed: nothing written) | {'declare', members...} |
 * {'ok', createdAt, absoluteDeadline, evictedCount, then per entry popped from the index its ref and stored value:
 * '' when not wanted or when that session had already expired}.
 */
export const CREATE = `${CLOCK}${FORMAT_HEADER}${DECLARED}
local idle, absolute, cap, mode, wantRecords, indexTtl, extend, keepCreated, keepAbsolute =
  string.match(ARGV[1], '^(%d+),(%d+),(%d+),(%a),(%d),(%d+),(%d),(%d+),(%d+)$')
idle, absolute, cap, indexTtl = tonumber(idle), tonumber(absolute), tonumber(cap), tonumber(indexTtl)
keepCreated, keepAbsolute = tonumber(keepCreated), tonumber(keepAbsolute)
local created, deadline = now, now + absolute
if keepAbsolute > 0 then
  if keepAbsolute <= now then return {'gone'} end
  created, deadline = keepCreated, keepAbsolute
end
local ref = string.sub(KEYS[1], -43)
if mode == 'c' and redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
local size = redis.call('ZCARD', KEYS[2])
local newIndex = size == 0
local members = size
if mode == 'n' or not redis.call('ZSCORE', KEYS[2], ref) then size = size + 1 end
local victims = {}
local declared
if size > cap then
  local popped = redis.call('ZPOPMIN', KEYS[2], size - cap)
  -- Popping every member deletes the index (an empty ZSET is removed): the ZADD below then creates a new key, which
  -- has no TTL until this script gives it one (at a cap of 1, every create at the cap).
  if #popped / 2 >= members then newIndex = true end
  declared = declaredKeys(4)
  for i = 1, #popped, 2 do
    if not declared[popped[i]] and popped[i] ~= ref then
      local back = {}
      for j = 1, #popped, 2 do back[#back + 1] = popped[j + 1]; back[#back + 1] = popped[j] end
      redis.call('ZADD', KEYS[2], unpack(back))
      return redeclare(KEYS[2])
    end
  end
  for i = 1, #popped, 2 do
    if popped[i] ~= ref then victims[#victims + 1] = popped[i] end
  end
end
local result = {'ok', tostring(created), tostring(deadline), 0}
if #victims > 0 then
  local victimKeys = {}
  for i, member in ipairs(victims) do
    victimKeys[i] = declared[member]
    result[#result + 1] = member
    result[#result + 1] = wantRecords == '1' and redis.call('GET', victimKeys[i]) or ''
  end
  -- An entry whose session already expired is not an eviction: DEL counts only live sessions.
  result[4] = redis.call('DEL', unpack(victimKeys))
end
local first = math.min(deadline - now, idle)
redis.call('SET', KEYS[1], header(created, deadline, idle, now, 1) .. ARGV[2], 'PX', first)
redis.call('ZADD', KEYS[2], nowUs + first * 1000, ref)
-- The index outlives the longest-lived session it can hold: indexTtl is absolute + slack. A new index always gets
-- it; an existing one only when the client has not extended it within the slack (extend '0' otherwise), so at
-- least absolute is left. GT: never shorten one that another process extended further.
if newIndex then
  redis.call('PEXPIRE', KEYS[2], indexTtl)
elseif extend == '1' then
  redis.call('PEXPIRE', KEYS[2], indexTtl, 'GT')
end
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3], 'PX', absolute) end
return result
`;
