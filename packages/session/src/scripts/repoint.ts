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

/**
 * A login move's take of a session from its old slot: deletes it and its index entry and leaves a marker naming the
 * slot it moved to, so that a second take (the same move sent again after a lost reply, or a concurrent move of the
 * same id for the same user) learns where it went instead of reading "gone", which means logged out, revoked or
 * expired. KEYS[1] session, KEYS[2] its index, KEYS[3] the marker (one slot). ARGV[1] the new tag, ARGV[2] the
 * marker's TTL in ms. Returns {'taken'} | {'moved', tag} | {'gone'}.
 */
export const TAKE = `
redis.call('ZREM', KEYS[2], string.sub(KEYS[1], -43))
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
  return { 'taken' }
end
local moved = redis.call('GET', KEYS[3])
if moved then return { 'moved', moved } end
return { 'gone' }
`;
