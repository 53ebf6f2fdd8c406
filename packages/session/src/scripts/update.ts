import { CLOCK, HEADER } from './common.js';

/**
 * Replaces a session's record if, and only if, the session still exists and its version is the one the caller read
 * (compare-and-set), then counts as activity (sliding expiration).
 * KEYS[1] session, KEYS[2] user index. ARGV[1] encoded record, ARGV[2] expected version ('' for any).
 * A deleted, revoked or expired session is never recreated (the connect-redis #328 race): the SET runs only after
 * the existence check, inside the same script, and the index entry is only moved (XX), never added.
 * Returns {'missing'} | {'conflict', version} | {'ok', version, lastSeen, absoluteDeadline, idleMs}.
 */
export const UPDATE = `${CLOCK}${HEADER}
local h = readHeader(redis.call('GETRANGE', KEYS[1], 0, HEADER_BYTES - 1))
if not alive(h) then return {'missing'} end
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= h.version then return {'conflict', tostring(h.version)} end
h.version = h.version + 1
h.last = now
redis.call('SET', KEYS[1], header(h.created, h.absolute, h.idle, now, h.version) .. ARGV[1],
  'PX', math.max(math.min(h.absolute, now + h.idle) - now, 1))
indexDeadline(KEYS[2], string.sub(KEYS[1], -43), h)
return {'ok', tostring(h.version), tostring(now), tostring(h.absolute), tostring(h.idle)}
`;
