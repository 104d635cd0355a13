// The demo service under the agent, end to end: known traffic in, exact
// counts out, checked by the Python client's parser, by promtool and by a real
// Prometheus server scraping the endpoint.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { DEMO, type App, eventually, freePort, get, promtoolCheck, pythonParse, sampleValue, startApp, startPrometheus } from './helpers';

const GETS = 7;
const POSTS = 3;
const MISSES = 2;

function send(port: number, method: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the demo service with the agent preloaded', () => {
  let app: App;
  let appPort: number;
  let metricsPort: number;
  let metricsUrl: string;

  before(async () => {
    appPort = await freePort();
    metricsPort = await freePort();
    metricsUrl = `http://127.0.0.1:${metricsPort}`;
    app = startApp(DEMO, { env: { PORT: String(appPort), HOST: '127.0.0.1', INSTANCE: 'demo-1', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
    await app.waitFor(/demo listening/);
    const statuses: number[] = [];
    for (let i = 0; i < GETS; i++) statuses.push(await send(appPort, 'GET', '/q'));
    for (let i = 0; i < POSTS; i++) statuses.push(await send(appPort, 'POST', '/q'));
    for (let i = 0; i < MISSES; i++) statuses.push(await send(appPort, 'GET', `/missing/${i}`));
    statuses.push(await send(appPort, 'PROPFIND', '/q'));
    assert.deepEqual(statuses, [...Array(GETS).fill(200), ...Array(POSTS).fill(405), ...Array(MISSES).fill(404), 405]);
  });

  after(() => app.kill());

  test('GET /q answers 200 with an x-correlation-id header', async () => {
    const res = await get(`http://127.0.0.1:${appPort}/q`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('x-correlation-id') ?? '', /^[0-9a-f-]{36}$/);
  });

  test('the scrape has exact request counts, by the app itself and by the agent', async () => {
    const res = await get(`${metricsUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const families = pythonParse(res.body);
    // The app's own counter, made with @opentelemetry/api only.
    assert.equal(sampleValue(families, 'http_requests_total', { instance: 'demo-1', status_code: '405' }), POSTS + 1);
    assert.equal(sampleValue(families, 'http_requests_total', { instance: 'demo-1', status_code: '404' }), MISSES);
    // The agent's server histogram, stable semantic conventions; no raw paths, unknown methods folded.
    // Subtests run in order: the header test above added one GET /q.
    assert.equal(sampleValue(families, 'http_requests_total', { instance: 'demo-1', status_code: '200' }), GETS + 1);
    const series = families.find((f) => f.name === 'http_server_request_duration_seconds')!.samples.filter((s) => s.name.endsWith('_count'));
    const byKey = Object.fromEntries(
      series.map((s) => [`${s.labels.http_request_method} ${s.labels.http_response_status_code} ${s.labels.error_type ?? '-'} ${s.labels.http_route ?? '-'} ${s.labels.network_protocol_version}`, s.value]),
    );
    assert.deepEqual(byKey, { 'GET 200 - - 1.1': GETS + 1, 'POST 405 - - 1.1': POSTS, 'GET 404 - - 1.1': MISSES, '_OTHER 405 - - 1.1': 1 });
    for (const s of series) assert.equal(s.labels.url_scheme, 'http');
    assert.equal(sampleValue(families, 'http_server_active_requests', { http_request_method: 'GET', url_scheme: 'http' }), 0);
  });

  test('the histogram buckets are cumulative and end in +Inf equal to the count', async () => {
    const families = pythonParse((await get(`${metricsUrl}/metrics`)).body);
    const h = families.find((f) => f.name === 'http_server_request_duration_seconds')!;
    const labels = { http_request_method: 'POST', http_response_status_code: '405' };
    const buckets = h.samples.filter((s) => s.name.endsWith('_bucket') && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    assert.deepEqual(buckets.map((b) => b.labels.le), ['0.005', '0.01', '0.025', '0.05', '0.075', '0.1', '0.25', '0.5', '0.75', '1', '2.5', '5', '7.5', '10', '+Inf']);
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value);
    assert.equal(buckets.at(-1)!.value, POSTS);
  });

  test('an outgoing request is measured as http.client.request.duration', async () => {
    assert.equal((await get(`http://127.0.0.1:${appPort}/upstream`)).status, 200);
    const families = pythonParse((await get(`${metricsUrl}/metrics`)).body);
    assert.equal(
      sampleValue(families, 'http_client_request_duration_seconds_count', { http_request_method: 'GET', server_address: '127.0.0.1', server_port: String(appPort), http_response_status_code: '200' }),
      1,
    );
  });

  test('target_info describes the service, and runtime and host metrics are there with sane values', async () => {
    const families = pythonParse((await get(`${metricsUrl}/metrics`)).body);
    const info = families.find((f) => f.name === 'target_info')!.samples[0]!;
    assert.equal(info.labels.service_name, 'promotel-demo');
    assert.match(info.labels.service_instance_id!, /^[0-9a-f-]{36}$/);
    assert.equal(info.labels.process_runtime_name, 'nodejs');
    assert.ok(info.labels.host_name);
    const [major, minor, patch] = process.versions.node.split('.');
    assert.equal(sampleValue(families, 'nodejs_version_info', { version: process.version, major: major!, minor: minor!, patch: patch! }), 1);
    assert.ok(sampleValue(families, 'v8js_memory_heap_used_bytes', { v8js_heap_space_name: 'old_space' })! > 0);
    assert.ok(sampleValue(families, 'v8js_memory_heap_size_limit_bytes')! > 100e6);
    assert.ok(sampleValue(families, 'process_memory_usage_bytes')! > 10e6);
    assert.ok(sampleValue(families, 'system_memory_usage_bytes', { system_memory_state: 'used' })! > 0);
    const utilization = sampleValue(families, 'nodejs_eventloop_utilization_ratio')!;
    assert.ok(utilization >= 0 && utilization <= 1, String(utilization));
  });

  test('promtool check metrics finds nothing to say', async () => {
    assert.equal(promtoolCheck((await get(`${metricsUrl}/metrics`)).body), '');
  });

  test('the endpoint: / equals /metrics, HEAD, 405 with Allow, 404, /healthz, gzip, OpenMetrics by Accept', async () => {
    const root = await get(`${metricsUrl}/`);
    assert.equal(root.status, 200);
    assert.match(root.body, /^# HELP target_info /);
    const head = await fetch(`${metricsUrl}/metrics`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    assert.equal(head.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const post = await get(`${metricsUrl}/metrics`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.equal((await get(`${metricsUrl}/nope`)).status, 404);
    const health = await get(`${metricsUrl}/healthz`);
    assert.deepEqual([health.status, health.body], [200, 'ok\n']);
    const zipped = await new Promise<{ encoding: string | undefined; body: string }>((resolve, reject) => {
      request(`${metricsUrl}/metrics`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ encoding: res.headers['content-encoding'], body: gunzipSync(Buffer.concat(chunks)).toString() }));
      })
        .on('error', reject)
        .end();
    });
    assert.equal(zipped.encoding, 'gzip');
    assert.match(zipped.body, /^http_requests_total\{instance="demo-1",status_code="404",otel_scope_name="promotel-demo"\} 2$/m);
    const om = await get(`${metricsUrl}/metrics`, { headers: { accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' } });
    assert.equal(om.headers.get('content-type'), 'application/openmetrics-text; version=1.0.0; charset=utf-8');
    assert.ok(om.body.endsWith('# EOF\n'));
    const omFamilies = pythonParse(om.body, true);
    assert.equal(sampleValue(omFamilies, 'http_requests_total', { instance: 'demo-1', status_code: '404' }), MISSES);
  });

  test('a real Prometheus server scrapes it: up == 1 and the exact request count', async () => {
    const prom = await startPrometheus(
      [
        'global:',
        '  scrape_interval: 1s',
        'scrape_configs:',
        '  - job_name: promotel-demo',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${metricsPort}']`,
      ].join('\n'),
    );
    try {
      const up = await eventually(async () => {
        const r = await prom.query('up{job="promotel-demo"}');
        return r.length === 1 && r[0]!.value[1] === '1' ? r : undefined;
      }, 30_000, 250);
      assert.equal(up[0]!.metric.instance, `127.0.0.1:${metricsPort}`);
      const r = await eventually(async () => {
        const res = await prom.query('http_requests_total{job="promotel-demo",status_code="404"}');
        return res.length === 1 ? res : undefined;
      }, 30_000, 250);
      // The app's own `instance` label meets the target's: Prometheus keeps it as exported_instance.
      assert.equal(r[0]!.metric.exported_instance, 'demo-1');
      assert.equal(r[0]!.value[1], String(MISSES));
      const post = await prom.query('sum(http_server_request_duration_seconds_count{job="promotel-demo",http_request_method="POST"})');
      assert.equal(post[0]!.value[1], String(POSTS));
    } finally {
      await prom.stop();
    }
  });
});
