// prometheus/: promtool must accept the scrape configs and the rules and pass
// the rules' unit tests; then a real Prometheus, configured from
// prometheus/prometheus.yml and loaded with prometheus/rules, scrapes the demo
// under the agent, and every query of prometheus/grafana-dashboard.json must
// return data from it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { DEMO, ROOT, eventually, freePort, get, startApp, startPrometheus, type App, type Prometheus } from './helpers';

const PROM_DIR = join(ROOT, 'prometheus');
const RULES = join(PROM_DIR, 'rules', 'promotel.rules.yml');
const work = mkdtempSync(join(tmpdir(), 'promotel-assets-'));
const cleanups: Array<() => Promise<void> | void> = [() => rmSync(work, { recursive: true, force: true })];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function promtool(args: string[], cwd = PROM_DIR): { code: number | null; out: string } {
  const res = spawnSync('promtool', args, { cwd, encoding: 'utf8', timeout: 60_000 });
  if (res.error) throw res.error;
  return { code: res.status, out: `${res.stdout}${res.stderr}`.trim() };
}

function assertPromtool(args: string[], cwd?: string): string {
  const { code, out } = promtool(args, cwd);
  assert.equal(code, 0, `promtool ${args.join(' ')} failed:\n${out}`);
  assert.doesNotMatch(out, /FAILED|error/i, `promtool ${args.join(' ')} complained:\n${out}`);
  return out;
}

type Obj = Record<string, unknown>;
interface ScrapeConfig extends Obj {
  job_name: string;
  static_configs?: Array<{ targets: string[] }>;
  kubernetes_sd_configs?: unknown[];
  file_sd_configs?: unknown[];
}
const loadConfig = (): Obj & { scrape_configs: ScrapeConfig[]; global: Obj; rule_files: string[] } => parse(readFileSync(join(PROM_DIR, 'prometheus.yml'), 'utf8'));

/** Debian's Prometheus 2.42 is built without Kubernetes service discovery; an upstream build has it. */
function promtoolKnowsKubernetes(): boolean {
  const f = join(work, 'k8s-probe.yml');
  writeFileSync(f, 'scrape_configs:\n  - job_name: probe\n    kubernetes_sd_configs:\n      - role: pod\n');
  return promtool(['check', 'config', '--syntax-only', f]).code === 0;
}

/** The same config with Kubernetes discovery swapped for a file of the same targets, everything else (relabeling included) untouched. */
function withFileDiscovery(config: ReturnType<typeof loadConfig>, podsFile: string): ReturnType<typeof loadConfig> {
  const copy = structuredClone(config);
  for (const sc of copy.scrape_configs) {
    if (sc.kubernetes_sd_configs) {
      delete sc.kubernetes_sd_configs;
      sc.file_sd_configs = [{ files: [podsFile], refresh_interval: '1s' }];
    }
  }
  return copy;
}

test('promtool accepts the scrape configs', (t) => {
  const config = loadConfig();
  assert.deepEqual(
    config.scrape_configs.map((s) => s.job_name),
    ['promotel', 'kubernetes-pods'],
  );
  assert.ok(config.scrape_configs[1]!.kubernetes_sd_configs, 'the kubernetes-pods job uses kubernetes_sd_configs');
  if (promtoolKnowsKubernetes()) {
    assertPromtool(['check', 'config', 'prometheus.yml']);
  } else {
    t.diagnostic('this promtool has no Kubernetes discovery (Debian build): checking prometheus.yml with it swapped for file discovery');
    const podsFile = join(work, 'check-pods.json');
    writeFileSync(podsFile, '[]');
    const swapped = withFileDiscovery(config, podsFile);
    swapped.rule_files = [RULES];
    const f = join(work, 'prometheus-check.yml');
    writeFileSync(f, stringify(swapped));
    const out = assertPromtool(['check', 'config', f]);
    assert.match(out, /SUCCESS: 10 rules found/);
  }
  assert.match(assertPromtool(['check', 'config', '--agent', 'agent.yml']), /SUCCESS/);
});

