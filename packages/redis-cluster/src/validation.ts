import { RedisArgumentError } from './errors.js';

/** Longest channel, pattern or SCAN pattern accepted, in bytes: far above any real name, far below abuse. */
export const MAX_NAME_BYTES = 1024;

/** Throws `E_INVALID_ARGUMENT` unless `value` is a non-empty string of at most `MAX_NAME_BYTES` bytes. */
export function assertName(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || Buffer.byteLength(value) > MAX_NAME_BYTES) {
    throw new RedisArgumentError(`${what} must be a non-empty string of at most ${MAX_NAME_BYTES} bytes.`);
  }
}
