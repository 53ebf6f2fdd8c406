import { createMetrics } from '@austa/metrics';
import { startRedisCluster } from '@austa/test-env';
import { createRedisClient } from './src/index.js';
import * as inst from './src/instrumentation.js';

const c = await startRedisCluster();
const mode = process.argv[2];
const real = createMetrics();
const metrics: any =
  mode === 'emptyobs'
    ? Object.assign(Object.create(real), { operationDuration: () => ({ bind: () => ({ observe() {} }) }) })
    : real;
if (mode === 'nonode') process.env.AUSTA_NO_NODE_HOOK = '1';
const r = createRedisClient(
  { cluster: { nodes: c.nodes }, enableAutoPipelining: true },
  mode === 'plain' ? {} : { metrics },
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
const results = [];
for (let k = 0; k < 3; k++) {
  const cpu0 = process.cpuUsage();
  const t = performance.now();
  await runOps(100000);
  const cpu = process.cpuUsage(cpu0);
  results.push(((cpu.user + cpu.system) / 100000).toFixed(2));
}
console.log(mode, 'cpu us/op', results.join(' '));
await r.close();
await c.stop();
