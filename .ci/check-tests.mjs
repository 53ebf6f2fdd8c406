#!/usr/bin/env node
// Reads the log of `pnpm test` (turbo, `--log-prefix=task`) and fails unless every workspace package that has test
// files ran them: its own vitest summary with at least one passed test and none failed, and a line for each of its
// test files. The sum over all packages cannot tell a package whose `test` script went missing (turbo skips it
// without a word) from one that ran; this check can, and it covers packages added later without being edited.
//
// Usage: node .ci/check-tests.mjs <test-log>
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const TEST_FILE = /\.(test|spec)\.[cm]?[jt]sx?$/;
const SKIP_DIRS = new Set(['node_modules', 'dist', 'coverage', '.turbo']);

function workspacePackages(root) {
  const result = spawnSync('pnpm', ['-r', 'ls', '--depth', '-1', '--json'], { cwd: root, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`pnpm -r ls failed: ${result.stderr}`);
  // The root is listed too; its tree is every package's, so it is left out.
  return JSON.parse(result.stdout).filter((entry) => entry.path !== root);
}

function testFiles(directory, base = directory) {
  const found = [];
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || SKIP_DIRS.has(entry.name)) continue;
    const path = join(directory, entry.name);
    if (entry.isDirectory()) found.push(...testFiles(path, base));
    else if (TEST_FILE.test(entry.name)) found.push(relative(base, path).split(sep).join('/'));
  }
  return found.sort();
}

/** Lines of one package's `test` task, without the turbo prefix and colours. */
function taskLines(log, name) {
  const prefix = `${name}:test: `;
  return log
    .split('\n')
    .filter((line) => line.startsWith(prefix))
    .map((line) => line.slice(prefix.length));
}

function count(text, word) {
  const match = new RegExp(`(\\d+) ${word}`).exec(text);
  return match ? Number(match[1]) : 0;
}

const [logPath] = process.argv.slice(2);
if (!logPath) {
  console.error('usage: node .ci/check-tests.mjs <test-log>');
  process.exit(2);
}
const root = process.cwd();
// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes are what is being removed.
const log = readFileSync(logPath, 'utf8').replace(/\x1b\[[0-9;]*m/g, '');

const rows = [];
const problems = [];
const totals = { passed: 0, failed: 0, skipped: 0 };
for (const { name, path } of workspacePackages(root)) {
  const files = testFiles(path);
  const manifest = JSON.parse(readFileSync(join(path, 'package.json'), 'utf8'));
  const lines = taskLines(log, name);
  const summaries = lines.filter((line) => /^\s*Tests\s+\d/.test(line));
  const tally = { passed: 0, failed: 0, skipped: 0 };
  for (const line of summaries) {
    tally.passed += count(line, 'passed');
    tally.failed += count(line, 'failed');
    tally.skipped += count(line, 'skipped') + count(line, 'todo');
  }
  for (const key of Object.keys(totals)) totals[key] += tally[key];
  if (files.length === 0) {
    rows.push({ name, files: 0, ...tally, status: 'no test files' });
    continue;
  }
  const own = [];
  if (!manifest.scripts?.test) own.push(`has ${files.length} test files but no "test" script`);
  else if (summaries.length === 0) own.push('printed no vitest summary: its tests did not run');
  else {
    if (tally.failed > 0) own.push(`${tally.failed} tests failed`);
    if (tally.passed === 0) own.push('no test passed');
    if (lines.some((line) => /^\s*Test Files\s+.*\d+ failed/.test(line))) own.push('a test file failed');
    // A file the config does not include (or that vitest never reached) has no line of its own in the report.
    const missing = files.filter((file) => !lines.some((line) => line.includes(` ${file} (`)));
    if (missing.length > 0) own.push(`test files not in its report: ${missing.join(', ')}`);
  }
  rows.push({ name, files: files.length, ...tally, status: own.length === 0 ? 'ok' : 'FAIL' });
  for (const problem of own) problems.push(`${name}: ${problem}`);
}

const width = Math.max(...rows.map((row) => row.name.length), 'package'.length);
console.log(`${'package'.padEnd(width)}  files  passed  failed  skipped  status`);
for (const row of rows) {
  console.log(
    `${row.name.padEnd(width)}  ${String(row.files).padStart(5)}  ${String(row.passed).padStart(6)}  ${String(row.failed).padStart(6)}  ${String(row.skipped).padStart(7)}  ${row.status}`,
  );
}
console.log(`tests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
if (problems.length > 0) {
  for (const problem of problems) console.error(`[ci] FAIL: ${problem}`);
  process.exit(1);
}
