import { createMetrics } from '@austa/metrics';
import { createRedisClient, fromEnv } from '@austa/redis-cluster';

// REDIS_URL or REDIS_CLUSTER_NODES pick the server; without either, the local default server is used.
const env =
  process.env.REDIS_URL || process.env.REDIS_CLUSTER_NODES
    ? process.env
    : { REDIS_URL: 'redis://127.0.0.1:6379' };
const metrics = createMetrics();
const redis = createRedisClient({ ...fromEnv(env), name: 'example' }, { metrics });

try {
  await redis.ready(5000);
} catch (error) {
  console.error(`Cannot reach Redis (${(error as Error).message}). Start redis-server or set REDIS_URL.`);
  process.exit(1);
}

const channel = 'austa:example:greetings';
const received = new Promise<string>((resolve) => {
  void redis
    .subscribe(channel, (message) => resolve(message))
    .then(() => redis.publish(channel, 'hello from @austa'));
});
await redis.client.set('austa:example:{demo}:counter', '0', 'EX', 60);
for (let i = 0; i < 10; i++) await redis.client.incr('austa:example:{demo}:counter');
console.log('counter =', await redis.client.get('austa:example:{demo}:counter'));
console.log('pub/sub  =', await received);
const health = await redis.health();
console.log(
  'health   =',
  JSON.stringify({ healthy: health.healthy, topology: health.topology, problems: health.problems }),
);
await redis.close();

console.log('\n# Prometheus exposition (what /metrics would serve):\n');
console.log(await metrics.text());
