import { script } from './common.js';

/**
 * getContext / getStats: the meta hash (without the summary text, which only getSummary needs), the remaining TTL
 * and, for getContext, the intent history, in one step.
 *
 * KEYS: meta, messages, intents (one slot). ARGV: 1 check owner, 2 userId, 3 tenantId, 4 with intents ('1'/'0').
 * Reply: {'OK', pttl, fieldCount, field, value, ..., intents...} | {'NOTFOUND'} | {'OWNER'}
 */
export const INSPECT = script(
  'inspect',
  `
local m = load(now_ms())
if not m then return { 'NOTFOUND' } end
if mismatch(m, ARGV[1], ARGV[2], ARGV[3]) then return { 'OWNER' } end
local fields = redis.call('HGETALL', KEYS[1])
local reply = { 'OK', redis.call('PTTL', KEYS[1]), 0 }
for i = 1, #fields, 2 do
  if fields[i] ~= 'sum' then
    reply[#reply + 1] = fields[i]
    reply[#reply + 1] = fields[i + 1]
  end
end
reply[3] = #reply - 3
if ARGV[4] == '1' then
  local intents = redis.call('LRANGE', KEYS[3], 0, -1)
  for i = 1, #intents do reply[#reply + 1] = intents[i] end
end
return reply
`,
);
