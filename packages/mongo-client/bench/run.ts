/*
 * `pnpm bench` for @austa/mongo-client:
 * 1. the server-free micro-benchmark (bench/micro.ts), on every machine;
 * 2. findOne / insertOne against the raw driver (bench/driver.bench.ts) through the shared bench harness, when a
 *    MongoDB can be had (MONGODB_URL or BENCH_MONGODB_URL, else mongodb-memory-server, else Docker); otherwise one
 *    line, "skipped: no MongoDB". A MONGODB_URL that does not answer is an error, not a skip.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveMongo } from '@austa/test-env';
import { runMicroBenchmarks } from './micro.js';

const packageDirectory = fileURLToPath(new URL('..', import.meta.url));

runMicroBenchmarks();

// turbo passes BENCH_* variables to the bench task; MONGODB_URL only when declared there.
if (!process.env.MONGODB_URL && process.env.BENCH_MONGODB_URL)
  process.env.MONGODB_URL = process.env.BENCH_MONGODB_URL;
const mongo = await resolveMongo();
try {
  if (!mongo.target.available) {
    process.stdout.write(
      `[bench] mongo-client findOne/insertOne: skipped: no MongoDB (${mongo.target.reason})\n`,
    );
  } else {
    const harness = join(packageDirectory, 'node_modules', '.bin', 'austa-bench');
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn(harness, [packageDirectory], {
        stdio: 'inherit',
        env: {
          ...process.env,
          MONGODB_URL: mongo.target.available ? mongo.target.url : '',
          BENCH_TOPOLOGIES: 'standalone',
        },
      });
      child.on('error', reject);
      child.on('exit', (exitCode) => resolve(exitCode ?? 1));
    });
    process.exitCode = code;
  }
} finally {
  await mongo.stop();
}
