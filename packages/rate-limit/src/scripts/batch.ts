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

/** A node batch whose keys are not all served by the node it reached: `{ NODE_BATCH_REFUSED }`, nothing written. */
export const NODE_BATCH_REFUSED = -8;

/**
 * Several flat checks in one script call. Each check runs the very script it would run alone, as a function whose
 * parameters shadow KEYS and ARGV, so a check in a batch and a check on its own cannot behave differently; the one
 * difference is that the batch reads Redis' clock once for all its checks (a clock read was a sixth of a check's time
 * in Redis), which the batch's atomicity makes exact anyway. Each check is atomic on its own and the batch as a
 * whole; one check's error (a key of the wrong type) fails that check only. Reply: one reply per check, in order,
 * each as its flat script gives it.
 *
 * `BATCH_SCRIPT` carries the checks callers issue in one tick whose keys share one hash slot (on a standalone server,
 * any keys). KEYS: two per check, in order (block marker, state key). ARGV: per check, its script's code, its argument
 * count, then its arguments.
 *
 * `NODE_BATCH_SCRIPT` carries the checks of one tick bound for one cluster master, whatever their slots, sent to
 * that node's connection: on a cluster few of a tick's checks share a slot, and one call per check cost more client
 * CPU than a raw script call. Redis routes a call by its declared keys, which must share a slot, so this one declares
 * none: ARGV[1] is the number of checks, then their keys (two per check), then the checks as above. Redis still
 * checks every key a script touches, and raises an error for one this node does not serve (another master's slot, a
 * slot being imported, a missing key of a slot being migrated away, a cluster that is down). So before anything is
 * written, every key is read under pcall, and if one is refused the batch answers `{ NODE_BATCH_REFUSED }` and the
 * client sends each check again on its own through the cluster client, which follows MOVED and ASK. A script runs
 * atomically, so the slots cannot move between that test and the writes. Each check still touches one slot.
 */
function batchScript(keysFrom: 'KEYS' | 'ARGV'): string {
  const keys =
    keysFrom === 'KEYS'
      ? `local keys, at = KEYS, 1`
      : `local keys, at = {}, 2 * tonumber(ARGV[1]) + 2
for i = 2, at - 1 do
  local served = redis.pcall('EXISTS', ARGV[i])
  if type(served) == 'table' then return {${NODE_BATCH_REFUSED}} end
  keys[i - 1] = ARGV[i]
end`;
  return `
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
${keys}
local out = {}
for i = 1, #keys / 2 do
  local check = checks[ARGV[at]]
  local count = tonumber(ARGV[at + 1])
  local args = {}
  for j = 1, count do args[j] = ARGV[at + 1 + j] end
  at = at + 2 + count
  local ok, reply = pcall(check, {keys[2 * i - 1], keys[2 * i]}, args)
  if ok then
    out[i] = reply
  elseif type(reply) == 'table' and reply.err then
    out[i] = {${BATCH_ERROR}, reply.err}
  else
    out[i] = {${BATCH_ERROR}, tostring(reply)}
  end
end
return out
`;
}

export const BATCH_SCRIPT = batchScript('KEYS');
export const NODE_BATCH_SCRIPT = batchScript('ARGV');
