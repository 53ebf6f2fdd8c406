import { AustaCodecError } from '../src/index.js';

/** Runs `action` and returns the `code` of the codec error it threw; fails the test for anything else. */
export function codeOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (AustaCodecError.isInstance(error)) return error.code;
    throw new Error(`expected an @austa/codec error, got ${String(error)}`, { cause: error });
  }
  throw new Error('expected an @austa/codec error, but nothing was thrown');
}

/** mulberry32: a small deterministic PRNG, so a failing random case can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = ['a', 'Z', '0', ' ', '-', 'é', '語', '👍', '\u0000', '\n', '"', '\\', '{', '}'];

function randomString(random: () => number): string {
  const length = random() < 0.9 ? Math.floor(random() * 20) : Math.floor(random() * 400);
  let text = '';
  for (let index = 0; index < length; index++) text += ALPHABET[Math.floor(random() * ALPHABET.length)];
  return text;
}

function randomNumber(random: () => number): number {
  const pick = Math.floor(random() * 8);
  if (pick === 0) return Math.floor(random() * 128);
  if (pick === 1) return Math.floor((random() - 0.5) * 2 ** 32);
  if (pick === 2) return (random() - 0.5) * 1e12;
  if (pick === 3) return Math.floor((random() - 0.5) * 2 ** 53);
  if (pick === 4)
    return [-0, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY][
      Math.floor(random() * 4)
    ] as number;
  return random() * 1000;
}

/** A random value built from every type the format supports. */
export function randomValue(random: () => number, depth: number): unknown {
  const leafOnly = depth <= 0;
  const pick = Math.floor(random() * (leafOnly ? 10 : 15));
  switch (pick) {
    case 0:
      return null;
    case 1:
      return undefined;
    case 2:
      return random() < 0.5;
    case 3:
    case 4:
      return randomNumber(random);
    case 5:
    case 6:
      return randomString(random);
    case 7:
      return new Date(Math.floor((random() - 0.5) * 1e13));
    case 8:
      return BigInt(Math.floor((random() - 0.5) * 2 ** 53)) * BigInt(Math.floor(random() * 2 ** 40));
    case 9: {
      const bytes = Buffer.alloc(Math.floor(random() * 40));
      for (let index = 0; index < bytes.length; index++) bytes[index] = Math.floor(random() * 256);
      return random() < 0.5 ? bytes : new Uint8Array(bytes);
    }
    case 10:
    case 11: {
      const object: Record<string, unknown> = {};
      const count = Math.floor(random() * 6);
      for (let index = 0; index < count; index++)
        object[randomString(random)] = randomValue(random, depth - 1);
      return object;
    }
    case 12:
      return Array.from({ length: Math.floor(random() * 6) }, () => randomValue(random, depth - 1));
    case 13: {
      const map = new Map<unknown, unknown>();
      const count = Math.floor(random() * 4);
      for (let index = 0; index < count; index++)
        map.set(randomValue(random, 0), randomValue(random, depth - 1));
      return map;
    }
    default:
      return new Set(Array.from({ length: Math.floor(random() * 4) }, () => randomValue(random, 0)));
  }
}
