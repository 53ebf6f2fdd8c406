/**
 * The check script: decides one request against one or more limits of one key and records it.
 *
 * Keys (all carry the same hash tag `{<key>}`, so the script runs on one shard of a cluster):
 *   KEYS[1]        the key's block marker   <prefix>:bl:{<key>}
 *   KEYS[2..n+1]   one state key per limit  <prefix>:<kind>:{<key>}:<window>[:<limit>:<burst>]
 *
 * Why one script: Redis runs it atomically, so no two checks of a key interleave (1,000 concurrent checks against
 * a limit of 100 allow exactly 100), the block is read in the same step as the counters, an automatic block is
 * written in the same step as the rejection, and every limit is read before any is written, so a request is
 * recorded in all of its limits or in none.
 *
 * Time is Redis' `TIME` only: the clocks of application hosts never decide anything.
 *
 * Arguments:
 *   ARGV[1]  mode: '0' check and record, '1' peek (read only; `getStatus`)
 *   ARGV[2]  deadline on Redis' clock, in ms ('0': none). A check that reaches Redis later than this (queued while
 *            reconnecting, retried after a failover, sent before a server paused) was already answered by the
 *            failure policy, so it records nothing.
 *   ARGV[3]  cost
 *   then six per limit: strategy code, limit, window (µs), capacity, auto-block (ms, '0' off), count rejected ('1')
 *   Strategy codes: 1 fixed window, 2 exact sliding window, 3 approximate sliding window, 4 token bucket,
 *   5 leaky bucket (GCRA).
 *
 * Reply: { status, Redis time (ms), block ttl (ms), then per limit: allowed (1/0), remaining, reset (ms), retry (ms) }
 *   status 0: evaluated; 1: the key is blocked (no limit evaluated); 2: evaluated, rejected, and blocked by this
 *   call; -1: past the deadline, nothing done.
 *
 * Every key written gets an expiry in the same call: a state key lives exactly as long as it matters.
 */
export const CHECK_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local nowMs = math.floor(now / 1000)
local deadline = tonumber(ARGV[2])
if deadline > 0 and nowMs > deadline then return {-1, nowMs, 0} end

local blockTtl = redis.call('PTTL', KEYS[1])
if blockTtl ~= -2 then return {1, nowMs, blockTtl} end

local peek = ARGV[1] == '1'
local cost = tonumber(ARGV[3])
local limitCount = #KEYS - 1
local EPSILON = 1e-9

local function fmt(x) return string.format('%.17g', x) end
local function toMs(us) return math.ceil(us / 1000) end

-- Each strategy returns: allowed, remaining before this request, reset (µs) before it, reset (µs) after recording
-- it, retry (µs), and a function that records the request (accepted) or, with count-rejected, its rejection.

-- Fixed window: a counter that expires at the end of the window its first request opened.
local function fixedWindow(key, limit, window, countRejected)
  local used = tonumber(redis.call('GET', key) or '0')
  local reset = window
  local ttl = -2
  if used > 0 then
    ttl = redis.call('PTTL', key)
    if ttl > 0 then reset = ttl * 1000 end
  end
  local allowed = used + cost <= limit
  local retry = 0
  if not allowed then retry = reset end
  local resetBefore = 0
  if used > 0 then resetBefore = reset end
  local function record(accepted)
    local add = cost
    if not accepted then
      if not countRejected then return end
      add = math.min(cost, limit - used)
      if add <= 0 then return end
    end
    if used == 0 then
      redis.call('SET', key, add, 'PX', toMs(window))
    else
      redis.call('INCRBY', key, add)
      if ttl < 0 then redis.call('PEXPIRE', key, toMs(window)) end
    end
  end
  return allowed, limit - used, resetBefore, reset, retry, record
end

