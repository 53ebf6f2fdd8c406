/**
 * Points a caller-supplied id at its session's new slot (an adapter session moved to the user who logged in), only if
 * the pointer still names the slot the session was taken from: a logout that ran meanwhile left a tombstone there,
 * and the move must then not make the id live again. KEYS[1] the id's pointer. ARGV[1] the expected tag, ARGV[2] the
 * new tag. KEEPTTL: the pointer keeps the lifetime of the session it was claimed for.
 * Returns 1 when repointed, 0 otherwise.
 */
export const REPOINT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
`;

/**
 * Releases a claim of a caller-supplied id: deletes the pointer only while it still holds the claim's tag, so a
 * logout's tombstone or another session's tag written since is never removed. KEYS[1] the pointer, ARGV[1] the tag.
 * Returns 1 when deleted.
 */
export const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`;

/**
 * A logout's tombstone in the pointer of a caller-supplied id (the id stays known as ended until the pointer
 * expires). Returns what the pointer held, or nil when there was none (nothing written): a tag other than the one
 * the logout located means the session moved meanwhile, and the caller deletes it there too.
 */
export const TOMBSTONE = `
local current = redis.call('GET', KEYS[1])
if not current then return nil end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return current
`;
