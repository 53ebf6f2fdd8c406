import { LuaScript } from '../redis-io.js';

/**
 * Releases the getOrSet lock of an entry if this caller still holds it. KEYS[1]: the lock key. ARGV[1]: the
 * caller's random token. A lease that ran out may already belong to another process: deleting without the token
 * check would let a third one in while the second still computes.
 */
export const releaseLock = new LuaScript(
  'release-lock',
  `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
);

/**
 * Renews the lease of a held lock. KEYS[1]: the lock key. ARGV[1]: token, ARGV[2]: lease in ms. Returns 1 when
 * renewed, 0 when the lock was lost (expired and taken, or deleted by clear()).
 */
export const renewLock = new LuaScript(
  'renew-lock',
  `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`,
);
