/**
 * Pieces shared by the check scripts (see each script's file for the keys it touches and why it is one script).
 *
 * Two kinds of scripts read and write the same state:
 * - one flat script per strategy for the hot path: a single limit without auto-block or count-rejected, checked and
 *   recorded (KEYS: block marker, state key; ARGV: deadline, cost, limit, window, [capacity]);
 * - the general script (`multi.ts`): several limits, auto-block, count-rejected, and read-only peeks (getStatus).
 *
 * Keys:
 *   KEYS[1]       the key's block marker        <prefix>:bl:{<key>}
 *   KEYS[2..]     one state key per limit       <prefix>:<kind>:{<key>}:<window>[:<limit>:<burst>]
 * The deadline is on Redis' clock in ms ('0' for none). A check that reaches Redis later (queued while reconnecting,
 * retried after a failover, sent just before a server paused) was already answered by the failure policy, so it
 * records nothing.
 *
 * State formats (shared by both kinds of script):
 *   fixed window             a counter (string integer) expiring at the end of its window
 *   exact sliding window     a sorted set, one member per unit, scored by Redis time in µs
 *   approximate sliding      "<window index> <current count> <previous count>", windows aligned on Redis time
 *   token and leaky bucket   one number: the Redis time (µs) at which the bucket is empty of backlog (GCRA's
 *                            theoretical arrival time; for a token bucket, the time it is full again)
 *
 * All keys carry the same hash tag, so a script runs on one shard of a cluster. Time is Redis' TIME only: the
 * clocks of application hosts never decide anything. Every key written gets its expiry in the same call.
 *
 * Replies start with { status, Redis time in ms }. Status 0 allowed, 1 rejected, 2 blocked (nothing evaluated),
 * 3 rejected and blocked by this call (auto-block), -1 past the deadline (nothing done).
 */

/**
 * Start of the general script. ARGV[1] mode ('0' check and record, '1' peek), ARGV[2] deadline, ARGV[3] cost, then
 * per limit: strategy code, limit, window µs, capacity, auto-block ms, count rejected ('1'/'0').
 */
export const PRELUDE = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local nowMs = math.floor(now / 1000)
local deadline = tonumber(ARGV[2])
if deadline > 0 and nowMs > deadline then return {-1, nowMs, 0, 0, 0} end
local blockTtl = redis.call('PTTL', KEYS[1])
if blockTtl ~= -2 then return {2, nowMs, 0, blockTtl, blockTtl} end
local peek = ARGV[1] == '1'
local cost = tonumber(ARGV[3])
local limitCount = #KEYS - 1
local EPSILON = 1e-9
local function fmt(x) return string.format('%.17g', x) end
local function toMs(us) return math.ceil(us / 1000) end
`;

/*
 * Strategy functions of the general script. Each takes
 * (key, limit, window µs, capacity, countRejected) and returns: allowed, units remaining before this request,
 * reset (µs) before it, reset (µs) after recording it, retry (µs), and a function that records the request
 * (accepted = true) or, with count-rejected, its rejection. Nothing is written until that function runs, so the
 * multi-limit script can read every limit before writing any.
 */

export const FIXED_WINDOW = `
local function fixedWindow(key, limit, window, capacity, countRejected)
  local windowMs = toMs(window)
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
    redis.call('INCRBY', key, add)
    if ttl < 0 then redis.call('PEXPIRE', key, windowMs) end
  end
  return allowed, limit - used, resetBefore, reset, retry, record
end
`;

export const SLIDING_WINDOW_EXACT = `
local function slidingExact(key, limit, window, capacity, countRejected)
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
  if used > 0 then
    local newest = redis.call('ZRANGE', key, '+inf', edge, 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')
    resetBefore = tonumber(newest[2]) + window - now
  end
  local function record(accepted)
    if not accepted and not countRejected then return end
    -- Members only need to be unique: Redis time plus the position in the log (the log only grows within one µs).
    local stamp = fmt(now)
    local batch = {}
    for i = 1, cost do
      batch[#batch + 1] = stamp
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
`;

export const SLIDING_WINDOW_APPROXIMATE = `
local function slidingApproximate(key, limit, window, capacity, countRejected)
  local index = math.floor(now / window)
  local elapsed = now - index * window
  local current, previous = 0, 0
  local state = redis.call('GET', key)
  if state then
    local i, c, p = string.match(state, '^(%d+) (%d+) (%d+)$')
    i = tonumber(i)
    if i == index then
      current, previous = tonumber(c), tonumber(p)
    elseif i == index - 1 then
      previous = tonumber(c)
    end
  end
  local estimate = previous * (window - elapsed) / window + current
  local allowed = estimate + cost <= limit + EPSILON
  local retry = 0
  if not allowed then
    if current + cost > limit then
      -- Only after this window ends, when its count becomes the previous one and fades out.
      retry = window - elapsed + math.max(0, window * (1 - (limit - cost) / current))
    else
      retry = math.max(0, window * (1 - (limit - cost - current) / previous) - elapsed)
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
    redis.call('SET', key, index .. ' ' .. current .. ' ' .. previous, 'PX', toMs(2 * window - elapsed))
  end
  return allowed, limit - estimate, resetBefore, 2 * window - elapsed, retry, record
end
`;

/** Token bucket and leaky bucket are one algorithm (GCRA) seen from two sides, with one state format. */
export const BUCKET = `
local function bucket(key, limit, window, capacity, countRejected)
  local interval = window / limit
  local tolerance = capacity * interval
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local backlog = tat - now
  local after = backlog + cost * interval
  local allowed = after <= tolerance * (1 + EPSILON)
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
    redis.call('SET', key, next, 'PX', toMs(next - now))
  end
  return allowed, (tolerance - backlog) / interval, backlog, after, retry, record
end
`;

/**
 * Start of a flat (hot path) script. ARGV[1] deadline, ARGV[2] cost, ARGV[3] limit, ARGV[4] window µs. Replies:
 * { 0, Redis time ms, remaining, reset ms } when allowed, { 1, time, remaining, reset ms, retry ms } when rejected.
 */
export const FLAT_PRELUDE = `
local time = redis.call('TIME')
local now = time[1] * 1000000 + time[2]
local nowMs = math.floor(now / 1000)
local deadline = tonumber(ARGV[1])
if deadline > 0 and nowMs > deadline then return {-1, nowMs} end
local blockTtl = redis.call('PTTL', KEYS[1])
if blockTtl ~= -2 then return {2, nowMs, 0, blockTtl, blockTtl} end
local cost = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
`;
