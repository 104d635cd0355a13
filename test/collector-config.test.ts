// The Collector configs in otel-collector/: merged the way `otelcol-contrib
// --config=A --config=B` merges them, expanded the way it expands
// ${env:VAR:-default}, then checked for what the Collector itself would reject
// (undefined or unused components, unknown settings) and for what promotel
// needs (the agent's port, OTLP's ports, memory_limiter first, batch last).
// No Collector binary can run here, so the check is this file's own; the
// negative cases below show that it does reject what it should.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { DEFAULTS } from '../src/config';
import { ROOT } from './helpers';

const DIR = join(ROOT, 'otel-collector');
const BASE = 'collector.yaml';
const SETS = ['all', 'debug', 'otlphttp', 'prometheusremotewrite'];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function load(rel: string): Obj {
  const doc = parse(readFileSync(join(DIR, rel), 'utf8')) as unknown;
  assert.ok(isObj(doc), `${rel} is not a YAML mapping`);
  return doc;
}

/** The Collector's default merge of several --config sources: maps merge key by key, anything else (lists too) is replaced by the later file. */
function merge(a: Json, b: Json): Json {
  if (isObj(a) && isObj(b)) {
    const out: Obj = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = k in out ? merge(out[k]!, v) : v;
    return out;
  }
  return b;
}

/** ${env:VAR} and ${env:VAR:-default} in string values, $$ for a literal $: what the Collector's env provider does. */
function expand(v: Json, env: Record<string, string>, seen: Set<string>): Json {
  if (typeof v === 'string') {
    return v.replace(/\$\$|\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (m, name: string | undefined, def: string | undefined) => {
      if (m === '$$') return '$';
      seen.add(name!);
      const val = env[name!];
      return val !== undefined && val !== '' ? val : (def ?? '');
    });
  }
  if (Array.isArray(v)) return v.map((x) => expand(x, env, seen));
  if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, expand(x, env, seen)]));
  return v;
}

function resolved(set: string | undefined, env: Record<string, string> = {}): { config: Obj; vars: Set<string> } {
  const vars = new Set<string>();
  const merged = set === undefined ? load(BASE) : merge(load(BASE), load(`exporters/${set}.yaml`));
  return { config: expand(merged, env, vars) as Obj, vars };
}

// ---- the settings each component documents (its README in the Collector repositories) ----
// 'any' accepts any value below it; an object lists the keys allowed there; [schema] is a list of them.
type Schema = 'any' | { [key: string]: Schema } | [Schema];

const TLS: Schema = 'any';
const scrapeConfig: Schema = {
  job_name: 'any',
  scrape_interval: 'any',
  scrape_timeout: 'any',
  metrics_path: 'any',
  scheme: 'any',
  params: 'any',
  honor_labels: 'any',
  honor_timestamps: 'any',
  sample_limit: 'any',
  basic_auth: 'any',
  authorization: 'any',
  tls_config: 'any',
  static_configs: [{ targets: 'any', labels: 'any' }],
  file_sd_configs: 'any',
  kubernetes_sd_configs: 'any',
  relabel_configs: 'any',
  metric_relabel_configs: 'any',
};

const COMPONENTS: Record<'receivers' | 'processors' | 'exporters' | 'extensions', Record<string, Schema>> = {
  receivers: {
    prometheus: {
      config: { global: 'any', scrape_configs: [scrapeConfig] },
      trim_metric_suffixes: 'any',
      use_start_time_metric: 'any',
      start_time_metric_regex: 'any',
      target_allocator: 'any',
      api_server: 'any',
    },
    otlp: {
      protocols: {
        grpc: {
          endpoint: 'any',
          transport: 'any',
          tls: TLS,
          max_recv_msg_size_mib: 'any',
          max_concurrent_streams: 'any',
          read_buffer_size: 'any',
          write_buffer_size: 'any',
          keepalive: 'any',
          auth: 'any',
          include_metadata: 'any',
        },
        http: {
          endpoint: 'any',
          tls: TLS,
          cors: 'any',
          auth: 'any',
          include_metadata: 'any',
          max_request_body_size: 'any',
          traces_url_path: 'any',
          metrics_url_path: 'any',
          logs_url_path: 'any',
        },
      },
    },
  },
  processors: {
    memory_limiter: { check_interval: 'any', limit_mib: 'any', spike_limit_mib: 'any', limit_percentage: 'any', spike_limit_percentage: 'any' },
    batch: { send_batch_size: 'any', timeout: 'any', send_batch_max_size: 'any', metadata_keys: 'any', metadata_cardinality_limit: 'any' },
  },
  exporters: {
    debug: { verbosity: 'any', sampling_initial: 'any', sampling_thereafter: 'any', use_internal_logger: 'any' },
    otlphttp: {
      endpoint: 'any',
      metrics_endpoint: 'any',
      traces_endpoint: 'any',
      logs_endpoint: 'any',
      compression: 'any',
      encoding: 'any',
      headers: 'any',
      timeout: 'any',
      tls: TLS,
      auth: 'any',
      proxy_url: 'any',
      read_buffer_size: 'any',
      write_buffer_size: 'any',
      retry_on_failure: 'any',
      sending_queue: 'any',
    },
    prometheusremotewrite: {
      endpoint: 'any',
      headers: 'any',
      timeout: 'any',
      tls: TLS,
      auth: 'any',
      compression: 'any',
      namespace: 'any',
      external_labels: 'any',
      resource_to_telemetry_conversion: 'any',
      add_metric_suffixes: 'any',
      send_metadata: 'any',
      max_batch_size_bytes: 'any',
      remote_write_queue: 'any',
      retry_on_failure: 'any',
      target_info: 'any',
      export_created_metric: 'any',
      wal: 'any',
    },
  },
  extensions: {
    health_check: { endpoint: 'any', path: 'any', tls: TLS, check_collector_pipeline: 'any', response_body: 'any' },
  },
};

