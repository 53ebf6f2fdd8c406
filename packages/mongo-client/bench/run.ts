/*
 * `pnpm bench` for @austa/mongo-client. Finds a MongoDB (MONGODB_URL, or BENCH_MONGODB_URL, which turbo passes to the
 * bench task; else mongodb-memory-server; else Docker), then runs the bench harness over bench/*.bench.ts:
 * - micro.bench.ts always (no server);
 * - driver.bench.ts (findOne / insertOne against the raw driver) only with a MongoDB; otherwise one line,
 *   "skipped: no MongoDB". A MONGODB_URL that does not answer, or REQUIRE_MONGO without a MongoDB, is an error.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveMongo } from '@austa/test-env';

const packageDirectory = fileURLToPath(new URL('..', import.meta.url));
const env = { ...process.env };
if (!env.MONGODB_URL && env.BENCH_MONGODB_URL) env.MONGODB_URL = env.BENCH_MONGODB_URL;

const mongo = await resolveMongo(env);
try {
  if (mongo.target.available) {
    env.MONGODB_URL = mongo.target.url;
    env.BENCH_TOPOLOGIES ??= 'standalone';
  } else {
    delete env.MONGODB_URL;
    process.stderr.write(
      `[bench] mongo-client findOne/insertOne: skipped: no MongoDB (${mongo.target.reason})\n`,
    );
  }
  const harness = join(packageDirectory, 'node_modules', '.bin', 'austa-bench');
  process.exitCode = await new Promise<number>((resolve, reject) => {
    const child = spawn(harness, [packageDirectory], { stdio: 'inherit', env });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code ?? 1));
  });
} finally {
  await mongo.stop();
}
