/** False whenever the CI environment variable is set: a committed `.only` fails the run. */
export declare const allowOnly: boolean;
export declare function vitestPreset(options?: {
  /** Adds '@austa/test-env/global-setup' (Redis standalone + cluster). Default true. */
  integration?: boolean;
  /** Adds '@austa/test-env/global-setup-mongo' (MongoDB when reachable; see REQUIRE_MONGO). Default false. */
  mongo?: boolean;
  testTimeoutMs?: number;
}): import('vitest/config').UserWorkspaceConfig;
