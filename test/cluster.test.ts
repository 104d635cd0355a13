// node:cluster: one endpoint on the primary with every worker's data.
// Counters and histograms are summed, gauges kept per worker, and a worker
// that dies neither takes its counts with it nor leaves its gauges behind.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { ScopeMetrics } from '@opentelemetry/sdk-metrics';
import { fromWire, toWire } from '../src/cluster';
import { parseNetDev } from '../src/instrumentations/network';
import { FIXTURES, eventually, freePort, get, pythonParse, samplesOf, startApp, type Family } from './helpers';

const APP = join(FIXTURES, 'cluster-app.js');

function hit(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });
}

function served(families: Family[]): number {
  return samplesOf(families, 'http_server_request_duration_seconds_count').reduce((a, s) => a + s.value, 0);
}

/** Each duration series' labels and count, for a failure message. */
function servedBy(families: Family[]): string {
  return samplesOf(families, 'http_server_request_duration_seconds_count').map((s) => `${JSON.stringify(s.labels)} ${s.value}`).join(', ');
}

test('3 workers behind one port: the scraped count is exactly N, and never goes down when a worker is killed', async () => {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(APP, { env: { PORT: String(appPort), WORKERS: '3', PROMOTEL_CLUSTER_PUSH_INTERVAL: '100', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  const scrape = async (): Promise<Family[]> => { const r = await get(`http://127.0.0.1:${metricsPort}/metrics`); if (r.status !== 200) throw new Error(`scrape ${r.status}: ${r.body} stderr: ${app.stderr()}`); return pythonParse(r.body); };
  try {
    await eventually(async () => (app.stdout().match(/listening/g) ?? []).length === 3, 15_000);
    const N = 60;
    const answeredBy = new Set<string>();
    for (let i = 0; i < N; i++) answeredBy.add(await hit(appPort));
    assert.ok(answeredBy.size >= 2, `requests reached ${[...answeredBy].join(', ')}: the test needs the load spread`);

    let families = await eventually(async () => {
      const f = await scrape();
      // Thrown, not returned: a timeout then says what was last served.
      if (served(f) !== N) throw new Error(`served ${served(f)} of ${N}: ${servedBy(f)}; stdout: ${app.stdout()} stderr: ${app.stderr()}`);
      return f;
    }, 10_000);
    // Gauges are per process: the primary and each worker.
    const workers = samplesOf(families, 'process_memory_usage_bytes').map((s) => s.labels.worker).sort();
    assert.deepEqual(workers, ['1', '2', '3', 'primary']);
    // A heap is one process's too, every size of it, as the recording rules compare it with that process's limit.
    for (const name of ['v8js_memory_heap_used_bytes', 'v8js_memory_heap_space_size_bytes', 'v8js_memory_heap_space_available_size_bytes', 'v8js_memory_heap_space_physical_size_bytes', 'v8js_memory_heap_size_limit_bytes']) {
      assert.deepEqual([...new Set(samplesOf(families, name).map((s) => s.labels.worker))].sort(), ['1', '2', '3', 'primary'], name);
    }
    assert.equal(samplesOf(families, 'http_server_active_requests').filter((s) => s.value !== 0).length, 0);
    // The host is measured once, by the primary: its counters are not summed over the workers.
    assert.deepEqual([...new Set(samplesOf(families, 'system_memory_usage_bytes').map((s) => s.labels.worker))], ['primary']);
    const net = parseNetDev(readFileSync('/proc/net/dev', 'utf8'));
    for (const s of samplesOf(families, 'system_network_io_bytes_total')) {
      const now = net.find((c) => c.device === s.labels.system_device)!;
      assert.ok(s.value <= now[s.labels.network_io_direction as 'receive' | 'transmit'].bytes, `${s.labels.system_device}: ${s.value} is more than the host's own count`);
    }
    assert.equal(app.stderr(), '');

    const victim = /worker 2 pid (\d+) listening/.exec(app.stdout());
    assert.ok(victim, app.stdout());
    process.kill(Number(victim[1]), 'SIGKILL');
    await app.waitFor(/worker 2 exited SIGKILL/);
    await app.waitFor(/worker 4 pid \d+ listening/);
    for (let i = 0; i < 10; i++) {
      families = await scrape();
      assert.ok(served(families) >= N, `count went down to ${served(families)} after a worker died`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const M = 30;
    for (let i = 0; i < M; i++) await hit(appPort);
    families = await eventually(async () => {
      const f = await scrape();
      if (served(f) !== N + M) throw new Error(`served ${served(f)} of ${N + M}: ${servedBy(f)}; stdout: ${app.stdout()} stderr: ${app.stderr()}`);
      return f;
    }, 10_000);
    // The dead worker's gauges are gone, its replacement's are there.
    assert.deepEqual(samplesOf(families, 'process_memory_usage_bytes').map((s) => s.labels.worker).sort(), ['1', '3', '4', 'primary']);
    // The app's message listeners saw the app's own messages, and none of the agent's pushes (dozens by now).
    const messages = app.stdout().split('\n').filter((l) => /message/.test(l));
    assert.deepEqual(messages.filter((l) => !/\{"hello":\d\}$/.test(l)), []);
    assert.equal(messages.length, 7, messages.join('\n'));
  } finally {
    app.kill();
  }
});

test('workers that leave the cluster still exit by themselves, and so does the primary, as without the agent', async () => {
  for (const preload of ['none', 'require'] as const) {
    const app = startApp(APP, { preload, env: { WORKERS: '2', IDLE_WORKERS: '1', NO_RESPAWN: '1', PROMOTEL_CLUSTER_PUSH_INTERVAL: '100', OTEL_EXPORTER_PROMETHEUS_PORT: '0', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
    const exit = await Promise.race([app.exited, new Promise((r) => setTimeout(() => r('still running after 15 s'), 15_000))]);
    app.kill();
    assert.deepEqual(exit, { code: 0, signal: null }, preload);
    assert.match(app.stdout(), /worker 1 exited 0/);
    assert.match(app.stdout(), /worker 2 exited 0/);
  }
});

test('meters that differ only by schema URL stay apart when the primary sums its workers', async () => {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(APP, { env: { PORT: String(appPort), WORKERS: '2', NO_RESPAWN: '1', SCHEMA_METERS: '1', PROMOTEL_CLUSTER_PUSH_INTERVAL: '100', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  try {
    await eventually(async () => (app.stdout().match(/listening/g) ?? []).length === 2, 15_000);
    // Each worker added 1 under 1.20.0 and 2 under 1.30.0.
    const expected = ['https://opentelemetry.io/schemas/1.20.0 2', 'https://opentelemetry.io/schemas/1.30.0 4'];
    let counts: string[] = [];
    await eventually(async () => {
      const families = pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
      counts = samplesOf(families, 'c_total').map((s) => `${s.labels.otel_scope_schema_url} ${s.value}`).sort();
      return counts.join() === expected.join();
    }, 10_000).catch(() => undefined);
    assert.deepEqual(counts, expected);
    assert.equal(app.stderr(), '');
  } finally {
    app.kill();
  }
});

test('workers that never answer (started without the agent) cost one scrape a 1 s wait, not every scrape', async () => {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(APP, { env: { PORT: String(appPort), WORKERS: '2', NO_RESPAWN: '1', BARE_WORKERS: '1', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  try {
    await eventually(async () => (app.stdout().match(/listening/g) ?? []).length === 2, 15_000);
    const times: number[] = [];
    for (let i = 0; i < 4; i++) {
      const started = Date.now();
      assert.equal((await get(`http://127.0.0.1:${metricsPort}/metrics`)).status, 200);
      times.push(Date.now() - started);
    }
    assert.ok(times[0]! >= 900, `the first scrape waits for the workers: ${times}`);
    assert.ok(times.slice(1).every((t) => t < 500), `later scrapes do not: ${times}`);
  } finally {
    app.kill();
  }
});

test('NaN and ±Infinity reach the primary as themselves over the JSON IPC channel, and a value that is none is skipped, not a failed scrape', () => {
  const point = (value: unknown) => ({ attributes: {}, startTime: [0, 0], endTime: [0, 0], value });
  const histogram = { buckets: { boundaries: [1], counts: [0, 2] }, count: 2, sum: Infinity, min: 2, max: Infinity };
  const sent = [{ scope: { name: 's' }, metrics: [{ descriptor: { name: 'm' }, dataPoints: [point(NaN), point(-Infinity), point(0.5), point(histogram)] }] }] as unknown as ScopeMetrics[];
  // What node:child_process does to a message by default.
  const received = JSON.parse(JSON.stringify(toWire(sent))) as ScopeMetrics[];
  const values = received[0]!.metrics[0]!.dataPoints.map((p) => fromWire(p.value));
  assert.deepEqual(values, [NaN, -Infinity, 0.5, histogram]);
  assert.notEqual(values[3], histogram, 'a copy the merge may add to');
  // Without the strings, JSON leaves null: read as no value.
  assert.equal(fromWire(JSON.parse(JSON.stringify(NaN))), undefined);
  // The data collected is left as it was.
  assert.ok(Number.isNaN((sent[0]!.metrics[0]!.dataPoints[0] as { value: number }).value));
});

/** Starts cluster-leave.js; resolves with a scrape of its primary once every worker has left. */
async function leaveAndScrape(env: Record<string, string>): Promise<{ families: Family[]; body: string; stderr: string }> {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  // A push interval longer than the test: what the primary has, it got as the workers left.
  const app = startApp(join(FIXTURES, 'cluster-leave.js'), { env: { PORT: String(appPort), PROMOTEL_CLUSTER_PUSH_INTERVAL: '600000', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', ...env } });
  try {
    await app.waitFor(/all left/, 20_000);
    const { body } = await get(`http://127.0.0.1:${metricsPort}/metrics`);
    return { families: pythonParse(body), body, stderr: app.stderr() };
  } finally {
    app.kill();
  }
}

test('workers that leave with disconnect(), from either side, hand the primary every count, also when they lived shorter than a push interval', async () => {
  const { families } = await leaveAndScrape({ WORKERS: '4', REQUESTS: '15' });
  const clientCount = samplesOf(families, 'http_client_request_duration_seconds_count').reduce((a, s) => a + s.value, 0);
  assert.equal(clientCount, 60, 'the workers\' fetch() requests');
  assert.equal(served(families), 60, 'the primary\'s own server');
});

test('the primary holds the merged series of all its workers, dead ones included, to PROMOTEL_CARDINALITY_LIMIT, as one process would', async () => {
  // 3 generations of 2 workers, 30 label values each: 180 label sets against a limit of 20.
  const { families, stderr } = await leaveAndScrape({ WORKERS: '2', GENERATIONS: '3', VALUES: '30', PROMOTEL_CARDINALITY_LIMIT: '20' });
  const jobs = samplesOf(families, 'jobs_total');
  assert.equal(jobs.length, 20);
  assert.equal(jobs.filter((s) => s.labels.otel_metric_overflow === 'true').length, 1);
  assert.equal(jobs.reduce((a, s) => a + s.value, 0), 180, 'nothing is lost: the rest is in the overflow series');
  assert.match(stderr, /promotel warn: metric jobs reached its cardinality limit/);
});

test('the primary\'s gauges carry worker="primary" from its first fork on, also when no worker ever reported', async () => {
  const { families } = await leaveAndScrape({ WORKERS: '2', LEAVE: 'exit' });
  const rss = samplesOf(families, 'process_memory_usage_bytes');
  assert.deepEqual(rss.map((s) => s.labels.worker), ['primary']);
});
