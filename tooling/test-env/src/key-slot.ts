import { createRequire } from 'node:module';

// cluster-key-slot (the CRC16 ioredis itself uses) is CommonJS without types. Loading it through
// require keeps an ambient module declaration out of every consumer's program.
const calculateSlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string | Buffer) => number;

/** The hash slot of a key (CRC16 of the key or its `{hash tag}`, mod 16384). */
export function keySlot(key: string | Buffer): number {
  return calculateSlot(key);
}
