import { script } from './common.js';

/**
 * setSummary: store a new summary version that says which message it covers up to, optionally only if the current
 * version is the one the summarizer started from (two summarizers never silently overwrite each other).
 *
 * KEYS: meta, messages, intents (one slot).
 * ARGV: 1 check owner, 2 userId, 3 tenantId, 4 ttlMs, 5 expected version ('' for any), 6 up-to seq,
 *       7 indexRefreshMs, 8 encoded summary.
 * Reply: {'OK', version, now, indexDue, userId, tenantId, ttlMs} | {'NOTFOUND'} | {'OWNER'} | {'CONFLICT', version}
 *        | {'UPTO', lastSeq}
 */
export const SET_SUMMARY = script(
  'set_summary',
  `
local now = now_ms()
local m, refused = owned(now)
if refused then return refused end
local version = tonumber(redis.call('HGET', KEYS[1], 'sumV') or '0')
if ARGV[5] ~= '' and tonumber(ARGV[5]) ~= version then return { 'CONFLICT', version } end
local last = tonumber(m[6]) or 0
if tonumber(ARGV[6]) > last then return { 'UPTO', last } end
version = version + 1
local due, want = commit(m, now, false, tonumber(ARGV[7]), tonumber(ARGV[4]),
  { 'sum', ARGV[8], 'sumV', version, 'sumUpTo', ARGV[6], 'sumAt', now })
return { 'OK', version, now, due, m[1], m[2] or '', want }
`,
);
