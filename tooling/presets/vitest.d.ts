export declare function vitestPreset(options?: {
  integration?: boolean;
  testTimeoutMs?: number;
}): import('vitest/config').UserWorkspaceConfig;
