import { script } from './common.js';

/**
 * addMessage: append, trim and refresh the TTL in one atomic step, so concurrent writers never lose a message, never
 * overshoot the caps, and the caller gets back exactly the messages this append pushed out.
 *
 * KEYS: meta, messages, intents (one slot).
 * ARGV: 1 the store's settings `ttlMs|lifetimeMs|maxMessages|maxTokens|indexRefreshMs|ttlSlackMs` (0: none),
 *       2 this call `<check owner 0/1><create if missing 0/1>|role|tokens|flags|token` (flags: '' | 'p' pinned | 's'
 *       kept system message; token: unique per call), 3 userId, 4 tenantId, 5 encoded body.
 * The token makes the append idempotent: ioredis re-sends a command whose connection closed before the reply came
 * (a CLIENT KILL, a network blip, a failover), and Redis may already have run it. The meta field rt keeps the tokens
 * of the last 16 appends with their seq; a token seen again answers DUP with the first seq and appends nothing.
 * Few arguments on purpose: ioredis turns each argument of a command with a Buffer into its own Buffer.
 * A list element is `seq|createdMs|role|tokens|flags|` followed by the (possibly encrypted) body, so trimming reads
 * roles, token counts and flags without decrypting anything.
 * Counters are read with the owner fields (one HMGET) and written back with one HSET: every redis.call inside a
 * script costs about a microsecond, and this script runs on every message. For the same reason the TTL is refreshed
 * only when less than ttl - ttlSlackMs remains (and always on keys this call created).
 * Reply: {'OK', seq, now, count, tokens, created, indexDue, userId, tenantId, ttlMs, trimmed elements...}
 *        | {'DUP', seq, now, count, tokens} | {'NOTFOUND'} | {'OWNER'} | {'PINNED', kept}
 */
export const ADD_MESSAGE = script(
  'add_message',
  `
local now = now_ms()
local ttl, lifetime, maxMessages, maxTokens, refresh, slack =
  string.match(ARGV[1], '^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)$')
ttl = tonumber(ttl)
maxMessages = tonumber(maxMessages)
maxTokens = tonumber(maxTokens)
local check, allowCreate, role, tok, flags, token = string.match(ARGV[2], '^(%d)(%d)|(%a+)|(%d+)|(%a*)|([%w_-]+)$')
local m = load(now)
local created = false
local keep = flags ~= ''
if m then
  if mismatch(m, check, ARGV[3], ARGV[4]) then return { 'OWNER' } end
elseif allowCreate ~= '1' then
  return { 'NOTFOUND' }
end
local recent = ''
if m and m[17] then
  recent = m[17]
  local at = string.find(recent, ',' .. token .. ':', 1, true)
  if at then
    local from = at + #token + 2
    local to = string.find(recent, ',', from, true)
    return { 'DUP', tonumber(string.sub(recent, from, (to or 0) - 1)), now, tonumber(m[9]) or 0, tonumber(m[10]) or 0 }
  end
end
local kept = 0
if m then kept = tonumber(m[5]) or 0 end
-- Kept messages (pinned, system) are never trimmed: they may fill all places but one, so the cap stays exact.
if keep and kept + 1 >= maxMessages then return { 'PINNED', kept } end
if not m then
  m = create(now, ARGV[3], ARGV[4], tonumber(lifetime))
  created = true
end
local seq = (tonumber(m[6]) or 0) + 1
local len = redis.call('RPUSH', KEYS[2], seq .. '|' .. now .. '|' .. role .. '|' .. tok .. '|' .. flags .. '|' .. ARGV[5])
local roles = { system = tonumber(m[13]) or 0, user = tonumber(m[14]) or 0, assistant = tonumber(m[15]) or 0,
  tool = tonumber(m[16]) or 0 }
roles[role] = roles[role] + 1
local tokens = (tonumber(m[10]) or 0) + tonumber(tok)
if keep then kept = kept + 1 end

local count = len
local removed = {}
local keptHead = {}
local scanned = 0
-- Oldest first; the message just added is never trimmed. Kept messages met on the way go back to the head.
while scanned < len - 1 and (count > maxMessages or (maxTokens > 0 and tokens > maxTokens)) do
  local element = redis.call('LPOP', KEYS[2])
  scanned = scanned + 1
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
    local r = string.sub(element, s2 + 1, s3 - 1)
    roles[r] = roles[r] - 1
  end
end
for i = #keptHead, 1, -1 do redis.call('LPUSH', KEYS[2], keptHead[i]) end

local want = ttl_for(now, ttl, m)
local fields = { 'seq', seq, 'n', count, 'tokens', tokens, 'added', (tonumber(m[11]) or 0) + 1,
  'trimmed', (tonumber(m[12]) or 0) + #removed, 'kept', kept, 'updated', now,
  'r:system', roles.system, 'r:user', roles.user, 'r:assistant', roles.assistant, 'r:tool', roles.tool }
-- Remember this append's token with the 15 before it.
recent = ',' .. token .. ':' .. seq .. recent
local cut = 0
for _ = 1, 16 do
  cut = string.find(recent, ',', cut + 1, true)
  if not cut then break end
end
if cut then recent = string.sub(recent, 1, cut - 1) end
fields[#fields + 1] = 'rt'
fields[#fields + 1] = recent
local due = index_due(m, now, created, tonumber(refresh), fields)
-- The list did not exist before this RPUSH (len 1): it has no TTL yet, whatever ext says.
local renew = created or len == 1 or (tonumber(m[7]) or 0) - now < want - tonumber(slack)
if renew then
  fields[#fields + 1] = 'ext'
  fields[#fields + 1] = now + want
else
  want = (tonumber(m[7]) or 0) - now
end
redis.call('HSET', KEYS[1], unpack(fields))
if renew then expire_all(want, m) end
local reply = { 'OK', seq, now, count, tokens, created and 1 or 0, due, m[1], m[2] or '', want }
for i = 1, #removed do reply[#reply + 1] = removed[i] end
return reply
`,
);
