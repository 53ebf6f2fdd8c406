import { Command, Redis } from 'ioredis';
const N = 200_000, C = 100;
const redis = new Redis('redis://127.0.0.1:23999');
for (let i = 0; i < 1000; i++) await redis.set('austa:cache:prof:e:k' + i, 'v'.repeat(256));
async function m(name: string, run: (i: number) => Promise<unknown>) {
  let i = 0; const cpu0 = process.cpuUsage();
  await Promise.all(Array.from({ length: C }, async () => { while (i < N) await run(i++); }));
  const cpu = process.cpuUsage(cpu0);
  console.log(name.padEnd(24), 'cpu us/op', ((cpu.user + cpu.system) / N).toFixed(2));
}
const set = new Set();
for (let r = 0; r < 2; r++) {
await m('raw getBuffer', (i) => redis.getBuffer('austa:cache:prof:e:k' + (i % 1000)));
await m('+ now only', (i) => { const t = performance.now(); const c = new Command('get', ['austa:cache:prof:e:k' + (i % 1000)], {}); const p = c.promise.then((v) => { performance.now(); return v; }, (e) => { throw e; }); redis.sendCommand(c); return p; });
await m('+ set only', (i) => { const c = new Command('get', ['austa:cache:prof:e:k' + (i % 1000)], {}); const pend = { c }; set.add(pend); const p = c.promise.then((v) => { set.delete(pend); return v; }, (e) => { throw e; }); redis.sendCommand(c); return p; });
await m('+ array deadline', (i) => { const c = new Command('get', ['austa:cache:prof:e:k' + (i % 1000)], {}); (c as any).deadline = i; const p = c.promise.then((v) => { return v; }, (e) => { throw e; }); redis.sendCommand(c); return p; });
await m('own Command + then', (i) => { const c = new Command('get', ['austa:cache:prof:e:k' + (i % 1000)], {}); const p = c.promise.then((v) => v, (e) => { throw e; }); redis.sendCommand(c); return p; });
await m('+ set + now', (i) => { const t = performance.now(); const c = new Command('get', ['austa:cache:prof:e:k' + (i % 1000)], {}); const pend = { c, t }; set.add(pend); const p = c.promise.then((v) => { set.delete(pend); performance.now(); return v; }, (e) => { throw e; }); redis.sendCommand(c); return p; });
}
await redis.quit();
