import { CLOCK, EXPIRE_AT_EARLIER } from './common.js';

/**
 * Touches a session now, whatever the throttle says: the idle deadline moves to now + idle, capped by the
 * absolute deadline. KEYS[1] session hash. Never creates a missing key.
 * Returns nil or { lastSeen, absoluteDeadline, idleMs, meta }.
 */
export const EXTEND = `${CLOCK}${EXPIRE_AT_EARLIER}
local h = redis.call('HMGET', KEYS[1], 'l', 'a', 'i', 'm')
if not h[1] then return nil end
local absolute, idle = tonumber(h[2]), tonumber(h[3])
if now >= absolute or now >= tonumber(h[1]) + idle then return nil end
redis.call('HSET', KEYS[1], 'l', now)
expireAtEarlier(KEYS[1], now, absolute, idle)
return {tostring(now), h[2], h[3], h[4]}
`;
