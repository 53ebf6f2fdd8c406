import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Runs the first code block under a README's `## Quickstart` heading as a real program, from inside the package
 * (so `@austa/<name>` resolves to its build through the package's self-reference), and returns what it printed.
 * Keeps every README honest: a quickstart that stops working fails the package's tests.
 */
export async function runReadmeQuickstart(
  packageDirectory: string,
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<string> {
  const readme = readFileSync(join(packageDirectory, 'README.md'), 'utf8');
  const start = readme.indexOf('## Quickstart');
  if (start < 0) throw new Error(`${packageDirectory}/README.md has no "## Quickstart" section`);
  const block = /```(ts|js)\n([\s\S]*?)```/.exec(readme.slice(start));
  if (!block?.[2]) throw new Error(`${packageDirectory}/README.md has no code block under "## Quickstart"`);
  const file = join(
    packageDirectory,
    `.quickstart-${process.pid}-${Date.now()}.${block[1] === 'ts' ? 'mts' : 'mjs'}`,
  );
  writeFileSync(file, block[2]);
  try {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', file], {
      cwd: packageDirectory,
      env: { ...process.env, ...env },
      timeout: timeoutMs,
    });
    return stdout;
  } finally {
    rmSync(file, { force: true });
  }
}
