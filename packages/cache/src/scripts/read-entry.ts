import { LuaScript } from '../redis-io.js';

/**
 * Reads an entry and its remaining time to live in one step.
 * KEYS[1]: the entry. Returns { value or nil, PTTL }.
 * Atomic so that the PTTL belongs to the value returned (a SET between a GET and a PTTL would pair an old value with
 * a new TTL). Used when freshness matters: a grace period (fresh means PTTL above the grace) or an L1 that must not
 * keep a value longer than Redis does. Without either, the cache sends a plain GET.
 */
export const readEntry = new LuaScript(
  'read-entry',
  `return { redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]) }`,
);
