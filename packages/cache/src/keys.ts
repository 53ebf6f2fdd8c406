import { escapeGlob } from '@austa/redis-cluster';
import { CacheConfigError, CacheInputError } from './errors.js';

/*
 * Key layout (see README "Keys in Redis"): every key of a cache starts with `<prefix>:<namespace>:`, then a kind.
 *   e:<key>               an entry; no hash tag, so entries spread over every slot
 *   l:<key>               the distributed lock of an entry's getOrSet
 *   t:{<tag>}:v           a tag's version counter
 *   t:{<tag>}:k           the set of entry keys written under the tag (for the background sweep)
 *   t:{<tag>}:s           keys waiting for the sweep after an invalidation
 * The three keys of a tag share the hash tag `{<tag>}`, so the Lua scripts that touch them run on one slot.
 *
 * User keys and tags are percent-encoded for `%`, `{` and `}` only: a user key can then never contain a hash tag
 * (it cannot pick its slot, nor land in a tag's slot on purpose), the encoding is injective (two keys never share a
 * Redis key), and the common key without those characters is used as is.
 */

// C0 controls, DEL and C1 controls, built from code points (a literal range trips the control-character lint).
const CONTROL = new RegExp(
  `[${String.fromCharCode(0)}-${String.fromCharCode(0x1f)}${String.fromCharCode(0x7f)}-${String.fromCharCode(0x9f)}]`,
);
const NEEDS_ENCODING = /[%{}]/;
const ENCODE = /[%{}]/g;
const NAMESPACE = /^[A-Za-z0-9_.-]{1,64}$/;
const PREFIX = /^[A-Za-z0-9_.:-]{1,64}$/;

function encodeChar(char: string): string {
  return char === '%' ? '%25' : char === '{' ? '%7B' : '%7D';
}

/** `%`, `{` and `}` percent-encoded; anything else unchanged. */
export function encodePart(part: string): string {
  return NEEDS_ENCODING.test(part) ? part.replace(ENCODE, encodeChar) : part;
}

/** The inverse of {@link encodePart}, for keys read back from a scan. */
export function decodePart(part: string): string {
  return part.includes('%')
    ? part.replace(/%25|%7B|%7D/g, (m) => (m === '%25' ? '%' : m === '%7B' ? '{' : '}'))
    : part;
}

function describe(value: unknown): string {
  if (typeof value === 'string')
    return value.length > 40 ? `"${value.slice(0, 40)}…"` : JSON.stringify(value);
  return typeof value;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Names the first character matching `pattern` by code point and index, never the text around it: keys and tags
 * carry patient and user identifiers, and error messages end up in logs.
 */
function where(value: string, pattern: RegExp): string {
  const index = value.search(pattern);
  const unit = value.charCodeAt(index);
  return `U+${unit.toString(16).toUpperCase().padStart(4, '0')} at index ${index}`;
}

type PartKind = 'key' | 'tag' | 'pattern';

const CODES = { key: 'E_INVALID_KEY', tag: 'E_INVALID_TAG', pattern: 'E_INVALID_PATTERN' } as const;

/**
 * Checks a user-supplied key, tag or pattern: a non-empty, well-formed string of at most `maxBytes` UTF-8 bytes with
 * no control characters. Returns nothing; throws `CacheInputError` with the kind's code.
 */
export function checkPart(value: unknown, kind: PartKind, maxBytes: number): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new CacheInputError(
      CODES[kind],
      `A cache ${kind} must be a non-empty string (got ${describe(value)}).`,
    );
  }
  // A UTF-8 byte is at most 3 per UTF-16 unit: skip counting bytes for the common short key.
  if (value.length * 3 > maxBytes && Buffer.byteLength(value) > maxBytes) {
    throw new CacheInputError(
      CODES[kind],
      `A cache ${kind} must be at most ${maxBytes} bytes in UTF-8 (got ${Buffer.byteLength(value)}): hash long inputs first.`,
    );
  }
  if (CONTROL.test(value)) {
    throw new CacheInputError(
      CODES[kind],
      `A cache ${kind} must not contain control characters (newline, tab, NUL…): ${where(value, CONTROL)}.`,
    );
  }
  if (!(value as unknown as { isWellFormed(): boolean }).isWellFormed()) {
    throw new CacheInputError(
      CODES[kind],
      `A cache ${kind} must be well-formed Unicode: ${where(value, LONE_SURROGATE)} is a lone surrogate.`,
    );
  }
}

export function checkNamespace(namespace: unknown): string {
  if (typeof namespace !== 'string' || !NAMESPACE.test(namespace)) {
    throw new CacheConfigError(
      `namespace must be 1-64 characters of A-Z a-z 0-9 _ . - (got ${describe(namespace)}); it is part of every key and of clear()'s pattern.`,
    );
  }
  return namespace;
}

export function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    throw new CacheConfigError(
      `prefix must be 1-64 characters of A-Z a-z 0-9 _ . : - (got ${describe(prefix)}).`,
    );
  }
  return prefix;
}

/** The Redis keys and channels of one cache. */
export interface KeyLayout {
  /** `<prefix>:<namespace>:`, the start of every key and channel. */
  readonly base: string;
  /** `<base>e:` */
  readonly entryBase: string;
  entry(key: string): string;
  lock(key: string): string;
  tagVersion(tag: string): string;
  tagMembers(tag: string): string;
  tagSweep(tag: string): string;
  /** The user key of an entry key, or undefined for keys of other kinds. */
  userKey(redisKey: string): string | undefined;
  readonly busChannel: string;
  heartbeatChannel(instanceId: string): string;
  /** SCAN pattern for every key of the namespace. */
  readonly allPattern: string;
  /** SCAN for entries matching a user glob (relative to the namespace). */
  entryPattern(glob: string): EntryGlob;
}

