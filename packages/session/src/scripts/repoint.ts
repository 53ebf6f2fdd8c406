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
