import { script } from './common.js';

/**
 * addMessage: append, trim and refresh the TTL in one atomic step, so concurrent writers never lose a message, never
 * overshoot the caps, and the caller gets back exactly the messages this append pushed out.
 *
 * KEYS: meta, messages, intents (one slot).
 * ARGV: 1 check owner ('1'/'0'), 2 userId, 3 tenantId, 4 create if missing ('1'/'0'), 5 ttlMs, 6 lifetimeMs (0: none),
 *       7 maxMessages, 8 maxTokens (0: none), 9 indexRefreshMs, 10 role, 11 tokens, 12 flags ('' | 'p' pinned |
 *       's' kept system message), 13 encoded body.
 * A list element is `seq|createdMs|role|tokens|flags|` followed by the (possibly encrypted) body, so trimming reads
 * roles, token counts and flags without decrypting anything.
 * Reply: {'OK', seq, now, count, tokens, created, indexDue, userId, tenantId, ttlMs, trimmed elements...}
 *        | {'NOTFOUND'} | {'OWNER'} | {'PINNED', kept}
 */
export const ADD_MESSAGE = script(
  'add_message',
  `
local now = now_ms()
local m = load(now)
local created = false
local maxMessages = tonumber(ARGV[7])
local keep = ARGV[12] ~= ''
if m then
  if mismatch(m, ARGV[1], ARGV[2], ARGV[3]) then return { 'OWNER' } end
elseif ARGV[4] ~= '1' then
  return { 'NOTFOUND' }
end
local kept = 0
if m then kept = tonumber(m[5]) or 0 end
-- Kept messages (pinned, system) are never trimmed: they may fill all places but one, so the cap stays exact.
if keep and kept + 1 >= maxMessages then return { 'PINNED', kept } end
if not m then
  m = create(now, ARGV[2], ARGV[3], tonumber(ARGV[6]))
  created = true
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local len = redis.call('RPUSH', KEYS[2], seq .. '|' .. now .. '|' .. ARGV[10] .. '|' .. ARGV[11] .. '|' .. ARGV[12] .. '|' .. ARGV[13])
local tokens = redis.call('HINCRBY', KEYS[1], 'tokens', tonumber(ARGV[11]))
redis.call('HINCRBY', KEYS[1], 'r:' .. ARGV[10], 1)
redis.call('HINCRBY', KEYS[1], 'added', 1)
if keep then redis.call('HINCRBY', KEYS[1], 'kept', 1) end

local maxTokens = tonumber(ARGV[8])
local count = len
local removed = {}
local keptHead = {}
local pos = 0
-- Oldest first; the message just added is never trimmed.
while pos < len - 1 and (count > maxMessages or (maxTokens > 0 and tokens > maxTokens)) do
  local element = redis.call('LINDEX', KEYS[2], pos)
  local s1 = string.find(element, '|', 1, true)
  local s2 = string.find(element, '|', s1 + 1, true)
  local s3 = string.find(element, '|', s2 + 1, true)
  local s4 = string.find(element, '|', s3 + 1, true)
  local s5 = string.find(element, '|', s4 + 1, true)
  if s5 > s4 + 1 then
    keptHead[#keptHead + 1] = element
  else
    removed[#removed + 1] = element
    count = count - 1
    tokens = tokens - tonumber(string.sub(element, s3 + 1, s4 - 1))
    redis.call('HINCRBY', KEYS[1], 'r:' .. string.sub(element, s2 + 1, s3 - 1), -1)
  end
  pos = pos + 1
end
if #removed > 0 then
  redis.call('LTRIM', KEYS[2], pos, -1)
  for i = #keptHead, 1, -1 do redis.call('LPUSH', KEYS[2], keptHead[i]) end
  redis.call('HSET', KEYS[1], 'tokens', tokens)
  redis.call('HINCRBY', KEYS[1], 'trimmed', #removed)
end
redis.call('HSET', KEYS[1], 'n', count, 'updated', now)
local due = index_due(m, now, created, tonumber(ARGV[9]))
local ttl = apply_ttl(now, tonumber(ARGV[5]), tonumber(m[3]) or 0)
local reply = { 'OK', seq, now, count, tokens, created and 1 or 0, due, m[1], m[2] or '', ttl }
for i = 1, #removed do reply[#reply + 1] = removed[i] end
return reply
`,
);
