/**
 * Deletes one session and its index entry. KEYS[1] session, KEYS[2] user index (same hash tag).
 * ARGV[1] '1' to return the stored value (for the audit event).
 * Returns nil when there was no session, else the value or ''.
 */
export const DELETE = `
redis.call('ZREM', KEYS[2], string.sub(KEYS[1], -43))
local value = redis.call('GET', KEYS[1])
if not value then return nil end
redis.call('DEL', KEYS[1])
if ARGV[1] == '1' then return value end
return ''
`;
