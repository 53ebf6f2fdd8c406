import { vitestPreset } from '@austa/presets/vitest';

// Failover tests wait out a cluster-node-timeout and a promotion.
export default vitestPreset({ testTimeoutMs: 90_000 });