-- Exact sliding window: a sorted set with one entry per unit used, scored by its Redis time in µs.
local function slidingExact(key, limit, window, countRejected)
  local edge = '(' .. fmt(now - window)
  local used
  if peek then
    used = redis.call('ZCOUNT', key, edge, '+inf')
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now - window))
    used = redis.call('ZCARD', key)
  end
  local allowed = used + cost <= limit
  local retry = 0
  if not allowed then
    -- The request fits once the oldest (used + cost - limit) entries have left the window.
    local entry = redis.call('ZRANGE', key, edge, '+inf', 'BYSCORE', 'LIMIT', used + cost - limit - 1, 1, 'WITHSCORES')
    retry = tonumber(entry[2]) + window - now
  end
  local resetBefore = 0
  if used > 0 and (peek or not allowed or limitCount > 1) then
    local newest = redis.call('ZRANGE', key, '+inf', edge, 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')
    resetBefore = tonumber(newest[2]) + window - now
  end
  local function record(accepted)
    if not accepted and not countRejected then return end
    -- Members are unique: one Redis time can repeat across calls, but the log only grows while it does.
    local stamp = fmt(now)
    local batch = {}
    for i = 1, cost do
      batch[#batch + 1] = now
      batch[#batch + 1] = stamp .. '-' .. (used + i)
      if #batch >= 1000 or i == cost then
        redis.call('ZADD', key, unpack(batch))
        batch = {}
      end
    end
    -- Rejections counted in the log never push it past the limit: the oldest entries make room.
    if not accepted then redis.call('ZREMRANGEBYRANK', key, 0, -(limit + 1)) end
    redis.call('PEXPIRE', key, toMs(window))
  end
  return allowed, limit - used, resetBefore, window, retry, record
end

-- Approximate sliding window: the current window's count plus the previous window's, weighted by how much of it
-- the sliding window still overlaps. State: "<window start µs> <current count> <previous count>".
local function slidingApproximate(key, limit, window, countRejected)
  local state = redis.call('GET', key)
  local start, current, previous = now, 0, 0
  if state then
    local a, b, c = string.match(state, '^(%S+) (%S+) (%S+)$')
    start, current, previous = tonumber(a), tonumber(b), tonumber(c)
  end
  local elapsed = now - start
  if elapsed >= window then
    local passed = math.floor(elapsed / window)
    if passed == 1 then previous = current else previous = 0 end
    current = 0
    start = start + passed * window
    elapsed = now - start
  elseif elapsed < 0 then
    -- Redis' clock went back (a failover to a host whose clock is behind): treat now as the window's start.
    elapsed = 0
  end
  local estimate = previous * (window - elapsed) / window + current
  local allowed = estimate + cost <= limit + EPSILON
  local retry = 0
  if not allowed then
    if current + cost > limit then
      -- Only after this window ends, when its count becomes the previous one and fades out.
      local fade = window * (1 - (limit - cost) / current)
      if fade < 0 then fade = 0 end
      retry = window - elapsed + fade
    else
      retry = window * (1 - (limit - cost - current) / previous) - elapsed
      if retry < 0 then retry = 0 end
    end
  end
  local resetBefore = 0
  if current > 0 then resetBefore = 2 * window - elapsed elseif previous > 0 then resetBefore = window - elapsed end
  local function record(accepted)
    if accepted then
      current = current + cost
    elseif countRejected then
      current = math.min(current + cost, limit)
    else
      return
    end
    redis.call('SET', key, fmt(start) .. ' ' .. fmt(current) .. ' ' .. fmt(previous), 'PX', toMs(2 * window - elapsed))
  end
  return allowed, limit - estimate, resetBefore, 2 * window - elapsed, retry, record
end

-- Token bucket with continuous refill: "<tokens> <Redis time µs of that count>". A missing key is a full bucket,
-- so the key expires exactly when the bucket would be full again.
local function tokenBucket(key, limit, window, capacity, countRejected)
  local state = redis.call('GET', key)
  local tokens, stamp = capacity, now
  if state then
    local a, b = string.match(state, '^(%S+) (%S+)$')
    tokens, stamp = tonumber(a), tonumber(b)
    if now > stamp then tokens = math.min(capacity, tokens + (now - stamp) * limit / window) end
  end
  -- A Redis clock that went back refills nothing until it passes the stamp again.
  local lag = 0
  if stamp > now then lag = stamp - now else stamp = now end
  local allowed = tokens + EPSILON >= cost
  local retry = 0
  if not allowed then retry = lag + (cost - tokens) * window / limit end
  local function record(accepted)
    local left
    if accepted then
      left = math.max(0, tokens - cost)
    elseif countRejected then
      left = math.max(0, tokens - cost)
    else
      return
    end
    redis.call('SET', key, fmt(left) .. ' ' .. fmt(stamp), 'PX', toMs(lag + (capacity - left) * window / limit))
  end
  return allowed, tokens, lag + (capacity - tokens) * window / limit,
    lag + (capacity - math.max(0, tokens - cost)) * window / limit, retry, record
end

-- Leaky bucket as GCRA: one number, the theoretical arrival time (µs) of the next unit. Each unit moves it on by
-- one emission interval (window / limit); a request fits while it stays within capacity intervals of now.
local function leakyBucket(key, limit, window, capacity, countRejected)
  local interval = window / limit
  local tolerance = capacity * interval
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local backlog = tat - now
  local after = backlog + cost * interval
  local allowed = after <= tolerance + EPSILON * tolerance
  local retry = 0
  if not allowed then retry = after - tolerance end
  local function record(accepted)
    local next
    if accepted then
      next = tat + cost * interval
    elseif countRejected then
      next = math.min(tat + cost * interval, now + tolerance)
    else
      return
    end
    redis.call('SET', key, fmt(next), 'PX', toMs(next - now))
  end
  return allowed, (tolerance - backlog) / interval, backlog, after, retry, record
end

local outcomes = {}
local accepted = true
local blockMs = 0
for i = 1, limitCount do
  local base = 4 + (i - 1) * 6
  local code = ARGV[base]
  local key = KEYS[i + 1]
  local limit = tonumber(ARGV[base + 1])
  local window = tonumber(ARGV[base + 2])
  local countRejected = ARGV[base + 5] == '1'
  local o = {}
  if code == '1' then
    o.allowed, o.remaining, o.resetBefore, o.resetAfter, o.retry, o.record = fixedWindow(key, limit, window, countRejected)
  elseif code == '3' then
    o.allowed, o.remaining, o.resetBefore, o.resetAfter, o.retry, o.record =
      slidingApproximate(key, limit, window, countRejected)
  elseif code == '2' then
    o.allowed, o.remaining, o.resetBefore, o.resetAfter, o.retry, o.record = slidingExact(key, limit, window, countRejected)
  elseif code == '4' then
    o.allowed, o.remaining, o.resetBefore, o.resetAfter, o.retry, o.record =
      tokenBucket(key, limit, window, tonumber(ARGV[base + 3]), countRejected)
  elseif code == '5' then
    o.allowed, o.remaining, o.resetBefore, o.resetAfter, o.retry, o.record =
      leakyBucket(key, limit, window, tonumber(ARGV[base + 3]), countRejected)
  else
    return redis.error_reply('ERR unknown rate limit strategy code ' .. tostring(code))
  end
  if not o.allowed then
    accepted = false
    local block = tonumber(ARGV[base + 4])
    if block > blockMs then blockMs = block end
  end
  outcomes[i] = o
end

local recorded = accepted and not peek
if not peek then
  for i = 1, limitCount do outcomes[i].record(accepted) end
end

-- Integers for the reply: remaining rounded down, durations rounded up to whole milliseconds.
local reply = {0, nowMs, 0}
for i = 1, limitCount do
  local o = outcomes[i]
  local remaining = o.remaining
  local reset = o.resetBefore
  if recorded then
    remaining = remaining - cost
    reset = o.resetAfter
  end
  remaining = math.floor(remaining + EPSILON)
  if remaining < 0 then remaining = 0 end
  local at = 4 + (i - 1) * 4
  if o.allowed then
    reply[at] = 1
    reply[at + 3] = 0
  else
    reply[at] = 0
    reply[at + 3] = toMs(o.retry)
  end
  reply[at + 1] = remaining
  reply[at + 2] = toMs(reset)
end

if not accepted and not peek and blockMs > 0 then
  redis.call('SET', KEYS[1], '1', 'PX', blockMs)
  reply[1] = 2
  reply[3] = blockMs
end
return reply
`;