function checkSchema(value: Json, schema: Schema, path: string, errors: string[]): void {
  if (schema === 'any') return;
  if (Array.isArray(schema)) {
    if (!Array.isArray(value)) return void errors.push(`${path} must be a list`);
    value.forEach((item, i) => checkSchema(item, schema[0], `${path}[${i}]`, errors));
    return;
  }
  if (value === null) return; // an empty section: the component's defaults
  if (!isObj(value)) return void errors.push(`${path} must be a mapping`);
  for (const [k, v] of Object.entries(value)) {
    const sub = schema[k];
    if (sub === undefined) errors.push(`${path}.${k} is not a documented setting`);
    else checkSchema(v, sub, `${path}.${k}`, errors);
  }
}

const typeOf = (id: string): string => id.split('/')[0]!;

/** Everything the Collector would refuse, plus promotel's own rules for its pipelines. */
function check(config: Obj): string[] {
  const errors: string[] = [];
  for (const k of Object.keys(config)) {
    if (!['receivers', 'processors', 'exporters', 'extensions', 'connectors', 'service'].includes(k)) errors.push(`unknown top-level section ${k}`);
  }
  const kinds = ['receivers', 'processors', 'exporters', 'extensions'] as const;
  const defined: Record<(typeof kinds)[number], Obj> = { receivers: {}, processors: {}, exporters: {}, extensions: {} };
  for (const kind of kinds) {
    const section = config[kind];
    if (section === undefined) continue;
    if (!isObj(section)) {
      errors.push(`${kind} must be a mapping`);
      continue;
    }
    defined[kind] = section;
    for (const [id, body] of Object.entries(section)) {
      const schema = COMPONENTS[kind][typeOf(id)];
      if (!schema) errors.push(`${kind}.${id}: no such component in the allow-list`);
      else checkSchema(body, schema, `${kind}.${id}`, errors);
    }
  }
  const service = isObj(config.service) ? config.service : {};
  for (const k of Object.keys(service)) if (!['extensions', 'pipelines', 'telemetry'].includes(k)) errors.push(`service.${k} is not a documented setting`);
  const used = new Set<string>();
  const extList = service.extensions ?? [];
  if (!Array.isArray(extList)) errors.push('service.extensions must be a list');
  else
    for (const e of extList) {
      if (typeof e !== 'string' || !(e in defined.extensions)) errors.push(`service.extensions names undefined extension ${String(e)}`);
      used.add(`extensions/${String(e)}`);
    }
  const pipelines = isObj(service.pipelines) ? service.pipelines : {};
  if (Object.keys(pipelines).length === 0) errors.push('service.pipelines is empty');
  for (const [name, p] of Object.entries(pipelines)) {
    if (!['traces', 'metrics', 'logs'].includes(typeOf(name))) errors.push(`pipeline ${name}: type must be traces, metrics or logs`);
    if (!isObj(p)) {
      errors.push(`pipeline ${name} must be a mapping`);
      continue;
    }
    for (const k of Object.keys(p)) if (!['receivers', 'processors', 'exporters'].includes(k)) errors.push(`pipeline ${name}.${k} is not a documented setting`);
    for (const kind of ['receivers', 'processors', 'exporters'] as const) {
      const list = p[kind] ?? [];
      if (!Array.isArray(list) || !list.every((x): x is string => typeof x === 'string')) {
        errors.push(`pipeline ${name}.${kind} must be a list of names`);
        continue;
      }
      if (kind !== 'processors' && list.length === 0) errors.push(`pipeline ${name} has no ${kind}`);
      if (new Set(list).size !== list.length) errors.push(`pipeline ${name}.${kind} names a component twice`);
      for (const id of list) {
        if (!(id in defined[kind])) errors.push(`pipeline ${name} uses undefined ${kind.slice(0, -1)} ${id}`);
        used.add(`${kind}/${id}`);
      }
      if (kind === 'processors') {
        if (list[0] !== 'memory_limiter') errors.push(`pipeline ${name}: memory_limiter must be the first processor (got ${list.join(', ') || 'none'})`);
        if (list[list.length - 1] !== 'batch') errors.push(`pipeline ${name}: batch must be the last processor (got ${list.join(', ') || 'none'})`);
      }
    }
  }
  for (const kind of kinds) for (const id of Object.keys(defined[kind])) if (!used.has(`${kind}/${id}`)) errors.push(`${kind}.${id} is defined but no pipeline uses it`);
  return errors;
}

