/** The Redis clock in ms and µs (app hosts drift; Redis is the one clock). */
export const CLOCK = `
local clock = redis.call('TIME')
local nowUs = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local now = math.floor(nowUs / 1000)
`;

/** PEXPIRE at the earlier of the idle and absolute deadlines, measured from `now`. */
export const EXPIRE_AT_EARLIER = `
local function expireAtEarlier(key, last, absolute, idle)
  local deadline = math.min(absolute, last + idle)
  redis.call('PEXPIRE', key, math.max(deadline - now, 1))
  return deadline
end
`;

/**
 * Scripts that touch other sessions of a user (evict, revoke-all, list, prune) get those session keys in KEYS, so
 * Redis routes and checks them (ASK / TRYAGAIN during a slot migration) instead of a script reading a key that has
 * already moved as "missing". The client passes the members it read; `first` is the index of the first such key in
 * KEYS and of its ref in ARGV. `declared[ref]` is the key, or nil when the member was added since the client read
 * the index: the script then returns {'declare', members...} before writing anything, and the client retries.
 */
export const DECLARED = `
local function declaredKeys(firstKey, firstArg)
  local declared = {}
  for i = firstArg, #ARGV do declared[ARGV[i]] = KEYS[firstKey + i - firstArg] end
  return declared
end
local function redeclare(index)
  local reply = {'declare'}
  for _, member in ipairs(redis.call('ZRANGE', index, 0, -1)) do reply[#reply + 1] = member end
  return reply
end
`;
