import { pathToFileURL } from 'node:url';
import { measure } from './measure.js';
import type { FromWorker, ToWorker } from './protocol.js';
import type { BenchDefinition, PreparedCase } from './types.js';

let prepared: PreparedCase | undefined;

function reply(message: FromWorker): void {
  process.send?.(message);
}

async function handle(message: ToWorker): Promise<void> {
  if (message.type === 'setup') {
    const module = (await import(pathToFileURL(message.file).href)) as { default: BenchDefinition };
    const benchCase = module.default.cases[message.caseIndex];
    if (benchCase === undefined) throw new Error(`no case ${message.caseIndex} in ${message.file}`);
    prepared = await benchCase.setup(message.context);
    reply({ type: 'ready' });
  } else if (message.type === 'run') {
    if (prepared === undefined) throw new Error('run before setup');
    await measure(prepared, message.warmup, message.concurrency);
    // Garbage from the warm-up is collected now, so the timed run pays only for its own.
    (globalThis as { gc?: () => void }).gc?.();
    reply({ type: 'result', measurement: await measure(prepared, message.ops, message.concurrency) });
  } else {
    await prepared?.teardown();
    reply({ type: 'stopped' });
    process.disconnect?.();
  }
}

process.on('message', (message: ToWorker) => {
  handle(message).catch((error: unknown) => {
    reply({
      type: 'error',
      message: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
  });
});
