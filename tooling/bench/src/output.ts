import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';

/** The workspace root (where pnpm-workspace.yaml is), so a relative BENCH_OUT means the same file from any package. */
export function workspaceRoot(from: string): string {
  let directory = resolve(from);
  while (true) {
    if (existsSync(join(directory, 'pnpm-workspace.yaml'))) return directory;
    const parent = dirname(directory);
    if (parent === directory) return resolve(from);
    directory = parent;
  }
}

/** Resolves BENCH_OUT: absolute as given, relative to the workspace root otherwise. */
export function outputPath(out: string, packageDirectory: string): string {
  return isAbsolute(out) ? out : join(workspaceRoot(packageDirectory), out);
}

/**
 * Appends each line to the file as it is produced (a run cut short keeps what it measured). Appending, never
 * truncating: `pnpm bench` runs one process per package, each adding its lines to the same file.
 */
export function lineAppender(path: string): (line: string) => void {
  mkdirSync(dirname(path), { recursive: true });
  return (line) => appendFileSync(path, `${line}\n`);
}
