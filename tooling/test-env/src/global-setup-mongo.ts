import type { TestProject } from 'vitest/node';
import { describeMongo, resolveMongo } from './mongo.js';
import type {} from './provided-context.js';

/**
 * Vitest globalSetup: provides `mongo` (see `mongoTarget()` in '@austa/test-env/vitest'). When no
 * MongoDB can be had, provides `{ available: false, reason }` and prints one line saying the Mongo
 * integration tests are skipped; it never fakes one.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const handle = await resolveMongo();
  project.provide('mongo', handle.target);
  process.stdout.write(`${describeMongo(handle.target)}\n`);
  return () => handle.stop();
}
