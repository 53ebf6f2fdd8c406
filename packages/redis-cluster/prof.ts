import { createMetrics } from '@austa/metrics';
import { startRedisCluster } from '@austa/test-env';
import { createRedisClient } from './src/index.js';

const c = await startRedisCluster();
const withMetrics = process.argv[2] === 'm';
const r = createRedisClient(
  { cluster: { nodes: c.nodes }, enableAutoPipelining: true },
  withMetrics ? { metrics: createMetrics() } : {},
);
await r.ready();
const keys = Array.from({ length: 1000 }, (_, i) => `k:${i}`);
async function runOps(n: number) {
  let next = 0;
  await Promise.all(
    Array.from({ length: 100 }, async () => {
      while (next < n) {
        const i = next++;
        await r.client.get(keys[i % 1000]!);
      }
    }),
  );
}
await runOps(50000);
const cpu0 = process.cpuUsage();
const t = performance.now();
await runOps(200000);
const cpu = process.cpuUsage(cpu0);
console.log(
  withMetrics ? 'metrics' : 'plain',
  'ops/s',
  Math.round(200000 / ((performance.now() - t) / 1000)),
  'cpu us/op',
  ((cpu.user + cpu.system) / 200000).toFixed(2),
);
await r.close();
await c.stop();
