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
 * ARGV: deadline, cost, limit, window in ms (the only script that takes ms: it goes straight to PEXPIRE).
 * Replies: see FLAT_PRELUDE in `common.ts`.
 */
export const FIXED_WINDOW_SCRIPT = `
local time = redis.call('TIME')
local nowMs = time[1] * 1000 + math.floor(time[2] / 1000)
local deadline = tonumber(ARGV[1])
if deadline > 0 and nowMs > deadline then return {-1, nowMs} end
local blockTtl = redis.call('PTTL', KEYS[1])
if blockTtl ~= -2 then return {2, nowMs, 0, blockTtl, blockTtl} end
local used = redis.call('INCRBY', KEYS[2], ARGV[2])
local reset = redis.call('PTTL', KEYS[2])
if reset < 0 then
  -- INCRBY just opened a new window (or, never by this package, a counter lost its expiry).
  reset = tonumber(ARGV[4])
  redis.call('PEXPIRE', KEYS[2], reset)
end
local limit = tonumber(ARGV[3])
if used <= limit then return {0, nowMs, limit - used, reset} end
redis.call('DECRBY', KEYS[2], ARGV[2])
return {1, nowMs, math.max(0, limit - used + tonumber(ARGV[2])), reset, reset}
`;