const portOf = (hostPort: string): number => Number(/:(\d+)$/.exec(hostPort)?.[1]);

test('the exporter sets in otel-collector/exporters are exactly the documented ones', () => {
  const files = readdirSync(join(DIR, 'exporters')).filter((f) => f.endsWith('.yaml')).sort();
  assert.deepEqual(files, SETS.map((s) => `${s}.yaml`));
  const readme = readFileSync(join(DIR, 'README.md'), 'utf8');
  for (const s of SETS) assert.ok(readme.includes(`exporters/${s}.yaml`), `README.md does not mention exporters/${s}.yaml`);
});

for (const set of SETS) {
  test(`collector.yaml + exporters/${set}.yaml is a complete, valid configuration`, () => {
    const { config } = resolved(set, { OTELCOL_OTLPHTTP_ENDPOINT: 'http://gateway:4318', OTELCOL_REMOTE_WRITE_URL: 'http://prometheus:9090/api/v1/write' });
    assert.deepEqual(check(config), []);

    const pipelines = (config.service as Obj).pipelines as Obj;
    assert.deepEqual(Object.keys(pipelines).sort(), ['metrics/otlp', 'metrics/scrape']);
    const exporters = Object.keys(config.exporters as Obj).sort();
    assert.deepEqual(exporters, set === 'all' ? ['debug', 'otlphttp', 'prometheusremotewrite'] : [set]);
    for (const p of Object.values(pipelines) as Obj[]) assert.deepEqual([...(p.exporters as string[])].sort(), exporters);

    // The ports: the agent's default metrics port, OTLP's gRPC and HTTP ports.
    const prom = (config.receivers as Obj).prometheus as Obj;
    const scrape = ((prom.config as Obj).scrape_configs as Obj[])[0]!;
    const targets = (scrape.static_configs as Obj[]).flatMap((s) => s.targets as string[]);
    assert.deepEqual(targets, [`localhost:${DEFAULTS.port}`]);
    assert.equal(DEFAULTS.port, 9000);
    assert.equal(scrape.metrics_path, '/metrics');
    const otlp = ((config.receivers as Obj).otlp as Obj).protocols as Obj;
    assert.equal((otlp.grpc as Obj).endpoint, '0.0.0.0:4317');
    assert.equal((otlp.http as Obj).endpoint, '0.0.0.0:4318');
    assert.equal(portOf((otlp.grpc as Obj).endpoint as string), 4317);
    assert.equal(portOf((otlp.http as Obj).endpoint as string), 4318);
  });
}

