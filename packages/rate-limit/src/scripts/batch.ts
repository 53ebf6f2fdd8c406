import { BUCKET_SCRIPT } from './bucket.js';
import { FIXED_WINDOW_SCRIPT } from './fixed-window.js';
import { SLIDING_WINDOW_APPROXIMATE_SCRIPT } from './sliding-window-approximate.js';
import { SLIDING_WINDOW_EXACT_SCRIPT } from './sliding-window-exact.js';

/** The flat scripts a batch can run, by the one-letter code a batch names them with. */
export const BATCH_CODES = {
  'fixed-window': 'f',
  'sliding-window:exact': 'e',
  'sliding-window:approximate': 'a',
  'token-bucket': 'b',
  'leaky-bucket': 'b',
} as const;

const CLOCK_READ = "redis.call('TIME')";

/** A flat script as the body of a batch function: it reads the batch's one clock reading instead of its own. */
function batched(script: string): string {
  if (script.split(CLOCK_READ).length !== 2) throw new Error('A flat script must read TIME exactly once.');
  return script.replace(CLOCK_READ, 'TIME');
}

/** A check in a batch that failed inside Redis: `{ BATCH_ERROR, message }` in place of its reply. */
export const BATCH_ERROR = -9;

/**
 * Several flat checks in one script call: the checks callers issue in one tick, whose keys share one hash slot (on a
 * standalone server, any keys). Each check runs the very script it would run alone, as a function whose parameters
 * shadow KEYS and ARGV, so a check in a batch and a check on its own cannot behave differently; the one difference is
 * that the batch reads Redis' clock once for all its checks (a clock read was a sixth of a check's time in Redis),
 * which the batch's atomicity makes exact anyway. Each check is atomic on its own and the batch as a whole; one
 * check's error (a key of the wrong type) fails that check only.
 *
 * KEYS: two per check, in order (block marker, state key). ARGV: per check, its script's code, its argument count,
 * then its arguments. Reply: one reply per check, in order, each as its flat script gives it.
 */
export const BATCH_SCRIPT = `
local TIME = redis.call('TIME')
local checks = {}
checks['f'] = function(KEYS, ARGV)
${batched(FIXED_WINDOW_SCRIPT)}
end
checks['e'] = function(KEYS, ARGV)
${batched(SLIDING_WINDOW_EXACT_SCRIPT)}
end
checks['a'] = function(KEYS, ARGV)
${batched(SLIDING_WINDOW_APPROXIMATE_SCRIPT)}
end
checks['b'] = function(KEYS, ARGV)
${batched(BUCKET_SCRIPT)}
end
local out = {}
local at = 1
for i = 1, #KEYS / 2 do
  local check = checks[ARGV[at]]
  local count = tonumber(ARGV[at + 1])
  local args = {}
  for j = 1, count do args[j] = ARGV[at + 1 + j] end
  at = at + 2 + count
  local ok, reply = pcall(check, {KEYS[2 * i - 1], KEYS[2 * i]}, args)
  if ok then
    out[i] = reply
  elseif type(reply) == 'table' and reply.err then
    out[i] = {-9, reply.err}
  else
    out[i] = {-9, tostring(reply)}
  end
end
return out
`;