test('promtool accepts the rules and their unit tests pass', () => {
  assert.match(assertPromtool(['check', 'rules', 'rules/promotel.rules.yml']), /SUCCESS: 10 rules found/);
  assert.match(assertPromtool(['test', 'rules', 'tests/promotel.test.yml']), /SUCCESS/);
  // The checks are not vacuous: a rule with a broken expression and a unit test expecting the wrong value both fail.
  const bad = join(work, 'bad.rules.yml');
  writeFileSync(bad, 'groups:\n  - name: x\n    rules:\n      - record: x\n        expr: sum by (job) (rate(http_server_request_duration_seconds_count[5m])\n');
  assert.notEqual(promtool(['check', 'rules', bad]).code, 0);
  const unit = parse(readFileSync(join(PROM_DIR, 'tests', 'promotel.test.yml'), 'utf8')) as { rule_files: string[]; tests: Array<{ promql_expr_test: Array<{ exp_samples: Array<{ value: number }> }> }> };
  unit.rule_files = [RULES];
  unit.tests[0]!.promql_expr_test[1]!.exp_samples[0]!.value = 0.2;
  const wrong = join(work, 'wrong.test.yml');
  writeFileSync(wrong, stringify(unit));
  const res = promtool(['test', 'rules', wrong]);
  assert.notEqual(res.code, 0);
  assert.match(res.out, /job:http_server_request_errors:ratio_rate5m/);
});

interface Target {
  labels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
  health: string;
  lastError: string;
}

