import { vitestPreset } from '@austa/presets/vitest';

// The harness's end-to-end tests run `austa-bench` against the standalone server and cluster of this test run.
export default vitestPreset({ testTimeoutMs: 120_000 });
