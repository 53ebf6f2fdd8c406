import { CLOCK, HEADER } from './common.js';

/**
 * Sliding expiration, for a read that found the session due for a touch (the read itself is a plain GET) and for
 * extendSession. KEYS[1] session, KEYS[2] user index. ARGV[1] touch interval ms ('0' to touch now).
 * Only the last-seen bytes of the header are rewritten, and the index entry's deadline follows (XX: an entry that a
 * revoke removed is not added back); a missing or expired key is never written, so a revoked session cannot come
 * back through a late read or touch.
 * Returns nil (gone) or {touched '1'/'0', lastSeen, absoluteDeadline, idleMs, now}: `now` lets the client learn
 * how far its clock is from Redis' (the throttle compares them).
 */
export const TOUCH = `${CLOCK}${HEADER}
local h = readHeader(redis.call('GETRANGE', KEYS[1], 0, HEADER_BYTES - 1))
if not alive(h) then return nil end
if now - h.last < tonumber(ARGV[1]) then
  return {'0', tostring(h.last), tostring(h.absolute), tostring(h.idle), tostring(now)}
end
h.last = now
redis.call('SETRANGE', KEYS[1], 37, string.format('%013d', now))
expireAtEarlier(KEYS[1], h)
indexDeadline(KEYS[2], string.sub(KEYS[1], -43), h)
return {'1', tostring(now), tostring(h.absolute), tostring(h.idle), tostring(now)}
`;
