/** The Redis clock in ms and µs (app hosts drift; Redis is the one clock). */
export const CLOCK = `
local clock = redis.call('TIME')
local nowUs = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local now = math.floor(nowUs / 1000)
`;

/** Writes the fixed-width header described below; alone, for scripts that only write one (CREATE). */
export const FORMAT_HEADER = `
local function header(created, absolute, idle, last, version)
  return string.format('%013d%013d%011d%013d%010d', created, absolute, idle, last, version)
end
`;

/**
 * A session is one string: a 60-byte ASCII header, then the encoded record (user id, device, data). The header
 * holds created-at, absolute deadline, idle timeout, last-seen (ms) and the version, fixed-width, so a read is a
 * plain GET and a touch rewrites 13 bytes in place (SETRANGE) without ever decoding the (possibly encrypted) record.
 * Offsets: created 0-12, absolute 13-25, idle 26-36, last 37-49, version 50-59.
 */
export const HEADER = `${FORMAT_HEADER}
local HEADER_BYTES = 60
local function readHeader(value)
  if not value or #value < HEADER_BYTES then return nil end
  return {
    created = tonumber(string.sub(value, 1, 13)),
    absolute = tonumber(string.sub(value, 14, 26)),
    idle = tonumber(string.sub(value, 27, 37)),
    last = tonumber(string.sub(value, 38, 50)),
    version = tonumber(string.sub(value, 51, 60)),
  }
end
local function alive(h)
  return h and now < h.absolute and now < h.last + h.idle
end
-- PEXPIRE at the earlier of the idle and absolute deadlines, measured from now.
local function expireAtEarlier(key, h)
  redis.call('PEXPIRE', key, math.max(math.min(h.absolute, h.last + h.idle) - now, 1))
end
-- The index scores each session by its deadline (µs): expired entries sort first, so a create past the cap pops
-- them before any live session, and live ones go least recently active first. XX: never re-adds a revoked entry.
local function indexDeadline(index, ref, h)
  redis.call('ZADD', index, 'XX', math.min(h.absolute * 1000, nowUs + h.idle * 1000), ref)
end
`;

/**
 * Scripts that touch other sessions of a user (evict, revoke-all, list, prune) get those session keys in KEYS, so
 * Redis routes and checks them (ASK / TRYAGAIN during a slot migration) instead of a script reading a key that has
 * already moved as "missing". The client passes the session keys it knows; `declaredKeys(first)` maps each
 * sessionRef (the last 43 characters of a session key) to its key. A member missing from that map (added since the
 * client read the index) makes the script return {'declare', members...} before writing anything; the client then
 * runs it again with those.
 */
export const DECLARED = `
local function declaredKeys(first)
  local declared = {}
  for i = first, #KEYS do declared[string.sub(KEYS[i], -43)] = KEYS[i] end
  return declared
end
local function redeclare(index)
  local reply = {'declare'}
  for _, member in ipairs(redis.call('ZRANGE', index, 0, -1)) do reply[#reply + 1] = member end
  return reply
end
`;
