import { fileURLToPath } from 'node:url';
import { mongoTarget, runReadmeQuickstart } from '@austa/test-env/vitest';
import { describe, expect, it } from 'vitest';

const mongo = mongoTarget();

// Skipped (with the one line global-setup-mongo printed) where no MongoDB is reachable.
describe.runIf(mongo.available)('README', () => {
  it('quickstart runs against a real replica set and prints its metrics', async () => {
    if (!mongo.available) throw new Error('unreachable');
    const output = await runReadmeQuickstart(
      fileURLToPath(new URL('..', import.meta.url)),
      { MONGODB_URL: mongo.url },
      60_000,
    );
    expect(output).toContain('change insert');
    expect(output).toMatch(/healthy: true, primary: \S+:\d+/);
    expect(output).toContain(
      'db_client_operation_duration_seconds_count{db_system_name="mongodb",db_operation_name="insert",error_type=""} 1',
    );
    expect(output).toContain(
      'mongodb_change_stream_events_total{collection="patients",operation_type="insert"} 1',
    );
  });
});
