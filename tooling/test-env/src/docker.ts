import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';

export type DockerCheck = { ok: true } | { ok: false; reason: string };

function socketCandidates(): string[] {
  const candidates = ['/var/run/docker.sock', join(homedir(), '.docker', 'run', 'docker.sock')];
  if (process.env.XDG_RUNTIME_DIR) candidates.push(join(process.env.XDG_RUNTIME_DIR, 'docker.sock'));
  return candidates;
}

/**
 * Asks the Docker engine for `/_ping` within `timeoutMs`. testcontainers' own discovery tries many
 * strategies and can take far longer to give up; a missing engine must cost the run almost nothing.
 */
export function dockerAnswers(timeoutMs = 2_000): Promise<DockerCheck> {
  const dockerHost = process.env.DOCKER_HOST;
  let target: { socketPath: string } | { host: string; port: number };
  if (dockerHost) {
    const url = new URL(dockerHost);
    if (url.protocol === 'unix:') target = { socketPath: url.pathname };
    else if (url.protocol === 'tcp:' || url.protocol === 'http:') {
      target = { host: url.hostname, port: Number(url.port || 2375) };
    } else {
      // TLS and ssh engines need credentials we do not handle here; let testcontainers try.
      return Promise.resolve({ ok: true });
    }
  } else {
    const socketPath = socketCandidates().find((candidate) => existsSync(candidate));
    if (!socketPath) {
      return Promise.resolve({ ok: false, reason: 'no Docker engine (no DOCKER_HOST, no docker.sock)' });
    }
    target = { socketPath };
  }
  return new Promise((resolve) => {
    const req = request({ ...target, path: '/_ping', method: 'GET', timeout: timeoutMs }, (response) => {
      response.resume();
      resolve(
        response.statusCode === 200
          ? { ok: true }
          : { ok: false, reason: `Docker engine answered /_ping with HTTP ${response.statusCode}` },
      );
    });
    req.on('timeout', () => {
      req.destroy();
      resolve({ ok: false, reason: `Docker engine did not answer within ${timeoutMs} ms` });
    });
    req.on('error', (error) =>
      resolve({ ok: false, reason: `Docker engine unreachable (${error.message})` }),
    );
    req.end();
  });
}