test('a real Prometheus configured from prometheus/ scrapes the demo; every dashboard query returns data', async () => {
  const appPort = await freePort();
  const metricsPort = await freePort();
  const app: App = startApp(DEMO, {
    // A small young generation, so that the traffic below causes garbage collections and the GC panel has data.
    execArgv: ['--max-semi-space-size=1'],
    env: { PORT: String(appPort), HOST: '127.0.0.1', INSTANCE: 'demo-1', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort) },
  });
  cleanups.push(() => app.kill());
  await app.waitFor(/demo listening/);
  await eventually(async () => (await get(`http://127.0.0.1:${metricsPort}/metrics`)).status === 200);

  // What Kubernetes pod discovery yields for the pod of examples/kubernetes/demo.yaml (one
  // target per container port, named by __meta_kubernetes_* labels), with the pod at
  // 127.0.0.1 and its metrics annotation moved to this test's free port; plus a pod
  // without the scrape annotation and a finished one, which the relabeling must drop.
  const [deployment] = parseAllDocuments(readFileSync(join(ROOT, 'examples', 'kubernetes', 'demo.yaml'), 'utf8')).map((d) => d.toJS());
  const template = deployment.spec.template as { metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: { containers: Array<{ name: string; ports: Array<{ name: string; containerPort: number }> }> } };
  const sanitize = (s: string): string => s.replace(/[^a-zA-Z0-9_]/g, '_');
  const portMap = new Map([[8080, appPort], [9000, metricsPort]]);
  const podTargets = (name: string, phase: string, annotations: Record<string, string>): Array<{ targets: string[]; labels: Record<string, string> }> =>
    template.spec.containers.flatMap((c) =>
      c.ports.map((p) => {
        const labels: Record<string, string> = {
          __meta_kubernetes_namespace: 'default',
          __meta_kubernetes_pod_name: name,
          __meta_kubernetes_pod_ip: '127.0.0.1',
          __meta_kubernetes_pod_phase: phase,
          __meta_kubernetes_pod_ready: 'true',
          __meta_kubernetes_pod_container_name: c.name,
          __meta_kubernetes_pod_container_port_name: p.name,
          __meta_kubernetes_pod_container_port_number: String(portMap.get(p.containerPort)),
          __meta_kubernetes_pod_container_port_protocol: 'TCP',
        };
        for (const [k, v] of Object.entries(template.metadata.labels)) {
          labels[`__meta_kubernetes_pod_label_${sanitize(k)}`] = v;
          labels[`__meta_kubernetes_pod_labelpresent_${sanitize(k)}`] = 'true';
        }
        for (const [k, v] of Object.entries(annotations)) {
          labels[`__meta_kubernetes_pod_annotation_${sanitize(k)}`] = v;
          labels[`__meta_kubernetes_pod_annotationpresent_${sanitize(k)}`] = 'true';
        }
        return { targets: [`127.0.0.1:${portMap.get(p.containerPort)}`], labels };
      }),
    );
  assert.equal(template.metadata.annotations['prometheus.io/port'], '9000');
  const annotations: Record<string, string> = { ...template.metadata.annotations, 'prometheus.io/port': String(metricsPort) };
  const { 'prometheus.io/scrape': _scrape, ...unannotated } = annotations;
  const podsFile = join(work, 'pods.json');
  writeFileSync(
    podsFile,
    JSON.stringify([
      ...podTargets('promotel-demo-7d9f-abcde', 'Running', annotations),
      ...podTargets('promotel-demo-7d9f-fghij', 'Running', unannotated),
      ...podTargets('promotel-demo-7d9f-done1', 'Succeeded', annotations),
    ]),
  );

  const config = withFileDiscovery(loadConfig(), podsFile);
  config.global = { ...config.global, scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' };
  config.rule_files = [RULES];
  const staticJob = config.scrape_configs.find((s) => s.job_name === 'promotel')!;
  assert.deepEqual(staticJob.static_configs, [{ targets: ['localhost:9000'] }]);
  staticJob.static_configs = [{ targets: [`127.0.0.1:${metricsPort}`] }];
  const prom: Prometheus = await startPrometheus(stringify(config));
  cleanups.push(() => prom.stop());

  const scalar = async (expr: string): Promise<number | undefined> => {
    const r = await prom.query(expr);
    return r.length === 1 ? Number(r[0]!.value[1]) : undefined;
  };
  const traffic = async (): Promise<void> => {
    for (let i = 0; i < 10; i++) assert.equal((await get(`http://127.0.0.1:${appPort}/q`)).status, 200);
    for (let i = 0; i < 5; i++) assert.equal((await get(`http://127.0.0.1:${appPort}/upstream`)).status, 200);
  };
  // Two bursts a few scrapes apart, so every rate() has an increase inside its window.
  await traffic();
  for (const job of ['promotel', 'kubernetes-pods']) {
    await eventually(async () => (await scalar(`sum(http_server_request_duration_seconds_count{job="${job}"})`)) === 20, 30_000, 250);
  }
  await traffic();
  for (const job of ['promotel', 'kubernetes-pods']) {
    await eventually(async () => (await scalar(`sum(http_server_request_duration_seconds_count{job="${job}"})`)) === 40, 30_000, 250);
  }

  // Kubernetes discovery + relabeling: exactly the annotated, running pod, at its annotated port and path.
  const targets = JSON.parse((await get(`${prom.url}/api/v1/targets?state=active`)).body) as { data: { activeTargets: Target[] } };
  const k8s = targets.data.activeTargets.filter((t) => t.scrapePool === 'kubernetes-pods');
  assert.equal(k8s.length, 1, JSON.stringify(k8s));
  assert.equal(k8s[0]!.scrapeUrl, `http://127.0.0.1:${metricsPort}/metrics`);
  assert.deepEqual(k8s[0]!.labels, {
    app_kubernetes_io_name: 'promotel-demo',
    instance: `127.0.0.1:${metricsPort}`,
    job: 'kubernetes-pods',
    namespace: 'default',
    pod: 'promotel-demo-7d9f-abcde',
  });
  assert.equal(k8s[0]!.health, 'up', k8s[0]!.lastError);

  // Exact counts, seen the same through both jobs. The demo's own `instance` label is kept as exported_instance.
  for (const job of ['promotel', 'kubernetes-pods']) {
    assert.equal(await scalar(`sum(http_server_request_duration_seconds_count{job="${job}", http_response_status_code="200", http_request_method="GET"})`), 40);
    assert.equal(await scalar(`sum(http_client_request_duration_seconds_count{job="${job}", http_response_status_code="200"})`), 10);
    const own = await prom.query(`http_requests_total{job="${job}"}`);
    assert.deepEqual(
      own.map((s) => [s.metric.exported_instance, s.metric.instance, s.metric.status_code, Number(s.value[1])]),
      [['demo-1', `127.0.0.1:${metricsPort}`, '200', 40]],
    );
    assert.equal(await scalar(`up{job="${job}"}`), 1);
  }

  // rate() over the GC histogram needs two scrapes of it after the first collection.
  await eventually(async () => ((await scalar('max(count_over_time(v8js_gc_duration_seconds_count{job="promotel"}[1m]))')) ?? 0) >= 2, 30_000, 250);

  // The recording rules evaluate without error on the agent's real series.
  await eventually(async () => (await scalar('job:http_server_request_errors:ratio_rate5m{job="promotel"}')) === 0, 15_000, 250);
  const heap = await scalar('instance:v8js_memory_heap_used:ratio{job="promotel"}');
  assert.ok(heap !== undefined && heap > 0 && heap < 1, `heap ratio ${heap}`);
  const eld = await scalar('instance:nodejs_eventloop_delay_p99_seconds:max{job="promotel"}');
  assert.ok(eld !== undefined && eld > 0 && eld < 1, `event-loop delay p99 ${eld}`);
  const p99 = await scalar('job:http_server_request_duration_seconds:p99_rate5m{job="promotel"}');
  assert.ok(p99 !== undefined && p99 > 0 && p99 < 5, `latency p99 ${p99}`);
  assert.ok(((await scalar('job:http_server_requests:rate5m{job="promotel"}')) ?? 0) > 0);
  const rules = JSON.parse((await get(`${prom.url}/api/v1/rules`)).body) as { data: { groups: Array<{ name: string; rules: Array<{ name: string; health: string; lastError?: string }> }> } };
  assert.deepEqual(rules.data.groups.map((g) => g.name).sort(), ['promotel-alerts', 'promotel-http', 'promotel-runtime']);
  for (const g of rules.data.groups) for (const r of g.rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
  const firing = await prom.query('ALERTS{alertstate="firing"}');
  assert.deepEqual(firing, []);

  // The dashboard: template variables first, then every panel query with them substituted.
  const dash = JSON.parse(readFileSync(join(PROM_DIR, 'grafana-dashboard.json'), 'utf8')) as {
    templating: { list: Array<{ name: string; type: string; query?: string | { query: string } }> };
    panels: Array<{ title: string; type: string; panels?: unknown[]; targets?: Array<{ expr: string; refId: string }> }>;
  };
  const vars = Object.fromEntries(dash.templating.list.map((v) => [v.name, v]));
  assert.deepEqual(Object.keys(vars), ['datasource', 'job', 'instance']);
  const labelValues = async (q: string, subst: (s: string) => string): Promise<string[]> => {
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(subst(q));
    assert.ok(m, `unexpected variable query ${q}`);
    const r = await prom.query(`group by (${m[2]}) (${m[1]})`);
    return r.map((s) => s.metric[m[2]!]!).sort();
  };
  const varQuery = (name: string): string => {
    const q = vars[name]!.query!;
    return typeof q === 'string' ? q : q.query;
  };
  assert.deepEqual(await labelValues(varQuery('job'), (s) => s), ['kubernetes-pods', 'promotel']);
  const job = 'promotel';
  const instance = `127.0.0.1:${metricsPort}`;
  assert.deepEqual(await labelValues(varQuery('instance'), (s) => s.replaceAll('$job', job)), [instance]);

  const subst = (expr: string): string =>
    expr
      .replaceAll('$__rate_interval', '1m')
      .replaceAll('$job', job)
      // A multi-value variable in =~ is a regex: Grafana escapes it the same way.
      .replaceAll('$instance', instance.replaceAll('.', '\\\\.'));
  const queries = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId, expr: subst(t.expr) })));
  assert.equal(queries.length, 20);
  const results = new Map<string, Array<{ metric: Record<string, string>; value: [number, string] }>>();
  for (const q of queries) {
    assert.doesNotMatch(q.expr, /\$/, `${q.panel}/${q.refId}: unsubstituted variable in ${q.expr}`);
    const r = await prom.query(q.expr);
    assert.ok(r.length > 0, `${q.panel}/${q.refId} returned no data: ${q.expr}`);
    for (const s of r) assert.ok(Number.isFinite(Number(s.value[1])), `${q.panel}/${q.refId} returned ${s.value[1]}: ${q.expr}`);
    results.set(`${q.panel}/${q.refId}`, r);
  }
  const only = (key: string): number => {
    const r = results.get(key)!;
    assert.equal(r.length, 1, `${key}: ${JSON.stringify(r)}`);
    return Number(r[0]!.value[1]);
  };
  // Exact where the truth is known: no 5xx, nothing in flight, one target up, this Node.js.
  assert.equal(only('Error ratio (5xx)/A'), 0);
  assert.equal(only('Active requests/A'), 0);
  assert.equal(only('Targets up/A'), 1);
  assert.equal(only('Targets up/B'), 1);
  assert.deepEqual(results.get('Node.js version/A')!.map((s) => s.metric.version), [process.version]);
  assert.deepEqual(results.get('Requests per second/A')!.map((s) => [s.metric.http_request_method, s.metric.http_response_status_code]), [['GET', '200']]);
  assert.ok(only('Requests per second/A') > 0);
  assert.deepEqual(results.get('Outgoing requests per second/A')!.map((s) => [s.metric.server_address, s.metric.server_port]), [['127.0.0.1', String(appPort)]]);
  const [p50, p90, p99d] = ['A', 'B', 'C'].map((r) => only(`Latency p50 / p90 / p99/${r}`));
  assert.ok(p50! > 0 && p50! <= p90! && p90! <= p99d!, `quantiles ${p50} ${p90} ${p99d}`);
  const heapShare = only('Heap used vs limit/A');
  assert.ok(heapShare > 0 && heapShare < 1);
  assert.ok(results.get('CPU/A')!.some((s) => s.metric.process_cpu_state === 'user'));
});