test('the exporter endpoints come from the environment', () => {
  const { config, vars } = resolved('all', {
    OTELCOL_OTLPHTTP_ENDPOINT: 'http://gateway:4318',
    OTELCOL_REMOTE_WRITE_URL: 'http://mimir:8080/api/v1/push',
    OTELCOL_DEBUG_VERBOSITY: 'detailed',
    PROMOTEL_TARGET: '10.0.0.7:9100',
    OTELCOL_LISTEN_HOST: '127.0.0.1',
  });
  const ex = config.exporters as Record<string, Obj>;
  assert.equal(ex.otlphttp!.endpoint, 'http://gateway:4318');
  assert.equal(ex.prometheusremotewrite!.endpoint, 'http://mimir:8080/api/v1/push');
  assert.equal(ex.debug!.verbosity, 'detailed');
  const prom = (config.receivers as Obj).prometheus as Obj;
  assert.deepEqual((((prom.config as Obj).scrape_configs as Obj[])[0]!.static_configs as Obj[])[0]!.targets, ['10.0.0.7:9100']);
  assert.equal((((config.receivers as Obj).otlp as Obj).protocols as Record<string, Obj>).grpc!.endpoint, '127.0.0.1:4317');
  // Without them, the required endpoints are empty (the Collector then refuses to start) and the rest falls back to defaults.
  const bare = resolved('all').config.exporters as Record<string, Obj>;
  assert.equal(bare.otlphttp!.endpoint, '');
  assert.equal(bare.prometheusremotewrite!.endpoint, '');
  assert.equal(bare.debug!.verbosity, 'basic');
  // Every variable the files read is documented in the README's table.
  const readme = readFileSync(join(DIR, 'README.md'), 'utf8');
  assert.deepEqual(
    [...vars].sort(),
    ['OTELCOL_DEBUG_VERBOSITY', 'OTELCOL_LISTEN_HOST', 'OTELCOL_OTLPHTTP_ENDPOINT', 'OTELCOL_REMOTE_WRITE_URL', 'PROMOTEL_SCRAPE_INTERVAL', 'PROMOTEL_TARGET'],
  );
  for (const v of vars) assert.match(readme, new RegExp(`\\| \`${v}\` \\|`), `README.md's table lacks ${v}`);
});

test('collector.yaml alone is incomplete: its pipelines have no exporters', () => {
  assert.deepEqual(check(resolved(undefined).config), ['pipeline metrics/scrape has no exporters', 'pipeline metrics/otlp has no exporters']);
});

test('the check rejects what the Collector would reject', () => {
  const good = (): Obj => structuredClone(resolved('debug').config);
  const cases: Array<[string, (c: Obj) => void, string]> = [
    ['a misspelt setting', (c) => (((c.processors as Obj).memory_limiter as Obj).limit_mb = 100), 'processors.memory_limiter.limit_mb is not a documented setting'],
    ['an unknown nested setting', (c) => ((((c.receivers as Obj).otlp as Obj).protocols as Obj).grpc = { endpoint: '0.0.0.0:4317', port: 4317 }), 'receivers.otlp.protocols.grpc.port is not a documented setting'],
    [
      'an unknown scrape setting',
      (c) => ((((((c.receivers as Obj).prometheus as Obj).config as Obj).scrape_configs as Obj[])[0]!).interval = '15s'),
      'receivers.prometheus.config.scrape_configs[0].interval is not a documented setting',
    ],
    ['an undefined exporter', (c) => ((((c.service as Obj).pipelines as Obj)['metrics/otlp'] as Obj).exporters = ['debug', 'otlp/backend']), 'pipeline metrics/otlp uses undefined exporter otlp/backend'],
    ['an unused exporter', (c) => ((c.exporters as Obj)['debug/extra'] = { verbosity: 'detailed' }), 'exporters.debug/extra is defined but no pipeline uses it'],
    ['an unused extension', (c) => ((c.service as Obj).extensions = []), 'extensions.health_check is defined but no pipeline uses it'],
    ['batch before memory_limiter', (c) => ((((c.service as Obj).pipelines as Obj)['metrics/scrape'] as Obj).processors = ['batch', 'memory_limiter']), 'pipeline metrics/scrape: memory_limiter must be the first processor (got batch, memory_limiter)'],
    ['no processors', (c) => ((((c.service as Obj).pipelines as Obj)['metrics/scrape'] as Obj).processors = []), 'pipeline metrics/scrape: memory_limiter must be the first processor (got none)'],
    ['a component outside the allow-list', (c) => ((c.processors as Obj).transform = {}), 'processors.transform: no such component in the allow-list'],
  ];
  for (const [what, mutate, expected] of cases) {
    const c = good();
    mutate(c);
    assert.ok(check(c).includes(expected), `${what}: expected "${expected}", got ${JSON.stringify(check(c))}`);
  }
});

test('merging replaces lists and merges maps, as the Collector does', () => {
  assert.deepEqual(merge({ a: { x: [1, 2], y: 1 } }, { a: { x: [3], z: 2 } }), { a: { x: [3], y: 1, z: 2 } });
  assert.equal(expand('${env:A:-d}/${env:B}/$${env:A}', { A: '' }, new Set()), 'd//${env:A}');
  assert.equal(expand('${env:A:-0.0.0.0}:4317', { A: '10.1.2.3' }, new Set()), '10.1.2.3:4317');
});
