import { RateLimitArgumentError, RateLimitConfigError } from './errors.js';

/** Longest key accepted, in UTF-8 bytes: room for `route:user:<uuid>` and e-mail addresses, far below abuse. */
export const MAX_KEY_BYTES = 512;

// Printable ASCII without `%`, `{` and `}`: the common case (ids, IPs, e-mail addresses) needs one test and no
// encoding.
const PLAIN_KEY = /^[\x20-\x24\x26-\x7a|~]{1,512}$/;
/** C0 and C1 control characters and DEL: they break logs and tooling and are never part of a real id. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return true;
  }
  return false;
}
// `{` and `}` would let a key choose its own hash tag, and `%` is the escape character itself.
const TAG_SPECIAL = /[%{}]/;
const TAG_SPECIAL_GLOBAL = /[%{}]/g;
const ESCAPES: Record<string, string> = { '%': '%25', '{': '%7B', '}': '%7D' };

/**
 * Checks a caller's key and turns it into the text placed inside the hash tag `{…}` of every key of that caller.
 * `{`, `}` and `%` are percent-encoded, so a key can neither pick another hash tag (and slot) nor collide with
 * another key's encoding: `a{b` becomes `a%7Bb`, and a literal `a%7Bb` becomes `a%257Bb`.
 */
export function encodeKey(key: unknown): string {
  if (typeof key === 'string' && PLAIN_KEY.test(key)) return key;
  checkUnusualKey(key);
  const text = key as string;
  return TAG_SPECIAL.test(text) ? text.replace(TAG_SPECIAL_GLOBAL, (c) => ESCAPES[c] as string) : text;
}

function checkUnusualKey(key: unknown): void {
  if (typeof key !== 'string') {
    throw new RateLimitArgumentError(
      'E_INVALID_KEY',
      `A rate limit key must be a string (got ${typeOf(key)}).`,
    );
  }
  if (key.length === 0) {
    throw new RateLimitArgumentError(
      'E_INVALID_KEY',
      'A rate limit key must not be empty: pass the user id, API key or IP address the limit applies to.',
    );
  }
  if (hasControlCharacter(key)) {
    throw new RateLimitArgumentError(
      'E_INVALID_KEY',
      'A rate limit key must not contain control characters (newlines, tabs, NUL…).',
    );
  }
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new RateLimitArgumentError(
      'E_INVALID_KEY',
      `A rate limit key must be at most ${MAX_KEY_BYTES} bytes (got ${Buffer.byteLength(key)}); hash long keys first.`,
    );
  }
}

export function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' && Number.isNaN(value)) return 'NaN';
  return typeof value === 'string' ? `"${value.slice(0, 40)}"` : typeof value;
}

const PREFIX = /^[A-Za-z0-9_.:-]{1,64}$/;

/** The key prefix is set by the developer, not by users, but it ends up in SCAN patterns and hash slots too. */
export function validatePrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || !PREFIX.test(prefix) || prefix.endsWith(':')) {
    throw new RateLimitConfigError(
      `prefix must be 1-64 characters of A-Z, a-z, 0-9, "_", ".", ":" or "-", not ending in ":" (got ${typeOf(prefix)}).`,
    );
  }
  return prefix;
}

/** Key kinds, the `<kind>` of `<prefix>:<kind>:{<key>}:<limit>`. Short: they are in every key. */
export const KIND = {
  block: 'bl',
  'fixed-window': 'fw',
  'sliding-window:exact': 'swe',
  'sliding-window:approximate': 'swa',
  'token-bucket': 'tb',
  'leaky-bucket': 'lb',
} as const;
