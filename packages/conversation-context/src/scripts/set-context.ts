import { script } from './common.js';

/**
 * setContext: create a conversation for an owner, or update its context data; the owner of an existing
 * conversation never changes.
 *
 * KEYS: meta, messages, intents (one slot).
 * ARGV: 1 userId, 2 tenantId, 3 ttlMs, 4 lifetimeMs, 5 indexRefreshMs, 6 data mode ('0' keep, '1' set, '2' clear),
 *       7 encoded data.
 * Reply: {'OK', created, indexDue, ttlMs, now} | {'OWNER'}
 */
export const SET_CONTEXT = script(
  'set_context',
  `
local now = now_ms()
local m = load(now)
local created = false
if m then
  if mismatch(m, '1', ARGV[1], ARGV[2]) then return { 'OWNER' } end
else
  m = create(now, ARGV[1], ARGV[2], tonumber(ARGV[4]))
  created = true
end
local fields = {}
if ARGV[6] == '1' then
  fields[#fields + 1] = 'ctx'
  fields[#fields + 1] = ARGV[7]
elseif ARGV[6] == '2' then
  redis.call('HDEL', KEYS[1], 'ctx')
end
local due, want = commit(m, now, created, tonumber(ARGV[5]), tonumber(ARGV[3]), fields)
return { 'OK', created and 1 or 0, due, want, now }
`,
);
