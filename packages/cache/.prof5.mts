import { Redis } from 'ioredis';
import { RedisIo } from './src/redis-io.ts';
import { createCache } from './src/index.ts';
const N = 200_000, C = 100;
const value = 'v'.repeat(256);
const redis = new Redis('redis://127.0.0.1:23999');
const cache = createCache({ redis, namespace: 'prof', defaultTtlSeconds: 600, timeoutMs: 5000 });
for (let i = 0; i < 1000; i++) await cache.set('k' + i, value);
const io = new RedisIo(redis, { timeoutMs: 5000, failureThreshold: 5, openMs: 1000 });
async function m(name: string, run: (i: number) => Promise<unknown>) {
  let i = 0; const cpu0 = process.cpuUsage();
  await Promise.all(Array.from({ length: C }, async () => { while (i < N) await run(i++); }));
  const cpu = process.cpuUsage(cpu0);
  console.log(name.padEnd(20), 'cpu us/op', ((cpu.user + cpu.system) / N).toFixed(2));
}
for (let r = 0; r < 2; r++) {
await m('raw getBuffer', (i) => redis.getBuffer('austa:cache:prof:e:k' + (i % 1000)));
await m('io.send get', (i) => io.send('get', ['austa:cache:prof:e:k' + (i % 1000)], 'x', true));
await m('cache.get', (i) => cache.get('k' + (i % 1000)));
const c = cache as any;
await m('readL2 only', (i) => c.readL2('austa:cache:prof:e:k' + (i % 1000), false, performance.now() + 5000));
await m('readShared', (i) => c.readShared('k' + (i % 1000), 'austa:cache:prof:e:k' + (i % 1000), false));
await m('getOne', (i) => c.getOne('k' + (i % 1000), 0, 'get'));
await m('readL2+decode', (i) => c.readL2('austa:cache:prof:e:k' + (i % 1000), false, performance.now() + 5000).then((o: any) => c.decode('x', o.data, o.header)));
}
await cache.close(); await redis.quit();
