import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { isAlive, readPidfile, reapStaleStateDirs, sleep } from '../src/processes.js';

const fixture = fileURLToPath(new URL('./fixtures/owner.ts', import.meta.url));

interface Owner {
  child: ChildProcess;
  stateDir: string;
  redisPid: number;
}

const owners: ChildProcess[] = [];

async function startOwner(): Promise<Owner> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  owners.push(child);
  const line = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      if (buffered.includes('\n')) resolve(buffered.split('\n')[0] as string);
    });
    child.once('exit', (code) => reject(new Error(`owner exited early (${code})`)));
  });
  const { stateDir, port } = JSON.parse(line) as { stateDir: string; port: number };
  const redisPid = readPidfile(stateDir, port);
  if (redisPid === null) throw new Error('owner started no redis-server');
  return { child, stateDir, redisPid };
}

function exited(child: ChildProcess): Promise<NodeJS.Signals | number | null> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.signalCode ?? child.exitCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
}

async function waitUntilDead(pid: number): Promise<void> {
  for (let attempt = 0; attempt < 100 && isAlive(pid); attempt++) await sleep(20);
}

afterEach(() => {
  for (const child of owners.splice(0)) child.kill('SIGKILL');
});

describe('no orphaned redis-server', () => {
  it('SIGTERM to the owning process kills its servers and removes the state dir', async () => {
    const owner = await startOwner();
    expect(isAlive(owner.redisPid)).toBe(true);

    owner.child.kill('SIGTERM');

    // The handler re-raises the signal, so the process still ends the way SIGTERM ends it.
    expect(await exited(owner.child)).toBe('SIGTERM');
    await waitUntilDead(owner.redisPid);
    expect(isAlive(owner.redisPid)).toBe(false);
    expect(existsSync(owner.stateDir)).toBe(false);
  });

  it('servers left by a SIGKILLed run are killed by the next start', async () => {
    const owner = await startOwner();
    owner.child.kill('SIGKILL');
    await exited(owner.child);
    // Nothing ran in the owner: its server is an orphan now.
    expect(isAlive(owner.redisPid)).toBe(true);

    reapStaleStateDirs();

    await waitUntilDead(owner.redisPid);
    expect(isAlive(owner.redisPid)).toBe(false);
    expect(existsSync(owner.stateDir)).toBe(false);
  });
});
