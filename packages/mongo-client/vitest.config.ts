import { vitestPreset } from '@austa/presets/vitest';

// Redis for the Redis token store; MongoDB for the integration suite (skipped with one printed line when none can be
// had, failing instead when MONGODB_URL does not answer or REQUIRE_MONGO is set).
export default vitestPreset({ mongo: true, testTimeoutMs: 60_000 });