export function keyLayout(prefix: string, namespace: string): KeyLayout {
  const base = `${prefix}:${namespace}:`;
  const entryBase = `${base}e:`;
  const lockBase = `${base}l:`;
  const tagBase = `${base}t:{`;
  return {
    base,
    entryBase,
    entry: (key) => entryBase + encodePart(key),
    lock: (key) => lockBase + encodePart(key),
    tagVersion: (tag) => `${tagBase}${encodePart(tag)}}:v`,
    tagMembers: (tag) => `${tagBase}${encodePart(tag)}}:k`,
    tagSweep: (tag) => `${tagBase}${encodePart(tag)}}:s`,
    userKey: (redisKey) =>
      redisKey.startsWith(entryBase) ? decodePart(redisKey.slice(entryBase.length)) : undefined,
    busChannel: `${base}bus`,
    heartbeatChannel: (instanceId) => `${base}bus:hb:${instanceId}`,
    allPattern: `${escapeGlob(base)}*`,
    entryPattern: (glob) => {
      const { pattern, filter } = translateGlob(glob);
      return { pattern: escapeGlob(entryBase) + pattern, filter };
    },
  };
}

/** A user glob turned into a SCAN over stored keys. */
export interface EntryGlob {
  /** MATCH pattern over stored (percent-encoded) keys, relative to the entry base. */
  pattern: string;
  /**
   * The exact test on user keys, when `pattern` is wider than the glob: `?` and `[...]` match one character of a
   * user key, and `%`, `{`, `}` are stored as three, so they go to SCAN as `*` and are checked here.
   */
  filter: ((userKey: string) => boolean) | undefined;
}

/** One element of a glob, matched against one character (code point) of a user key, or any run of them (`*`). */
type GlobToken = { kind: 'star' } | { kind: 'one'; test: (char: string) => boolean };

const anyChar = () => true;

/**
 * Whether `key` matches `tokens`, by code point. Iterative, with one backtrack point (the last `*`): O(key × glob) at
 * worst. A RegExp compiled from the glob backtracked exponentially on `*a*a*a…` against a long key.
 */
function globMatches(tokens: readonly GlobToken[], key: string): boolean {
  const chars = Array.from(key);
  let t = 0;
  let c = 0;
  let starToken = -1;
  let starChar = 0;
  while (c < chars.length) {
    const token = tokens[t];
    if (token?.kind === 'star') {
      starToken = t++;
      starChar = c;
    } else if (token?.test(chars[c] as string)) {
      t++;
      c++;
    } else if (starToken >= 0) {
      t = starToken + 1;
      c = ++starChar;
    } else {
      return false;
    }
  }
  while (tokens[t]?.kind === 'star') t++;
  return t === tokens.length;
}

/**
 * Turns a glob over user keys into a SCAN pattern over stored keys. `*`, `?`, `[abc]`, `[^a-z]` and `\x` have their
 * Redis meaning, over the characters of the user key; a literal `%`, `{` or `}` is matched in its encoded form.
 * Error messages name positions, never the pattern: patterns carry the same identifiers as keys.
 */
export function translateGlob(glob: string): EntryGlob {
  let pattern = '';
  const tokens: GlobToken[] = [];
  let exact = true;
  const literal = (char: string) => tokens.push({ kind: 'one', test: (other) => other === char });
  const chars = Array.from(glob);
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i] as string;
    if (char === '\\') {
      const next = chars[i + 1];
      if (next === undefined) {
        throw new CacheInputError('E_INVALID_PATTERN', 'A pattern must not end with a lone backslash.');
      }
      pattern += next === '%' || next === '{' || next === '}' ? encodeChar(next) : `\\${next}`;
      literal(next);
      i++;
    } else if (char === '*') {
      pattern += '*';
      if (tokens[tokens.length - 1]?.kind !== 'star') tokens.push({ kind: 'star' });
    } else if (char === '?') {
      pattern += '*';
      tokens.push({ kind: 'one', test: anyChar });
      exact = false;
    } else if (char === '[') {
      // As Redis reads a class: `]` right after `[` or `[^` ends it (an empty class), `x-y` is a range even when y
      // is `]`, and `\` escapes one member. Unlike Redis, an unclosed class is refused rather than run to the end.
      let j = i + 1;
      const negate = chars[j] === '^';
      if (negate) j++;
      const singles = new Set<string>();
      const ranges: Array<[number, number]> = [];
      for (; j < chars.length && chars[j] !== ']'; j++) {
        if (chars[j] === '\\' && j + 1 < chars.length) {
          singles.add(chars[++j] as string);
        } else if (chars[j + 1] === '-' && j + 2 < chars.length) {
          const ends = [
            (chars[j] as string).codePointAt(0),
            (chars[j + 2] as string).codePointAt(0),
          ] as number[];
          const [low, high] = ends.sort((a, b) => a - b) as [number, number];
          ranges.push([low, high]);
          j += 2;
        } else {
          singles.add(chars[j] as string);
        }
      }
      if (j >= chars.length) {
        throw new CacheInputError('E_INVALID_PATTERN', `A "[" at index ${i} of the pattern is never closed.`);
      }
      const inClass = (other: string) => {
        if (singles.has(other)) return true;
        const point = other.codePointAt(0) as number;
        return ranges.some(([low, high]) => point >= low && point <= high);
      };
      tokens.push({ kind: 'one', test: negate ? (other) => !inClass(other) : inClass });
      pattern += '*';
      exact = false;
      i = j;
    } else {
      pattern += char === '%' || char === '{' || char === '}' ? encodeChar(char) : char;
      literal(char);
    }
  }
  if (exact) return { pattern, filter: undefined };
  return { pattern, filter: (userKey) => globMatches(tokens, userKey) };
}
