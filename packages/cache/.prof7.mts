import { createCodec } from '@austa/codec';
const codec = createCodec();
const value = 'v'.repeat(256);
const enc = codec.encode(value);
const json = Buffer.from(JSON.stringify(value));
for (const [name, fn] of [['codec.decode', () => codec.decode(enc)], ['JSON.parse(buf.toString())', () => JSON.parse(json.toString())], ['codec.encode', () => codec.encode(value)]] as const) {
  for (let r = 0; r < 2; r++) { const t = performance.now(); for (let i = 0; i < 1e6; i++) fn(); if (r) console.log(name, ((performance.now() - t) / 1e6 * 1000).toFixed(3), 'us'); }
}
