/**
 * The Grafana dashboard, as code: `pnpm --filter @austa/care-api dashboard` writes
 * deploy/grafana/dashboards/care-api.json from the panels below. Commit both; a test checks that the JSON is what this
 * script produces and that every metric it queries is one the service exposes.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const DASHBOARD_PATH = fileURLToPath(
  new URL('../deploy/grafana/dashboards/care-api.json', import.meta.url),
);

// biome-ignore lint/suspicious/noTemplateCurlyInString: a Grafana template variable, not a JavaScript template.
const DS = { type: 'prometheus', uid: '${datasource}' };
const SEL = 'service="$service"';
const RATE = '[$__rate_interval]';

interface PanelSpec {
  title: string;
  unit: string;
  targets: Array<[expr: string, legend: string]>;
  description?: string;
}

const http = (filter = '') => `http_server_request_duration_seconds_count{${SEL}${filter}}`;
const redisOps = (filter = '') =>
  `db_client_operation_duration_seconds_count{${SEL},db_system_name="redis"${filter}}`;

export const ROWS: Array<[title: string, panels: PanelSpec[]]> = [
  [
    'HTTP',
    [
      {
        title: 'Requests per second by route',
        unit: 'reqps',
        targets: [[`sum by (http_route) (rate(${http()}${RATE}))`, '{{http_route}}']],
        description: 'Every request the service answered, by route template.',
      },
      {
        title: 'Error ratio',
        unit: 'percentunit',
        targets: [
          [
            `sum(rate(${http(',http_response_status_code=~"5.."')}${RATE})) / sum(rate(${http()}${RATE}))`,
            '5xx',
          ],
          [
            `sum(rate(${http(',http_response_status_code=~"4.."')}${RATE})) / sum(rate(${http()}${RATE}))`,
            '4xx',
          ],
        ],
        description: '503 means a dependency is down; 429 is the rate limiter.',
      },
      {
        title: 'Latency p50 / p99',
        unit: 's',
        targets: [0.5, 0.99].map((q) => [
          `histogram_quantile(${q}, sum by (le) (rate(http_server_request_duration_seconds_bucket{${SEL},http_route!="/metrics"}${RATE})))`,
          `p${q * 100}`,
        ]),
        description: 'All routes except the scrape itself.',
      },
      {
        title: 'p99 latency by route',
        unit: 's',
        targets: [
          [
            `histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket{${SEL}}${RATE})))`,
            '{{http_route}}',
          ],
        ],
      },
      {
        title: 'Requests in flight',
        unit: 'short',
        targets: [[`sum by (instance) (http_server_active_requests{${SEL}})`, '{{instance}}']],
        description: 'Climbs when a dependency slows down.',
      },
      {
        title: 'Status codes',
        unit: 'reqps',
        targets: [
          [`sum by (http_response_status_code) (rate(${http()}${RATE}))`, '{{http_response_status_code}}'],
        ],
      },
    ],
  ],
  [
    'Redis',
    [
      {
        title: 'Redis p99 by command',
        unit: 's',
        targets: [
          [
            `histogram_quantile(0.99, sum by (le, db_operation_name) (rate(db_client_operation_duration_seconds_bucket{${SEL},db_system_name="redis"}${RATE})))`,
            '{{db_operation_name}}',
          ],
        ],
        description: "The shared histogram of every @austa package's Redis commands.",
      },
      {
        title: 'Redis commands per second and errors',
        unit: 'ops',
        targets: [
          [`sum(rate(${redisOps()}${RATE}))`, 'all'],
          [`sum by (error_type) (rate(${redisOps(',error_type!=""')}${RATE}))`, 'error {{error_type}}'],
        ],
      },
      {
        title: 'Redis connections',
        unit: 'short',
        targets: [[`sum by (role, status) (austa_redis_connections{${SEL}})`, '{{role}} {{status}}']],
      },
      {
        title: 'Reconnects, redirections, cluster retries',
        unit: 'short',
        targets: [
          [`sum by (scope) (increase(austa_redis_reconnects_total{${SEL}}${RATE}))`, 'reconnect {{scope}}'],
          [`sum by (type) (increase(austa_redis_redirections_total{${SEL}}${RATE}))`, 'redirect {{type}}'],
          [
            `sum by (reason) (increase(austa_redis_cluster_retries_total{${SEL}}${RATE}))`,
            'retry {{reason}}',
          ],
        ],
        description: 'Spikes during failovers and slot migrations.',
      },
    ],
  ],
  [
    'MongoDB',
    [
      {
        title: 'MongoDB p99 by command and collection',
        unit: 's',
        targets: [
          [
            `histogram_quantile(0.99, sum by (le, db_operation_name, db_collection_name) (rate(db_client_operation_duration_seconds_bucket{${SEL},db_system_name="mongodb"}${RATE})))`,
            '{{db_operation_name}} {{db_collection_name}}',
          ],
        ],
        description: 'Change-stream getMore polls are kept out of this histogram (they wait by design).',
      },
      {
        title: 'MongoDB commands per second and errors',
        unit: 'ops',
        targets: [
          [
            `sum(rate(db_client_operation_duration_seconds_count{${SEL},db_system_name="mongodb"}${RATE}))`,
            'all',
          ],
          [
            `sum by (error_type) (rate(db_client_operation_duration_seconds_count{${SEL},db_system_name="mongodb",error_type!=""}${RATE}))`,
            'error {{error_type}}',
          ],
        ],
      },
      {
        title: 'Pool: connections and checkout failures',
        unit: 'short',
        targets: [
          [`sum by (state) (austa_mongo_pool_connections{${SEL}})`, '{{state}}'],
          [
            `sum by (reason) (increase(austa_mongo_pool_checkout_failures_total{${SEL}}${RATE}))`,
            'failed {{reason}}',
          ],
        ],
      },
      {
        title: 'Change-stream lag',
        unit: 's',
        targets: [[`max by (stream) (austa_mongo_change_stream_lag_seconds{${SEL}})`, '{{stream}}']],
        description:
          'How far behind the profile-cache invalidation stream is: a write in Mongo is visible in the cache after this.',
      },
      {
        title: 'Change-stream events, restarts and errors',
        unit: 'short',
        targets: [
          [
            `sum by (collection, operation_type) (increase(mongodb_change_stream_events_total{${SEL}}${RATE}))`,
            '{{collection}} {{operation_type}}',
          ],
          [
            `sum by (stream) (increase(austa_mongo_change_stream_restarts_total{${SEL}}${RATE}))`,
            'restart {{stream}}',
          ],
          [
            `sum by (stream, kind) (increase(austa_mongo_change_stream_errors_total{${SEL}}${RATE}))`,
            'error {{stream}} {{kind}}',
          ],
        ],
      },
    ],
  ],
  [
    'Stores: sessions, rate limits, cache, conversations',
    [
      {
        title: 'Logins, logouts and evictions',
        unit: 'short',
        targets: [
          [
            `sum by (operation) (increase(austa_session_operations_total{${SEL},result="ok",operation=~"create_session|delete_session|delete_user_sessions|delete_user_session"}${RATE}))`,
            '{{operation}}',
          ],
          [`sum(increase(austa_session_evictions_total{${SEL}}${RATE}))`, 'evicted (per-user cap)'],
          [
            `sum by (operation) (increase(austa_session_operations_total{${SEL},result="error"}${RATE}))`,
            'error {{operation}}',
          ],
        ],
        description: 'Sessions opened and ended; evictions mean users hit the per-user session cap.',
      },
      {
        title: 'Rate-limit rejections',
        unit: 'reqps',
        targets: [
          [
            `sum by (limiter) (rate(austa_rate_limit_decisions_total{${SEL},result!="allowed"}${RATE}))`,
            'rejected {{limiter}}',
          ],
          [
            `sum by (limiter, reason) (rate(austa_rate_limit_fallbacks_total{${SEL}}${RATE}))`,
            'answered without Redis {{limiter}} {{reason}}',
          ],
        ],
        description:
          '`ip` is the per-address limit, `assistant` the per-user one. Fallbacks mean Redis was not answering.',
      },
      {
        title: 'Profile cache hit rate',
        unit: 'percentunit',
        targets: [
          [
            `sum by (tier) (rate(austa_cache_requests_total{${SEL},result=~"hit|stale"}${RATE})) / sum by (tier) (rate(austa_cache_requests_total{${SEL}}${RATE}))`,
            '{{tier}}',
          ],
          [`sum(rate(austa_cache_degraded_total{${SEL}}${RATE}))`, 'degraded answers/s'],
        ],
        description: 'l1 is process memory, l2 Redis; a miss in both reads MongoDB.',
      },
      {
        title: 'Assistant messages',
        unit: 'short',
        targets: [
          [`sum by (role) (increase(austa_conversation_messages_total{${SEL}}${RATE}))`, '{{role}}'],
          [
            `sum(increase(austa_conversation_trimmed_messages_total{${SEL}}${RATE}))`,
            'trimmed into summaries',
          ],
        ],
      },
    ],
  ],
  [
    'Process',
    [
      {
        title: 'Event loop lag p99',
        unit: 's',
        targets: [[`max by (instance) (nodejs_eventloop_lag_p99_seconds{${SEL}})`, '{{instance}}']],
      },
      {
        title: 'Memory',
        unit: 'bytes',
        targets: [
          [`sum by (instance) (process_resident_memory_bytes{${SEL}})`, 'rss {{instance}}'],
          [`sum by (instance) (nodejs_heap_size_used_bytes{${SEL}})`, 'heap {{instance}}'],
        ],
      },
      {
        title: 'CPU',
        unit: 'percentunit',
        targets: [[`sum by (instance) (rate(process_cpu_seconds_total{${SEL}}${RATE}))`, '{{instance}}']],
      },
      {
        title: 'Metrics folded into "other"',
        unit: 'short',
        targets: [
          [
            `sum by (metric) (increase(austa_metrics_cardinality_overflow_total{${SEL}}${RATE}))`,
            '{{metric}}',
          ],
        ],
        description: 'Should stay at zero; anything else is a label with unbounded values.',
      },
    ],
  ],
];

export function buildDashboard(): Record<string, unknown> {
  const panels: Array<Record<string, unknown>> = [];
  let id = 1;
  let y = 0;
  for (const [title, specs] of ROWS) {
    panels.push({
      type: 'row',
      title,
      id: id++,
      collapsed: false,
      gridPos: { h: 1, w: 24, x: 0, y },
      panels: [],
    });
    y += 1;
    specs.forEach((spec, index) => {
      panels.push({
        type: 'timeseries',
        title: spec.title,
        id: id++,
        datasource: DS,
        description: spec.description ?? '',
        gridPos: { h: 8, w: 12, x: 12 * (index % 2), y: y + 8 * Math.floor(index / 2) },
        fieldConfig: { defaults: { unit: spec.unit }, overrides: [] },
        options: { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
        targets: spec.targets.map(([expr, legendFormat], target) => ({
          datasource: DS,
          expr,
          legendFormat,
          refId: String.fromCharCode(65 + target),
        })),
      });
    });
    y += 8 * Math.ceil(specs.length / 2);
  }
  const serviceQuery = 'label_values(http_server_request_duration_seconds_count, service)';
  return {
    uid: 'austa-care-api',
    title: 'care-api',
    description: 'The @austa reference service: HTTP, Redis and process metrics from its /metrics.',
    tags: ['austa', 'care-api'],
    schemaVersion: 39,
    version: 1,
    editable: true,
    time: { from: 'now-1h', to: 'now' },
    refresh: '30s',
    templating: {
      list: [
        { name: 'datasource', type: 'datasource', query: 'prometheus', label: 'Data source' },
        {
          name: 'service',
          type: 'query',
          datasource: DS,
          label: 'Service',
          query: { query: serviceQuery, refId: 'service' },
          definition: serviceQuery,
          current: { text: 'care-api', value: 'care-api' },
          refresh: 2,
        },
      ],
    },
    panels,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(DASHBOARD_PATH, `${JSON.stringify(buildDashboard(), null, 2)}\n`);
  console.log(`wrote ${DASHBOARD_PATH}`);
}
