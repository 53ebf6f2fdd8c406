import { BUCKET, FIXED_WINDOW, PRELUDE, SLIDING_WINDOW_APPROXIMATE, SLIDING_WINDOW_EXACT } from './common.js';

/**
 * The general check script: several limits of one key checked together (e.g. 10 per second AND 1,000 per hour, of
 * any strategies), auto-block, count-rejected, and read-only peeks (getStatus). Single plain limits take the flat
 * scripts instead; both read and write the same state.
 *
 * Keys: KEYS[1] the block marker, KEYS[2..n+1] one state key per limit; all share the hash tag `{<key>}`. One
 * script, so every limit is read before any is written: the request is recorded in all of them or in none, and no
 * other check of the key runs in between. An automatic block is written in the same step as the rejection.
 *
 * Arguments: see `common.ts`; each limit's group starts with its strategy code (1 fixed window, 2 exact sliding
 * window, 3 approximate sliding window, 4 token bucket, 5 leaky bucket).
 * Reply: { status, Redis time ms, block ms, then per limit: allowed (1/0), remaining, reset ms, retry ms }.
 */
export const MULTI_LIMIT_SCRIPT =
  PRELUDE +
  FIXED_WINDOW +
  SLIDING_WINDOW_EXACT +
  SLIDING_WINDOW_APPROXIMATE +
  BUCKET +
  `
local STRATEGIES = {
  ['1'] = fixedWindow, ['2'] = slidingExact, ['3'] = slidingApproximate, ['4'] = bucket, ['5'] = bucket,
}
local outcomes = {}
local accepted = true
local blockMs = 0
for i = 1, limitCount do
  local base = 4 + (i - 1) * 6
  local strategy = STRATEGIES[ARGV[base]]
  if not strategy then return redis.error_reply('ERR unknown rate limit strategy code ' .. tostring(ARGV[base])) end
  local o = {}
  o.allowed, o.remaining, o.resetBefore, o.resetAfter, o.retry, o.record = strategy(KEYS[i + 1],
    tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]), ARGV[base + 5] == '1')
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
if not accepted then reply[1] = 1 end
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
  reply[1] = 3
  reply[3] = blockMs
end
return reply
`;
