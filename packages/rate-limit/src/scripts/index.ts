import { createHash } from 'node:crypto';
import { BUCKET_SCRIPT } from './bucket.js';
import { FIXED_WINDOW_SCRIPT } from './fixed-window.js';
import { MULTI_LIMIT_SCRIPT } from './multi.js';
import { SLIDING_WINDOW_APPROXIMATE_SCRIPT } from './sliding-window-approximate.js';
import { SLIDING_WINDOW_EXACT_SCRIPT } from './sliding-window-exact.js';

export type ScriptVariant =
  | 'fixed-window'
  | 'sliding-window:exact'
  | 'sliding-window:approximate'
  | 'token-bucket'
  | 'leaky-bucket'
  | 'multi';

export const SCRIPTS: Record<ScriptVariant, string> = {
  'fixed-window': FIXED_WINDOW_SCRIPT,
  'sliding-window:exact': SLIDING_WINDOW_EXACT_SCRIPT,
  'sliding-window:approximate': SLIDING_WINDOW_APPROXIMATE_SCRIPT,
  'token-bucket': BUCKET_SCRIPT,
  'leaky-bucket': BUCKET_SCRIPT,
  multi: MULTI_LIMIT_SCRIPT,
};

/**
 * The ioredis command name of each script. It carries the script's hash, so two versions of this package sharing
 * one client never overwrite each other's scripts.
 */
export const COMMANDS = Object.fromEntries(
  Object.entries(SCRIPTS).map(([variant, lua]) => [
    variant,
    `austaRateLimit_${createHash('sha1').update(lua).digest('hex').slice(0, 12)}`,
  ]),
) as Record<ScriptVariant, string>;
