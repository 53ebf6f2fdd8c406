/**
 * Deletes one session and its index entry. KEYS[1] session hash, KEYS[2] user index (same hash tag).
 * ARGV[1] sessionRef. Returns nil when there was no session, else its meta (for the audit event).
 */
export const DELETE = `
local meta = redis.call('HGET', KEYS[1], 'm')
redis.call('ZREM', KEYS[2], ARGV[1])
if not meta then return nil end
redis.call('DEL', KEYS[1])
return meta
`;
