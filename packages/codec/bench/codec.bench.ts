import { createHash } from 'node:crypto';
import { defineBench, loadRival, type MicroCase } from '@austa/bench';
import { type CodecOptions, createCodec } from '@austa/codec';
import { sessionValue } from './session-value.js';

/*
 * encode + decode of one ~1 KiB session-like value per operation, no Redis involved: micro cases, timed in batches
 * in-process (ns and bytes per operation), with no async call around each operation to dilute the differences.
 * Every library turns the value into bytes and back, as a store does around a Redis round trip: JSON includes the
 * UTF-8 conversion that ioredis would otherwise do for it.
 */

// Rivals resolve from the bench package only, so their types are declared here (the part this file uses).
interface SuperJson {
  stringify(value: unknown): string;
  parse<T>(text: string): T;
}
interface Packr {
  pack(value: unknown): Buffer;
  unpack(data: Uint8Array): unknown;
}
const superjson = (await loadRival<{ default: SuperJson }>('superjson')).default;
const { Packr } = await loadRival<{ Packr: new (options: object) => Packr }>('msgpackr');

// A fixed test key: the benchmark measures the cipher, not key handling.
const KEY = createHash('sha256').update('austa codec bench key').digest();
const ENCRYPTION: CodecOptions['encryption'] = { currentKeyId: 'bench', keys: { bench: KEY } };
// Record-mode msgpackr is the configuration that keeps Map, Set, Date and BigInt apart from plain objects
// without process-wide extensions, i.e. the one that round-trips what @austa/codec does.
const MSGPACKR_OPTIONS = {
  moreTypes: true,
  mapsAsObjects: false,
  useRecords: true,
  int64AsType: 'bigint',
} as const;

function prepared(run: () => unknown) {
  return { run };
}

function jsonCase(op: string, lib: string, vs?: string): MicroCase {
  return {
    op,
    lib,
    vs,
    async setup() {
      const value = sessionValue();
      return prepared(() => JSON.parse(Buffer.from(JSON.stringify(value)).toString()));
    },
  };
}

function codecCase(op: string, lib: string, options: CodecOptions): MicroCase {
  return {
    op,
    lib,
    vs: 'JSON',
    async setup() {
      const value = sessionValue();
      const codec = createCodec(options);
      const associatedData = 'austa:session:{u:7f3a}:s:abc';
      return prepared(() => codec.decode(codec.encode(value, { associatedData }), { associatedData }));
    },
  };
}

function group(op: string, extra: MicroCase[]): MicroCase[] {
  // JSON run twice: the control's ratio is the noise floor of this run.
  return [jsonCase(op, 'JSON'), jsonCase(op, 'JSON (control)', 'JSON'), ...extra];
}

const PLAIN = 'encode+decode:session-1KiB:plain';
const ENCRYPTED = 'encode+decode:session-1KiB:encrypted';
const COMPRESSED = 'encode+decode:session-1KiB:encrypted+compressed';

export default defineBench({
  package: 'codec',
  micro: [
    ...group(PLAIN, [
      codecCase(PLAIN, '@austa/codec', {}),
      {
        op: PLAIN,
        lib: 'msgpackr',
        vs: 'JSON',
        async setup() {
          const value = sessionValue();
          const packr = new Packr(MSGPACKR_OPTIONS);
          return prepared(() => packr.unpack(packr.pack(value)));
        },
      },
      {
        op: PLAIN,
        lib: 'superjson',
        vs: 'JSON',
        async setup() {
          const value = sessionValue();
          return prepared(() => superjson.parse(Buffer.from(superjson.stringify(value)).toString()));
        },
      },
    ]),
    ...group(ENCRYPTED, [codecCase(ENCRYPTED, '@austa/codec (AES-256-GCM)', { encryption: ENCRYPTION })]),
    ...group(COMPRESSED, [
      codecCase(COMPRESSED, '@austa/codec (AES-256-GCM + deflate)', {
        encryption: ENCRYPTION,
        // The value is ~1 KiB: a threshold below it makes every operation compress.
        compression: { thresholdBytes: 256 },
      }),
    ]),
  ],
});
