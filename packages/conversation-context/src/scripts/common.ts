import { defineScript, type RedisScript } from '@austa/redis-cluster';

/** A conversation script: @austa/redis-cluster's runner (EVALSHA, EVAL after NOSCRIPT) and a name for tests. */
export interface Script extends RedisScript {
  readonly name: string;
}

/**
 * Helpers every conversation script starts with. Every conversation script gets the same three keys, which share the
 * hash tag `{c:<id>}` (one slot, so a script touching all of them is legal on a cluster):
 *   KEYS[1] meta hash, KEYS[2] message list, KEYS[3] intent history list.
 * Time comes from Redis (TIME), never from the app host: hosts drift, and the sliding TTL, the absolute cap and the
 * message timestamps must agree with each other.
 */
const PREAMBLE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The meta hash fields every script may need, in one HMGET:
--  1 uid  2 tid  3 exp (absolute deadline ms, 0: none)  4 idx (last index update ms)  5 kept  6 seq
--  7 ext (expiry we last set, ms)  8 ix (intent list exists)  9 n  10 tokens  11 added  12 trimmed
--  13..16 message counts of the roles system, user, assistant, tool  17 rt (recent append tokens)
--  18 ixe (when the per-user index entry last given runs out, ms)  19 kt (tokens of kept messages)
-- Returns nil when the conversation does not exist. A conversation past its absolute deadline is deleted here: its
-- keys expire at that moment anyway, this only closes the last millisecond.
local function load(now)
  local m = redis.call('HMGET', KEYS[1], 'uid', 'tid', 'exp', 'idx', 'kept', 'seq', 'ext', 'ix', 'n', 'tokens',
    'added', 'trimmed', 'r:system', 'r:user', 'r:assistant', 'r:tool', 'rt', 'ixe', 'kt')
  if not m[1] then return nil end
  local exp = tonumber(m[3]) or 0
  if exp > 0 and now >= exp then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
    return nil
  end
  return m
end

local function mismatch(m, check, uid, tid)
  return check == '1' and (m[1] ~= uid or (m[2] or '') ~= tid)
end

-- For scripts whose ARGV starts with check owner, userId, tenantId: the meta fields, or nil and the refusal to return.
local function owned(now)
  local m = load(now)
  if not m then return nil, { 'NOTFOUND' } end
  if mismatch(m, ARGV[1], ARGV[2], ARGV[3]) then return nil, { 'OWNER' } end
  return m
end

-- One sliding TTL over the three keys: at least ttl from now, never shorter than the expiry already set (extendTTL
-- may have given more; the meta field ext records it, so no PTTL is needed), never past the absolute deadline.
-- The caller writes ext = now + the result into the meta hash with its other fields, then calls expire_all.
local function ttl_for(now, ttl, m)
  local want = ttl
  local ext = tonumber(m[7]) or 0
  if ext - now > want then want = ext - now end
  local exp = tonumber(m[3]) or 0
  if exp > 0 and now + want > exp then want = exp - now end
  if want < 1 then want = 1 end
  return want
end

local function expire_all(want, m)
  redis.call('PEXPIRE', KEYS[1], want)
  redis.call('PEXPIRE', KEYS[2], want)
  if m[8] then redis.call('PEXPIRE', KEYS[3], want) end
end

-- Creates the meta hash of a new conversation. Leftover message or intent lists under the same id (a meta hash
-- evicted under maxmemory while its lists were kept) are removed first, so a new owner never inherits them.
local function create(now, uid, tid, lifetime)
  redis.call('DEL', KEYS[2], KEYS[3])
  local exp = 0
  if lifetime > 0 then exp = now + lifetime end
  redis.call('HSET', KEYS[1], 'v', '1', 'uid', uid, 'tid', tid, 'created', now, 'exp', exp)
  return { uid, tid, tostring(exp), false, '0', '0', false, false }
end

-- The per-user index lives in another slot: the caller updates it after the script when this says it is due (on
-- creation, at most once per refresh interval of activity, and whenever this call gives the conversation longer
-- than the index entry last given lasts: a longer ttlSeconds must not leave the conversation unlisted, and out of
-- reach of an erasure by user). Appends idx and ixe to the fields the script writes.
local function index_due(m, now, created, refresh, fields, want)
  if created or now - (tonumber(m[4]) or 0) >= refresh or now + want > (tonumber(m[18]) or 0) then
    fields[#fields + 1] = 'idx'
    fields[#fields + 1] = now
    fields[#fields + 1] = 'ixe'
    fields[#fields + 1] = now + want + refresh
    return 1
  end
  return 0
end

-- Writes the meta fields of a call (plus its new expiry and, when due, the index time) and slides the TTL of all
-- three keys. Returns whether the caller must update the per-user index.
local function commit(m, now, created, refresh, ttl, fields)
  local want = ttl_for(now, ttl, m)
  fields[#fields + 1] = 'updated'
  fields[#fields + 1] = now
  fields[#fields + 1] = 'ext'
  fields[#fields + 1] = now + want
  local due = index_due(m, now, created, refresh, fields, want)
  redis.call('HSET', KEYS[1], unpack(fields))
  expire_all(want, m)
  return due, want
end
`;

export function script(name: string, body: string): Script {
  return Object.assign(defineScript(`${PREAMBLE}\n${body.trim()}\n`), { name });
}

/** A script that does not use the conversation preamble (the user index lives in another slot). */
export function plainScript(name: string, body: string): Script {
  return Object.assign(defineScript(`${body.trim()}\n`), { name });
}
