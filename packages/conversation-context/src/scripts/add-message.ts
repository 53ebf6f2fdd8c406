import { plainScript } from './common.js';

/**
 * addMessage: append, trim and refresh the TTL in one atomic step, so concurrent writers never lose a message, never
 * overshoot the caps, and the caller gets back exactly the messages this append pushed out.
 *
 * KEYS: meta, messages, intents (one slot).
 * ARGV: 1 the store's settings `ttlMs|lifetimeMs|maxMessages|maxTokens|indexRefreshMs|ttlSlackMs` (0: none; one of
 *       the two limits is set),
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
 * only when less than ttl - ttlSlackMs remains (and always on keys this call created), and the script does not use
 * the shared preamble (it would build its helper closures on every call): it inlines what it needs of it, with the
 * same meta fields and rules (see common.ts).
 * Reply: {'OK', seq, now, count, tokens, created, indexDue, userId, tenantId, ttlMs, trimmed elements...}
 *        | {'DUP', seq, now, count, tokens} | {'NOTFOUND'} | {'OWNER'} | {'PINNED', kept, keptTokens}
 */
export const ADD_MESSAGE = plainScript(
  'add_message',
  `
local call = redis.call
local t = call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl, lifetime, maxMessages, maxTokens, refresh, slack =
  string.match(ARGV[1], '^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)$')
ttl = tonumber(ttl)
maxMessages = tonumber(maxMessages)
maxTokens = tonumber(maxTokens)
local check, allowCreate, role, tok, flags, token = string.match(ARGV[2], '^(%d)(%d)|(%a+)|(%d+)|(%a*)|([%w_-]+)$')
local m = call('HMGET', KEYS[1], 'uid', 'tid', 'exp', 'idx', 'kept', 'seq', 'ext', 'ix', 'n', 'tokens',
  'added', 'trimmed', 'r:system', 'r:user', 'r:assistant', 'r:tool', 'rt', 'ixe', 'kt')
local created = false
local exp = tonumber(m[3]) or 0
if m[1] and exp > 0 and now >= exp then
  -- Past its absolute deadline: its keys expire at that moment anyway, this only closes the last millisecond.
  call('DEL', KEYS[1], KEYS[2], KEYS[3])
  m = { false }
  exp = 0
end
local keep = flags ~= ''
local kept = tonumber(m[5]) or 0
local recent = m[17] or ''
if m[1] then
  if check == '1' and (m[1] ~= ARGV[3] or (m[2] or '') ~= ARGV[4]) then return { 'OWNER' } end
  local at = string.find(recent, ',' .. token .. ':', 1, true)
  if at then
    local seqAt = string.match(recent, '^(%d+)', at + #token + 2)
    return { 'DUP', tonumber(seqAt), now, tonumber(m[9]) or 0, tonumber(m[10]) or 0 }
  end
elseif allowCreate ~= '1' then
  return { 'NOTFOUND' }
end
-- Kept messages are never trimmed: they may fill all places but one, and (kt, each counted as at least one token)
-- all of the token budget but one token, so that a store with only maxTokens stays bounded too.
local keptTokens = tonumber(m[19]) or 0
local keepCost = math.max(tonumber(tok), 1)
if keep and ((maxMessages > 0 and kept + 1 >= maxMessages) or (maxTokens > 0 and keptTokens + keepCost >= maxTokens)) then
  return { 'PINNED', kept, keptTokens }
end
if not m[1] then
  -- Leftover lists under this id (a meta hash evicted under maxmemory) are not inherited by a new owner.
  call('DEL', KEYS[2], KEYS[3])
  if tonumber(lifetime) > 0 then exp = now + tonumber(lifetime) end
  call('HSET', KEYS[1], 'v', '1', 'uid', ARGV[3], 'tid', ARGV[4], 'created', now, 'exp', exp)
  m = { ARGV[3], ARGV[4], exp, false, '0', '0', false, false }
  created = true
end
local seq = (tonumber(m[6]) or 0) + 1
local len = call('RPUSH', KEYS[2], seq .. '|' .. now .. '|' .. role .. '|' .. tok .. '|' .. flags .. '|' .. ARGV[5])
local rs, ru, ra, rt = tonumber(m[13]) or 0, tonumber(m[14]) or 0, tonumber(m[15]) or 0, tonumber(m[16]) or 0
if role == 'user' then ru = ru + 1 elseif role == 'assistant' then ra = ra + 1 elseif role == 'system' then rs = rs + 1
else rt = rt + 1 end
local tokens = (tonumber(m[10]) or 0) + tonumber(tok)
if keep then
  kept = kept + 1
  keptTokens = keptTokens + keepCost
end
local count = len
local reply = { 'OK', seq, now, 0, 0, created and 1 or 0, 0, m[1], m[2] or '', 0 }
local r = 10
local keptHead = nil
local scanned = 0
-- Oldest first; the message just added is never trimmed. Kept messages met on the way go back to the head.
while scanned < len - 1 and ((maxMessages > 0 and count > maxMessages) or (maxTokens > 0 and tokens > maxTokens)) do
  local element = call('LPOP', KEYS[2])
  scanned = scanned + 1
  local er, et, ef = string.match(element, '^%d+|%d+|(%a+)|(%d+)|(%a*)|')
  if ef ~= '' then
    keptHead = keptHead or {}
    keptHead[#keptHead + 1] = element
  else
    r = r + 1
    reply[r] = element
    count = count - 1
    tokens = tokens - tonumber(et)
    if er == 'user' then ru = ru - 1 elseif er == 'assistant' then ra = ra - 1 elseif er == 'system' then rs = rs - 1
    else rt = rt - 1 end
  end
end
if keptHead then for i = #keptHead, 1, -1 do call('LPUSH', KEYS[2], keptHead[i]) end end

-- Remember this append's token with the ones before it, at least the last 15 (tokens are at most 24 characters; the oldest are cut by length).
recent = ',' .. token .. ':' .. seq .. recent
if #recent > 640 then recent = string.sub(recent, 1, (string.find(recent, ',', 600, true) or 641) - 1) end
local ttlMs = ttl
local ext = tonumber(m[7]) or 0
if ext - now > ttlMs then ttlMs = ext - now end
if exp > 0 and now + ttlMs > exp then ttlMs = exp - now end
if ttlMs < 1 then ttlMs = 1 end
local due = 0
local idx = tonumber(m[4]) or 0
if created or now - idx >= tonumber(refresh) then
  due = 1
  idx = now
end
-- The list did not exist before this RPUSH (len 1): it has no TTL yet, whatever ext says.
local renew = created or len == 1 or ext - now < ttlMs - tonumber(slack)
if renew then ext = now + ttlMs else ttlMs = ext - now end
-- ixe: when the index entry the caller gives (ttlMs + refresh) runs out; other scripts touch the index sooner
-- when they give the conversation more than that (see index_due in common.ts).
local ixe = tonumber(m[18]) or 0
if due == 1 then ixe = now + ttlMs + tonumber(refresh) end
call('HSET', KEYS[1], 'seq', seq, 'n', count, 'tokens', tokens, 'added', (tonumber(m[11]) or 0) + 1,
  'trimmed', (tonumber(m[12]) or 0) + r - 10, 'kept', kept, 'updated', now, 'r:system', rs, 'r:user', ru,
  'r:assistant', ra, 'r:tool', rt, 'rt', recent, 'idx', idx, 'ext', ext, 'ixe', ixe, 'kt', keptTokens)
if renew then
  call('PEXPIRE', KEYS[1], ttlMs)
  call('PEXPIRE', KEYS[2], ttlMs)
  if m[8] then call('PEXPIRE', KEYS[3], ttlMs) end
end
reply[4] = count
reply[5] = tokens
reply[7] = due
reply[10] = ttlMs
return reply
`,
);
