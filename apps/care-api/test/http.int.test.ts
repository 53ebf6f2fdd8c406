import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_DIR, type ServiceProcess, startServiceProcess, stopServiceProcess } from './process.js';
import { eventually, type PrometheusProcess, startPrometheus } from './prometheus.js';

/*
 * The service as it is deployed: `node dist/main.js` with nothing configured (the embedded development Redis, Mongo
 * tried then disabled here), over real HTTP, scraped by a real Prometheus that also loads deploy/prometheus/alerts.yml.
 */
describe('care-api over real HTTP, scraped by Prometheus', () => {
  let service: ServiceProcess;
  let prometheus: PrometheusProcess;

  beforeAll(async () => {
    service = await startServiceProcess({});
    prometheus = await startPrometheus({
      target: new URL(service.address).host,
      ruleFiles: [join(APP_DIR, 'deploy/prometheus/alerts.yml')],
    });
  });
  afterAll(async () => {
    await prometheus?.stop();
    if (service) await stopServiceProcess(service);
  });

  it('starts with nothing configured: a local redis-server child, logged as development only', () => {
    const started = service.logs.find((entry) =>
      String(entry.msg).startsWith('started a local redis-server child'),
    );
    expect(started?.msg).toContain('development only');
    expect(started?.url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
    const mongoLines = service.logs.filter((entry) => /MongoDB/.test(String(entry.msg)));
    // One line for MongoDB either way: started in memory, or disabled with the reason.
    expect(mongoLines).toHaveLength(1);
  });

  it('answers /health/ready over HTTP with Redis up', async () => {
    const response = await fetch(`${service.address}/health/ready`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { checks: { redis: { status: string; masters: unknown[] } } };
    expect(body.checks.redis.status).toBe('up');
    expect(body.checks.redis.masters).toHaveLength(1);
  });

  it('Prometheus scrapes /metrics and a PromQL query returns the request series with service="care-api"', async () => {
    const requests = 7;
    for (let i = 0; i < requests; i++)
      expect((await fetch(`${service.address}/health/live`)).status).toBe(200);
    const targets = await eventually(
      () => prometheus.targets(),
      (list) => list.length === 1 && list[0]?.health === 'up',
      60_000,
      'the care-api target was not up',
    );
    expect(targets[0]?.scrapeUrl).toBe(`${service.address}/metrics`);

    const query =
      'sum by (service, http_route, http_response_status_code) (http_server_request_duration_seconds_count{job="care-api",http_route="/health/live"})';
    const result = await eventually(
      () => prometheus.query(query),
      (series) => Number(series[0]?.value[1] ?? 0) >= requests,
      60_000,
      `PromQL ${query} did not reach ${requests}`,
    );
    expect(result).toHaveLength(1);
    expect(result[0]?.metric).toEqual({
      service: 'care-api',
      http_route: '/health/live',
      http_response_status_code: '200',
    });

    const redis = await eventually(
      () =>
        prometheus.query(
          'sum by (service) (db_client_operation_duration_seconds_count{db_system_name="redis"})',
        ),
      (series) => Number(series[0]?.value[1] ?? 0) > 0,
      30_000,
      'no Redis operation series',
    );
    expect(redis[0]?.metric.service).toBe('care-api');
  });

  it('Prometheus loads every alert rule of deploy/prometheus/alerts.yml and evaluates it without error', async () => {
    const rules = await eventually(
      () => prometheus.rules(),
      (list) => list.length > 0 && list.every((rule) => rule.health === 'ok'),
      60_000,
      'not every rule evaluated cleanly',
    );
    expect(rules.length).toBeGreaterThanOrEqual(8);
    expect(rules.every((rule) => rule.type === 'alerting' && !rule.lastError)).toBe(true);
  });

  it('the README walk-through with curl runs against it as written', async () => {
    const readme = readFileSync(join(APP_DIR, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Walk-through with curl'));
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block).toBeDefined();
    const script = (block as string).replaceAll('localhost:3000', new URL(service.address).host);
    const dir = mkdtempSync(join(tmpdir(), 'care-api-readme-'));
    try {
      const { stdout } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', script], {
        cwd: dir,
        timeout: 30_000,
      });
      // What each step of the walk-through says it prints.
      expect(stdout).toContain('"status":"ready"');
      expect(stdout).toMatch(
        /^\{"userId":"demo-ada","roles":\["patient"\],"demo":true,"session":\{"id":"[\w-]{43}",.*"patientId":"ada"\}$/m,
      );
      expect(stdout).toMatch(
        /"current":true,"device":\{"userAgent":"curl\/[^"]+","ip":"127\.0\.0\.0","platform":"web"\}/,
      );
      expect(stdout).toMatch(/"message":\{"seq":3,"role":"user","content":"My knee hurts since 2025-03-01"/);
      expect(stdout).toContain(
        '"reply":{"seq":4,"role":"assistant","content":"[demo assistant] This looks like a symptom question. I noted date 2025-03-01.',
      );
      expect(stdout).toContain('"title":"Refill"');
      expect(stdout).toMatch(/"name":"medication","value":"metformin"/);
      expect(stdout).toMatch(/^ratelimit-policy: "ip";q=600;w=60\r?$/im);
      expect(stdout).toMatch(/^ratelimit: "ip";r=\d+;t=\d+\r?$/im);
      // Nothing configured: MongoDB is disabled here, unless mongodb-memory-server could start one.
      expect(stdout).toMatch(/"code":"E_MONGODB_UNAVAILABLE"|"name":"Ada"/);
      expect(stdout).toMatch(/^austa_conversation_messages_total\{role="assistant",service="care-api"\} 2$/m);
      expect(stdout).toMatch(
        /^austa_rate_limit_decisions_total\{limiter="ip",strategy="sliding-window",result="allowed",service="care-api"\} \d+$/m,
      );
      expect(stdout).toMatch(/^204$/m);
      expect(stdout.trimEnd().split('\n').at(-1)).toContain('"code":"E_UNAUTHENTICATED"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SIGTERM stops it with exit code 0 within the shutdown timeout, the development Redis with it', async () => {
    const redisPid = Number(
      service.logs.find((entry) => String(entry.msg).startsWith('started a local redis-server child'))?.pid,
    );
    expect(redisPid).toBeGreaterThan(0);
    const { code, durationMs } = await stopServiceProcess(service);
    expect(code).toBe(0);
    expect(durationMs).toBeLessThan(10_000);
    expect(() => process.kill(redisPid, 0)).toThrow();
  });
});
