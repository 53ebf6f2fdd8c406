import { FLAT_PRELUDE } from './common.js';

/**
 * Approximate sliding window, single limit, hot path: the current window's count plus the previous window's,
 * weighted by how much of it the sliding window still overlaps. Windows are aligned on Redis time; the state is
 * one short string "<window index> <current count> <previous count>", expiring when both windows are over.
 *
 * Keys: KEYS[1] the block marker, KEYS[2] the state; both share the hash tag `{<key>}`. One script: the block check,
 * the read and the write happen in one atomic step, so no two checks of a key interleave.
 * ARGV: deadline, cost, limit, window µs. Replies: see FLAT_PRELUDE.
 */
export const SLIDING_WINDOW_APPROXIMATE_SCRIPT = `${FLAT_PRELUDE}
local index = math.floor(now / window)
local elapsed = now - index * window
local current, previous = 0, 0
local state = redis.call('GET', KEYS[2])
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
if estimate + cost <= limit + 1e-9 then
  local ttl = math.ceil((2 * window - elapsed) / 1000)
  redis.call('SET', KEYS[2], index .. ' ' .. (current + cost) .. ' ' .. previous, 'PX', ttl)
  return {0, nowMs, math.max(0, math.floor(limit - estimate - cost + 1e-9)), ttl}
end
local retry
if current + cost > limit then
  -- Only after this window ends, when its count becomes the previous one and fades out.
  retry = window - elapsed + math.max(0, window * (1 - (limit - cost) / current))
else
  retry = math.max(0, window * (1 - (limit - cost - current) / previous) - elapsed)
end
local reset = window - elapsed
if current > 0 then reset = 2 * window - elapsed end
return {1, nowMs, math.max(0, math.floor(limit - estimate + 1e-9)), math.ceil(reset / 1000), math.ceil(retry / 1000)}
`;
