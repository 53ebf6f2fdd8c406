import type { MongoTarget, RedisClusterTarget, RedisStandaloneTarget } from './types.js';

// What the globalSetups provide and `inject()` returns. Declared once here, imported (as types) by
// the setups and by ./vitest.ts, so a test file that imports '@austa/test-env/vitest' is typed.
declare module 'vitest' {
  export interface ProvidedContext {
    redisStandalone: RedisStandaloneTarget;
    redisCluster: RedisClusterTarget;
    mongo: MongoTarget;
  }
}
