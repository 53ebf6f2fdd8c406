import { CLOCK, EXPIRE_AT_EARLIER } from './common.js';

/**
 * The hot path: reads a session and, when the throttle interval has passed, touches it (sliding expiration).
 * KEYS[1] session hash. ARGV[1] touch interval ms, ARGV[2] '1' to allow touching.
 * A missing key is never written, so a revoked session cannot come back through a late read. A session past a
 * deadline by the Redis clock is treated as gone even if its TTL has not fired yet (ms rounding).
 * Returns nil, or { createdAt, lastSeen, absoluteDeadline, idleMs, version, data, meta, touched, now }.
 */
export const GET = `${CLOCK}${EXPIRE_AT_EARLIER}
local h = redis.call('HMGET', KEYS[1], 'c', 'l', 'a', 'i', 'v', 'd', 'm')
if not h[1] then return nil end
local last, absolute, idle = tonumber(h[2]), tonumber(h[3]), tonumber(h[4])
if now >= absolute or now >= last + idle then return nil end
local touched = '0'
if ARGV[2] == '1' and now - last >= tonumber(ARGV[1]) then
  last = now
  redis.call('HSET', KEYS[1], 'l', now)
  expireAtEarlier(KEYS[1], now, absolute, idle)
  touched = '1'
end
return {h[1], tostring(last), h[3], h[4], h[5], h[6], h[7], touched, tostring(now)}
`;
