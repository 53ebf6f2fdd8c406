#!/usr/bin/env node
// One benchmark case per process: libraries never share a JIT, a heap or a garbage collector with their rival.
const { register } = await import('tsx/esm/api');
register();
await import('../src/worker.ts');
