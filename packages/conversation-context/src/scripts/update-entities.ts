import { script } from './common.js';

/**
 * updateEntities: merge entities by name. Each entity is its own meta hash field `e:<name>`, so merging needs no
 * read-modify-write of an encrypted blob: a name is replaced as a whole, other names are left alone.
 *
 * KEYS: meta, messages, intents (one slot).
 * ARGV: 1 check owner, 2 userId, 3 tenantId, 4 ttlMs, 5 max entities, 6 indexRefreshMs, then name, encoded entity
 *       pairs (names unique within one call). A field value is `updatedMs|` followed by the encoded entity.
 * Reply: {'OK', now, entityCount, indexDue, userId, tenantId, ttlMs} | {'NOTFOUND'} | {'OWNER'} | {'ENTITIES', count}
 */
export const UPDATE_ENTITIES = script(
  'update_entities',
  `
local now = now_ms()
local m, refused = owned(now)
if refused then return refused end
local count = tonumber(redis.call('HGET', KEYS[1], 'ents') or '0')
local added = 0
for i = 7, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], 'e:' .. ARGV[i]) == 0 then added = added + 1 end
end
if count + added > tonumber(ARGV[5]) then return { 'ENTITIES', count } end
local fields = { 'ents', count + added }
for i = 7, #ARGV, 2 do
  fields[#fields + 1] = 'e:' .. ARGV[i]
  fields[#fields + 1] = now .. '|' .. ARGV[i + 1]
end
local due, want = commit(m, now, false, tonumber(ARGV[6]), tonumber(ARGV[4]), fields)
return { 'OK', now, count + added, due, m[1], m[2] or '', want }
`,
);
