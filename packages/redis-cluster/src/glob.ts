import { RedisArgumentError } from './errors.js';

const GLOB_SPECIAL = /[*?[\]\\]/g;

/**
 * Escapes the glob characters `* ? [ ] \` in a user-supplied part of a SCAN pattern, so a user id like `*` or
 * `a[b` matches only itself and never another user's keys.
 * @example scan(`austa:session:{u:${escapeGlob(userId)}}:*`)
 */
export function escapeGlob(part: string): string {
  if (typeof part !== 'string') throw new RedisArgumentError('escapeGlob expects a string.');
  return part.replace(GLOB_SPECIAL, '\\$&');
}
