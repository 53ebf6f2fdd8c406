import { Redis } from 'ioredis';
import { createCache } from '@austa/cache';
const url = 'redis://127.0.0.1:23999';
const N = 100_000, C = 100;
async function measure(name: string, run: (i: number) => Promise<unknown>) {
  for (let w = 0; w < 2; w++) {
    let i = 0; const cpu0 = process.cpuUsage(); const t0 = performance.now();
    await Promise.all(Array.from({ length: C }, async () => { while (i < N) await run(i++); }));
    const cpu = process.cpuUsage(cpu0); const ms = performance.now() - t0;
    if (w === 1) console.log(name.padEnd(28), 'ops/s', Math.round(N / ms * 1000), 'cpu us/op', ((cpu.user + cpu.system) / N).toFixed(2));
  }
}
const value = 'v'.repeat(256);
const redis = new Redis(url);
for (let i = 0; i < 1000; i++) await redis.set('raw' + i, value);
await measure('ioredis getBuffer', (i) => redis.getBuffer('raw' + (i % 1000)));
await measure('ioredis get', (i) => redis.get('raw' + (i % 1000)));
const cache = createCache({ redis, namespace: 'prof', defaultTtlSeconds: 600 });
await cache.setMany(Array.from({length: 1000}, (_, i) => ({ key: 'k' + i, value })));
await measure('@austa/cache get', (i) => cache.get('k' + (i % 1000)));
await measure('@austa/cache getOrSet', (i) => cache.getOrSet('k' + (i % 1000), () => value));
await measure('ioredis getBuffer', (i) => redis.getBuffer('raw' + (i % 1000)));
await cache.close(); await redis.quit();
