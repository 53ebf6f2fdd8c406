import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type AustaMongoClient, createMongoClient } from '@austa/mongo-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildDashboard, DASHBOARD_PATH } from '../scripts/dashboard.js';
import { loadConfig } from '../src/config.js';
import { APP_DIR } from './process.js';
import { exposedFamilies, metricFamily, promqlMetricNames } from './promql.js';
import { startTestService, type TestService } from './support.js';

const ALERTS = join(APP_DIR, 'deploy/prometheus/alerts.yml');
const PROMETHEUS_CONFIG = join(APP_DIR, 'deploy/prometheus/prometheus.yml');
const DEPLOY = join(APP_DIR, 'deploy');

interface ComposeService {
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  secrets?: string[];
  volumes?: string[];
  depends_on?: Record<string, unknown> | string[];
}

function promtool(args: string[], input?: string) {
  const result = spawnSync('promtool', args, { encoding: 'utf8', input });
  if (result.error)
    throw new Error(`promtool is not installed (apt-get install -y prometheus): ${result.error.message}`);
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

interface AlertRule {
  alert: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function alertRules(): AlertRule[] {
  const document = parse(readFileSync(ALERTS, 'utf8')) as { groups: Array<{ rules: AlertRule[] }> };
  return document.groups.flatMap((group) => group.rules);
}

function dashboardExpressions(dashboard: Record<string, unknown>): Array<{ panel: string; expr: string }> {
  const found: Array<{ panel: string; expr: string }> = [];
  for (const panel of dashboard.panels as Array<{ title: string; targets?: Array<{ expr: string }> }>) {
    for (const target of panel.targets ?? []) found.push({ panel: panel.title, expr: target.expr });
  }
  return found;
}

describe('deploy files', () => {
  let service: TestService;
  let exposition: string;
  let idleMongo: AustaMongoClient | undefined;

  beforeAll(async () => {
    service = await startTestService('standalone');
    if (!service.mongo.enabled) {
      // Without a reachable MongoDB the service runs with Mongo disabled and registers no Mongo metrics; a client
      // that never connects registers them as a service with MONGODB_URL does, so the check still covers them.
      idleMongo = createMongoClient({
        url: 'mongodb://127.0.0.1:9/care',
        metrics: service.metrics,
        name: 'care-api',
      });
    }
    // Touch every kind of route so the exposition holds the series a running service has.
    for (const url of ['/health/live', '/health/ready', '/docs/json', '/not/found']) {
      await service.app.inject({ method: 'GET', url });
    }
    exposition = (await service.app.inject({ method: 'GET', url: '/metrics' })).body;
  });
  afterAll(async () => {
    await idleMongo?.close();
    await service.close();
  });

  it('the alert rules pass promtool check rules', () => {
    const result = promtool(['check', 'rules', ALERTS]);
    expect(result.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(result.status).toBe(0);
  });

  it('the Prometheus config of docker-compose passes promtool check config, rules included', () => {
    const result = promtool(['check', 'config', PROMETHEUS_CONFIG]);
    expect(result.output).toContain('is valid prometheus config file syntax');
    expect(result.status).toBe(0);
  });

  it('every alert has a severity, a summary and a description', () => {
    const rules = alertRules();
    expect(rules.length).toBeGreaterThanOrEqual(8);
    for (const rule of rules) {
      expect(['critical', 'warning', 'info'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
    }
  });

  it('the dashboard JSON parses and is what scripts/dashboard.ts generates', () => {
    const committed = JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8'));
    expect(committed).toEqual(buildDashboard());
    expect(committed.uid).toBe('austa-care-api');
    const ids = (committed.panels as Array<{ id: number }>).map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('every metric the alerts and the dashboard query is one the service exposes', () => {
    const families = new Set(exposedFamilies(exposition).keys());
    expect(families.has('http_server_request_duration_seconds')).toBe(true);
    const uses = [
      ...alertRules().map((rule) => ({ where: `alert ${rule.alert}`, expr: rule.expr })),
      ...dashboardExpressions(buildDashboard()).map((entry) => ({
        where: `panel ${entry.panel}`,
        expr: entry.expr,
      })),
    ];
    const unknown: string[] = [];
    for (const use of uses) {
      const names = promqlMetricNames(use.expr).filter((name) => name !== 'up');
      // `up` is Prometheus' own; every other expression must name at least one of our metrics.
      if (names.length === 0 && !use.expr.includes('up{'))
        unknown.push(`${use.where}: no metric found in ${use.expr}`);
      for (const name of names) {
        if (metricFamily(name, families) === undefined) unknown.push(`${use.where}: ${name}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  it('the exposition passes promtool check metrics, apart from prom-client’s own process gauges', () => {
    const result = promtool(['check', 'metrics'], exposition);
    // prom-client names three gauges *_total (documented in @austa/metrics' README); anything else is ours to fix.
    const problems = result.output
      .split('\n')
      .filter((line) => line.trim() !== '')
      .filter(
        (line) =>
          !/^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/.test(
            line,
          ),
      );
    expect(problems).toEqual([]);
  });
});

/*
 * No Docker engine runs here, so the compose file and the Dockerfile cannot be run by the suite. These checks keep
 * what can be checked without one honest: paths exist, the service's environment is a valid production config, the
 * image is multi-stage, runs as non-root with production dependencies and a health check.
 */
describe('docker-compose.yml and the Dockerfile', () => {
  const compose = parse(readFileSync(join(DEPLOY, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, ComposeService>;
    secrets: Record<string, { file: string }>;
  };

  it('has a Redis Cluster of six nodes, a Mongo replica set, the service and Prometheus', () => {
    const names = Object.keys(compose.services);
    expect(names.filter((name) => /^redis-\d$/.test(name))).toHaveLength(6);
    expect(names).toEqual(
      expect.arrayContaining(['redis-cluster-init', 'mongo', 'care-api', 'prometheus', 'grafana']),
    );
    expect(JSON.stringify(compose.services['redis-cluster-init'])).toContain('--cluster-replicas 1');
    expect(JSON.stringify(compose.services.mongo)).toContain('--replSet');
  });

  it('builds care-api from the repository root with the Dockerfile that exists', () => {
    const build = compose.services['care-api']?.build;
    expect(build).toBeDefined();
    const context = resolve(DEPLOY, build?.context ?? '');
    expect(existsSync(join(context, 'pnpm-workspace.yaml'))).toBe(true);
    expect(existsSync(join(context, build?.dockerfile ?? ''))).toBe(true);
  });

  it('mounts only files that exist in the repository (secrets are generated by secrets.sh)', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0] as string;
        if (source.startsWith('.'))
          expect(existsSync(resolve(DEPLOY, source)), `${name}: ${source}`).toBe(true);
      }
    }
    for (const secret of Object.values(compose.secrets))
      expect(secret.file.startsWith('./secrets/')).toBe(true);
    expect(readFileSync(join(DEPLOY, 'secrets.sh'), 'utf8')).toContain('secrets/data_encryption_keys');
  });

  const files: Record<string, string> = {
    '/run/secrets/session_secret': randomBytes(48).toString('base64'),
    '/run/secrets/data_encryption_keys': `k1:${randomBytes(32).toString('base64')}`,
  };
  const readSecret = (path: string): string => {
    const content = files[path];
    if (content === undefined) throw Object.assign(new Error(path), { code: 'ENOENT' });
    return content;
  };

  it('gives care-api an explicit demo environment: every dependency and secret given, not production (the image runs the DEMO login)', () => {
    const environment = compose.services['care-api']?.environment ?? {};
    // dist/main.js, which the image runs, logs in with the DEMO lookup: it loads its config with demoLogin.
    const config = loadConfig(environment, readSecret, { demoLogin: true });
    expect(config.production).toBe(false);
    expect(config.host).toBe('0.0.0.0');
    expect(config.redis).toMatchObject({
      mode: 'external',
      options: { cluster: { nodes: expect.any(Array) } },
    });
    expect(config.mongo.mode).toBe('external');
    expect(config.sessionSecret.source).toBe('file');
    expect(config.encryption.source).toBe('file');
    const prometheus = readFileSync(PROMETHEUS_CONFIG, 'utf8');
    expect(prometheus).toContain(`care-api:${config.port}`);
  });

  it('the same environment with NODE_ENV=production is refused, naming the user lookup to plug in', () => {
    const environment = { ...compose.services['care-api']?.environment, NODE_ENV: 'production' };
    expect(() => loadConfig(environment, readSecret, { demoLogin: true })).toThrow(
      /NODE_ENV: NODE_ENV=production refuses the DEMO login.*buildApp\(\{ users \}\)/,
    );
    // Everything else about it is a valid production configuration.
    expect(loadConfig(environment, readSecret).production).toBe(true);
  });

  it('the Dockerfile is multi-stage, installs production dependencies only, runs as non-root with a health check', () => {
    const dockerfile = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
    const stages = dockerfile.split(/^FROM /m).slice(1);
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const runtime = stages.at(-1) ?? '';
    expect(dockerfile).toMatch(/deploy --prod/);
    expect(runtime).toMatch(/^USER (?!root)\w+/m);
    expect(runtime).toMatch(/^HEALTHCHECK .*\/health\/live/ms);
    expect(runtime).toMatch(/^CMD \["node", "dist\/main\.js"\]/m);
    expect(runtime).not.toMatch(/pnpm install|devDependencies/);
  });
});

describe('promqlMetricNames', () => {
  it('finds metric names and skips functions, labels, grouping and durations', () => {
    expect(
      promqlMetricNames(
        'histogram_quantile(0.99, sum by (le, service) (rate(http_server_request_duration_seconds_bucket{route!="/metrics"}[5m]))) > 1',
      ),
    ).toEqual(['http_server_request_duration_seconds_bucket']);
    expect(
      promqlMetricNames(
        'sum by (service) (rate(a_total{x=~"5.."}[5m])) / sum by (service) (rate(b_total[$__rate_interval]))',
      ),
    ).toEqual(['a_total', 'b_total']);
    expect(promqlMetricNames('up{job="care-api"} == 0')).toEqual(['up']);
  });
});
