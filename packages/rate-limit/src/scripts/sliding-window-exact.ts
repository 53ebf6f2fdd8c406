import { FLAT_PRELUDE } from './common.js';

/**
 * Exact sliding window, single limit, hot path: a sorted set with one member per unit used in the window, scored by
 * its Redis time in µs, trimmed on every check. Memory grows with the limit; the count is exact.
 *
 * Keys: KEYS[1] the block marker, KEYS[2] the log; both share the hash tag `{<key>}`. One script: the block check,
 * the trim, the count and the insert happen in one atomic step, so no two checks of a key interleave.
 * ARGV: deadline, cost, limit, window µs. Replies: see FLAT_PRELUDE.
 */
export const SLIDING_WINDOW_EXACT_SCRIPT = `${FLAT_PRELUDE}
local key = KEYS[2]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local used = redis.call('ZCARD', key)
if used + cost <= limit then
  -- The time in µs as digits, without number formatting; members only need to be unique (the log only grows
  -- within one µs, so time plus position is).
  local stamp = time[1] .. string.rep('0', 6 - #time[2]) .. time[2]
  if cost == 1 then
    redis.call('ZADD', key, stamp, stamp .. '-' .. (used + 1))
  else
    local batch = {}
    for i = 1, cost do
      batch[#batch + 1] = stamp
      batch[#batch + 1] = stamp .. '-' .. (used + i)
      if #batch >= 1000 or i == cost then
        redis.call('ZADD', key, unpack(batch))
        batch = {}
      end
    end
  end
  local windowMs = math.ceil(window / 1000)
  redis.call('PEXPIRE', key, windowMs)
  return {0, nowMs, limit - used - cost, windowMs}
end
-- The request fits once the oldest (used + cost - limit) entries have left the window.
local rank = used + cost - limit - 1
local oldest = redis.call('ZRANGE', key, rank, rank, 'WITHSCORES')
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
return {1, nowMs, math.max(0, limit - used), math.ceil((newest[2] + window - now) / 1000),
  math.ceil((oldest[2] + window - now) / 1000)}
`;
