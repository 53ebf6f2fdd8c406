#!/usr/bin/env node
// Bench files are TypeScript; tsx's loader lets them run without a build step of their own.
const { register } = await import('tsx/esm/api');
register();
const { main } = await import('../src/cli.ts');
process.exitCode = await main(process.argv.slice(2));
