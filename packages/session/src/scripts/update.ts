import { CLOCK, EXPIRE_AT_EARLIER } from './common.js';

/**
 * Replaces a session's data if, and only if, the session still exists and its version is the one the caller read
 * (compare-and-set), then counts as activity (sliding expiration).
 * KEYS[1] session hash. ARGV[1] data, ARGV[2] expected version ('' for any).
 * A deleted, revoked or expired session is never recreated (the connect-redis #328 race): HSET runs only after the
 * existence check, inside the same script.
 * Returns {'missing'} | {'conflict', version} | {'ok', version, lastSeen, absoluteDeadline, idleMs, meta}.
 */
export const UPDATE = `${CLOCK}${EXPIRE_AT_EARLIER}
local h = redis.call('HMGET', KEYS[1], 'v', 'l', 'a', 'i', 'm')
if not h[1] then return {'missing'} end
local absolute, idle = tonumber(h[3]), tonumber(h[4])
if now >= absolute or now >= tonumber(h[2]) + idle then return {'missing'} end
if ARGV[2] ~= '' and ARGV[2] ~= h[1] then return {'conflict', h[1]} end
local version = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'l', now)
expireAtEarlier(KEYS[1], now, absolute, idle)
return {'ok', tostring(version), tostring(now), h[3], h[4], h[5]}
`;
