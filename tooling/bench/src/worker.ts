import { pathToFileURL } from 'node:url';
import { measure } from './measure.js';
import { MicroRunner } from './micro.js';
import type { FromWorker, ToWorker } from './protocol.js';
import type { BenchDefinition, PreparedCase } from './types.js';

let prepared: PreparedCase | undefined;
let micro: MicroRunner | undefined;

function reply(message: FromWorker): void {
  process.send?.(message);
}

async function loadDefinition(file: string): Promise<BenchDefinition> {
  return ((await import(pathToFileURL(file).href)) as { default: BenchDefinition }).default;
}

async function handle(message: ToWorker): Promise<void> {
  if (message.type === 'setup') {
    const benchCase = (await loadDefinition(message.file)).cases?.[message.caseIndex];
    if (benchCase === undefined) throw new Error(`no case ${message.caseIndex} in ${message.file}`);
    prepared = await benchCase.setup(message.context);
    reply({ type: 'ready' });
  } else if (message.type === 'setup-micro') {
    const microCase = (await loadDefinition(message.file)).micro?.[message.caseIndex];
    if (microCase === undefined) throw new Error(`no micro case ${message.caseIndex} in ${message.file}`);
    micro = await MicroRunner.create(await microCase.setup());
    reply({ type: 'ready' });
  } else if (message.type === 'run') {
    if (prepared === undefined) throw new Error('run before setup');
    await measure(prepared, message.warmup, message.concurrency);
    // Garbage from the warm-up is collected now, so the timed run pays only for its own.
    (globalThis as { gc?: () => void }).gc?.();
    reply({ type: 'result', measurement: await measure(prepared, message.ops, message.concurrency) });
  } else if (message.type === 'run-micro') {
    if (micro === undefined) throw new Error('run-micro before setup-micro');
    reply({ type: 'micro-result', measurement: await micro.round(message.durationMs, message.warmupMs) });
  } else {
    await prepared?.teardown();
    await micro?.teardown();
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
