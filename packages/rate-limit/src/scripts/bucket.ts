import { FLAT_PRELUDE } from './common.js';

/**
 * Token bucket and leaky bucket (GCRA), single limit, hot path. The two are one algorithm seen from two sides: the
 * state is one number, the Redis time (µs) at which the bucket has drained its backlog (GCRA's theoretical arrival
 * time; for a token bucket, the time it is full again). Each unit moves it on by one emission interval
 * (window / limit); a request fits while the backlog stays within `capacity` intervals. Refill is continuous and
 * exact, and a missing key is an empty backlog (a full bucket), so the key expires exactly when that is reached.
 *
 * Keys: KEYS[1] the block marker, KEYS[2] the state; both share the hash tag `{<key>}`. One script: the block check,
 * the read and the write happen in one atomic step, so no two checks of a key interleave.
 * ARGV: deadline, cost, limit, window µs, capacity. Replies: see FLAT_PRELUDE.
 */
export const BUCKET_SCRIPT = `${FLAT_PRELUDE}
local interval = window / limit
local tolerance = tonumber(ARGV[5]) * interval
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tat < now then tat = now end
local after = tat - now + cost * interval
if after <= tolerance * (1 + 1e-9) then
  local wait = math.ceil(after / 1000)
  redis.call('SET', KEYS[2], tat + cost * interval, 'PX', wait)
  return {0, nowMs, math.max(0, math.floor((tolerance - after) / interval + 1e-9)), wait}
end
return {1, nowMs, math.max(0, math.floor((tolerance - tat + now) / interval + 1e-9)),
  math.ceil((tat - now) / 1000), math.ceil((after - tolerance) / 1000)}
`;
