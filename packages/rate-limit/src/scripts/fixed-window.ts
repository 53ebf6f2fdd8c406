/**
 * Fixed window, single limit, hot path: a counter that expires at the end of the window its first request opened.
 *
 * Keys: KEYS[1] the block marker, KEYS[2] the counter; both share the hash tag `{<key>}`. One script, so the block
 * check, the count and the expiry happen in one atomic step: no two checks of a key interleave, and a counter never
 * exists without its expiry.
 *
 * It does what the least possible Redis fixed window does (INCRBY, PTTL, and PEXPIRE when a window opens) plus the
 * clock and the block: an allowed check costs four Redis calls (TIME, PTTL of the block marker, INCRBY, PTTL). A
 * rejected request is taken back out (DECRBY) in the same script, so no other client ever sees it counted.
 *
 * ARGV: deadline (Redis ms, always set), cost, limit, window in ms (the only script that takes ms: it goes straight to
 * PEXPIRE).
 * Replies: see FLAT_PRELUDE in `common.ts`.
 */
export const FIXED_WINDOW_SCRIPT = `
local time = redis.call('TIME')
-- A float: Redis turns Lua numbers into integers by dropping the fraction, so the reply carries whole ms.
local nowMs = time[1] * 1000 + time[2] / 1000
if nowMs > tonumber(ARGV[1]) then return {-1, nowMs} end
local blockTtl = redis.call('PTTL', KEYS[1])
if blockTtl ~= -2 then return {2, nowMs, 0, blockTtl, blockTtl} end
local used = redis.call('INCRBY', KEYS[2], ARGV[2])
local reset = redis.call('PTTL', KEYS[2])
if reset < 0 then
  -- INCRBY just opened a new window (or, never by this package, a counter lost its expiry).
  reset = tonumber(ARGV[4])
  redis.call('PEXPIRE', KEYS[2], reset)
end
local left = ARGV[3] - used
if left >= 0 then return {0, nowMs, left, reset} end
redis.call('DECRBY', KEYS[2], ARGV[2])
left = left + ARGV[2]
if left < 0 then left = 0 end
return {1, nowMs, left, reset, reset}
`;
