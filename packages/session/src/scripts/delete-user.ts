import { DECLARED } from './common.js';

/**
 * Revokes sessions of one user: all of them, all but one, or one by handle.
 * KEYS[1] user index, KEYS[2] user-name key, KEYS[3..] session keys of the members to revoke (see DECLARED).
 * ARGV[1] sessionRef to keep ('' for none), ARGV[2] the only sessionRef to revoke ('' for all), ARGV[3] '1' to
 * return the stored values (for audit).
 * Returns {'declare', members...} (nothing written) | {'ok', ref1, value1-or-'', ...} of sessions revoked.
 */
export const DELETE_USER = `${DECLARED}
local declared = declaredKeys(3)
local targets = {}
if ARGV[2] ~= '' then
  if declared[ARGV[2]] then targets[1] = ARGV[2] end
else
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if member ~= ARGV[1] then
      if not declared[member] then return redeclare(KEYS[1]) end
      targets[#targets + 1] = member
    end
  end
end
local result = {'ok'}
for _, member in ipairs(targets) do
  local key = declared[member]
  local value = redis.call('GET', key)
  if value then
    result[#result + 1] = member
    result[#result + 1] = ARGV[3] == '1' and value or ''
    redis.call('DEL', key)
  end
  redis.call('ZREM', KEYS[1], member)
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[1], KEYS[2]) end
return result
`;
