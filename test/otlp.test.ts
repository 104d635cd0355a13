// OTLP push (OTEL_METRICS_EXPORTER=otlp or prometheus,otlp) against a fake
// collector on 127.0.0.1: exact values arrive, the exporter backs off on 503,
// an unreachable collector is one warning and nothing else, and a finishing
// batch job pushes its last numbers within a bounded time.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, ROOT, eventually, freePort, get, selfSignedCert, startApp } from './helpers';

interface Received {
  at: number;
  path: string;
  contentType: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** `firstDelayMs`: how long the first export waits for its answer (a slow collector). */
async function collector(statuses: number[] = [], firstDelayMs = 0): Promise<{ server: Server; url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ at: Date.now(), path: req.url ?? '', contentType: req.headers['content-type'] ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      res.statusCode = statuses.shift() ?? 200;
      setTimeout(() => res.end(res.statusCode === 200 ? '{}' : 'refused'), received.length === 1 ? firstDelayMs : 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${port}`, received };
}

interface JsonPoint {
  asInt?: string | number;
  asDouble?: number;
  count?: string | number;
  attributes?: Array<{ key: string; value: Record<string, unknown> }>;
}
interface JsonMetric {
  name: string;
  sum?: { dataPoints: JsonPoint[] };
  histogram?: { dataPoints: JsonPoint[] };
}

/** metric name -> its data points, from an OTLP/JSON export body. */
function metricsOf(body: Buffer): Map<string, JsonPoint[]> {
  const doc = JSON.parse(body.toString()) as { resourceMetrics: Array<{ scopeMetrics: Array<{ metrics: JsonMetric[] }> }> };
  const out = new Map<string, JsonPoint[]>();
  for (const rm of doc.resourceMetrics) for (const sm of rm.scopeMetrics) for (const m of sm.metrics) out.set(m.name, (m.sum ?? m.histogram)?.dataPoints ?? []);
  return out;
}

/** metric name -> its unit, from an OTLP/JSON export body. */
function unitsOf(body: Buffer): Map<string, string> {
  const doc = JSON.parse(body.toString()) as { resourceMetrics: Array<{ scopeMetrics: Array<{ metrics: Array<{ name: string; unit?: string }> }> }> };
  return new Map(doc.resourceMetrics.flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics.map((m) => [m.name, m.unit ?? ''] as [string, string]))));
}

const agentLines = (stderr: string): string[] => stderr.split('\n').filter((l) => l.startsWith('promotel '));

test('http/json: the app counter and the HTTP histogram arrive with exact values, and :9000 still serves', async () => {
  const otel = await collector();
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'otlp-app.js'), {
    env: {
      PORT: String(appPort),
      OTEL_METRICS_EXPORTER: 'prometheus,otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: otel.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_METRIC_EXPORT_INTERVAL: '200',
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
      OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
    },
  });
  try {
    await app.waitFor(/listening/);
    for (let i = 0; i < 3; i++) await get(`http://127.0.0.1:${appPort}/`);
    const last = await eventually(async () => {
      const r = otel.received.at(-1);
      if (!r) return undefined;
      const m = metricsOf(r.body);
      const count = (m.get('http.server.request.duration') ?? []).reduce((a, p) => a + Number(p.count), 0);
      return count === 3 ? m : undefined;
    }, 10_000);
    assert.equal(otel.received[0]!.path, '/v1/metrics');
    assert.match(otel.received[0]!.contentType, /^application\/json/);
    const jobs = last.get('jobs.done')!;
    assert.equal(jobs.length, 1);
    assert.equal(Number(jobs[0]!.asInt ?? jobs[0]!.asDouble), 4);
    assert.deepEqual(jobs[0]!.attributes, [{ key: 'queue', value: { stringValue: 'mail' } }]);
    // The units host-metrics leaves out are pushed as a scrape shows them (system_memory_usage_bytes).
    const units = await eventually(async () => {
      const u = unitsOf(otel.received.at(-1)!.body);
      return u.has('system.memory.usage') && u.has('process.memory.usage') ? u : undefined;
    }, 10_000);
    assert.deepEqual(['system.memory.usage', 'system.memory.utilization', 'process.memory.usage', 'process.cpu.utilization'].map((n) => units.get(n)), ['By', '1', 'By', '1']);
    const scrape = (await get(`http://127.0.0.1:${metricsPort}/metrics`)).body;
    assert.match(scrape, /^jobs_done_total\{queue="mail",otel_scope_name="jobs"\} 4$/m);
    // The pushes themselves are not the app's outgoing traffic.
    assert.doesNotMatch(scrape, /^http_client_request_duration_seconds/m);
    assert.deepEqual(agentLines(app.stderr()), []);
  } finally {
    app.kill();
    otel.server.close();
  }
});

test('promotel.shutdown() while a push is in flight still pushes the last numbers', async () => {
  // The first export waits 1.5 s for its answer; shutdown() comes while it does.
  const otel = await collector([], 1500);
  const index = join(ROOT, 'dist', 'src', 'index.js');
  const script = `
    const p = require(${JSON.stringify(index)});
    p.start({ exporters: ['otlp'], otlpProtocol: 'http/json', otlpEndpoint: '${otel.url}/v1/metrics', exportIntervalMs: 300, runtimeMetrics: false, hostMetrics: false });
    const c = require('@opentelemetry/api').metrics.getMeter('jobs').createCounter('jobs.done');
    c.add(1);
    setTimeout(async () => { c.add(100); await p.shutdown(); console.log('stopped'); }, 600);`;
  const app = startApp('-e', { preload: 'none', args: [script], cwd: ROOT });
  try {
    assert.deepEqual(await app.exited, { code: 0, signal: null });
    assert.equal(app.stdout(), 'stopped\n');
    const values = otel.received.map((r) => metricsOf(r.body).get('jobs.done')?.map((p) => Number(p.asInt ?? p.asDouble)));
    assert.deepEqual(values.at(-1), [101], JSON.stringify(values));
  } finally {
    app.kill();
    otel.server.close();
  }
});

test('http/protobuf is the default protocol; OTEL_METRICS_EXPORTER=otlp alone opens no port', async () => {
  const otel = await collector();
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'otlp-app.js'), {
    env: { PORT: String(appPort), OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: otel.url, OTEL_METRIC_EXPORT_INTERVAL: '200', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort) },
  });
  try {
    await app.waitFor(/listening/);
    const r = await eventually(async () => otel.received[0], 10_000);
    assert.equal(r.contentType, 'application/x-protobuf');
    assert.ok(r.body.includes(Buffer.from('jobs.done')), 'the protobuf body names the app counter');
    await assert.rejects(get(`http://127.0.0.1:${metricsPort}/metrics`));
  } finally {
    app.kill();
    otel.server.close();
  }
});

test('a collector answering 503 is retried with backoff until it takes the data, without a warning', async () => {
  const otel = await collector([503, 503]);
  const appPort = await freePort();
  const app = startApp(join(FIXTURES, 'otlp-app.js'), {
    env: { PORT: String(appPort), OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: otel.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_METRIC_EXPORT_INTERVAL: '300', OTEL_EXPORTER_OTLP_TIMEOUT: '10000' },
  });
  try {
    await app.waitFor(/listening/);
    await eventually(async () => otel.received.length >= 3, 15_000);
    const [a, b, c] = otel.received;
    // The exporter's backoff starts near 1 s (with jitter) and grows; our own 300 ms ticks are skipped while it retries.
    assert.ok(b!.at - a!.at >= 700, `first retry after ${b!.at - a!.at} ms`);
    assert.ok(c!.at - b!.at >= 1000, `second retry after ${c!.at - b!.at} ms`);
    assert.deepEqual(agentLines(app.stderr()), []);
  } finally {
    app.kill();
    otel.server.close();
  }
});

test('an unreachable collector: one warning naming it, and the app serves as before', async () => {
  const deadPort = await freePort();
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'otlp-app.js'), {
    env: {
      PORT: String(appPort),
      OTEL_METRICS_EXPORTER: 'prometheus,otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${deadPort}`,
      OTEL_METRIC_EXPORT_INTERVAL: '100',
      OTEL_EXPORTER_OTLP_TIMEOUT: '300',
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
      OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
    },
  });
  try {
    await app.waitFor(/listening/);
    await app.waitFor(/OTLP export/);
    for (let i = 0; i < 20; i++) {
      assert.equal((await get(`http://127.0.0.1:${appPort}/`)).body, 'ok\n');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await get(`http://127.0.0.1:${metricsPort}/metrics`)).status, 200);
    assert.deepEqual(agentLines(app.stderr()), [
      `promotel warn: OTLP export to http://127.0.0.1:${deadPort}/v1/metrics failed: ${agentLines(app.stderr())[0]!.split(' failed: ')[1]!.split(';')[0]}; the next push is in 100 ms, the application is unaffected: check OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) and that a collector listens there`,
    ]);
  } finally {
    app.kill();
  }
});

test('a batch job that ends pushes its last numbers at exit; with no collector it still exits promptly', async () => {
  const otel = await collector();
  const job = startApp(join(FIXTURES, 'otlp-batch.js'), {
    env: { OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: otel.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_METRIC_EXPORT_INTERVAL: '60000' },
  });
  try {
    assert.deepEqual(await job.exited, { code: 0, signal: null });
    assert.equal(otel.received.length, 1);
    const [point] = metricsOf(otel.received[0]!.body).get('batch.items')!;
    assert.equal(Number(point!.asInt ?? point!.asDouble), 7);
  } finally {
    job.kill();
    otel.server.close();
  }

  const deadPort = await freePort();
  const started = Date.now();
  const orphan = startApp(join(FIXTURES, 'otlp-batch.js'), {
    env: { OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${deadPort}`, OTEL_EXPORTER_OTLP_TIMEOUT: '1000' },
  });
  const exit = await Promise.race([orphan.exited, new Promise((r) => setTimeout(() => r('still running after 10 s'), 10_000))]);
  orphan.kill();
  assert.deepEqual(exit, { code: 0, signal: null });
  // Bounded by OTEL_EXPORTER_OTLP_TIMEOUT (1 s) plus process start-up, far below the 10 s an unbounded retry would take.
  assert.ok(Date.now() - started < 6000, `exit took ${Date.now() - started} ms`);
  assert.equal(agentLines(orphan.stderr()).length, 1);
});

test("the exit push never takes a call from the app's own 'beforeExit' listener; it may add one", async () => {
  const otel = await collector();
  try {
    const runs: string[] = [];
    for (const work of ['', '1', 'late']) {
      for (const exporter of ['none', 'otlp']) {
        const app = startApp(join(FIXTURES, 'before-exit.js'), {
          env: { LISTENER_WORK: work, OTEL_METRICS_EXPORTER: exporter, OTEL_EXPORTER_OTLP_ENDPOINT: otel.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_METRIC_EXPORT_INTERVAL: '60000' },
        });
        assert.deepEqual(await app.exited, { code: 0, signal: null });
        assert.equal(app.stderr(), '');
        runs.push(`work=${work || 'none'} ${exporter}: ${app.stdout().trim()}`);
      }
    }
    // A listener whose first run queues work (a last log flush) gets its second call, as without the agent.
    assert.deepEqual(runs, [
      'work=none none: beforeExit ran 1 times',
      'work=none otlp: beforeExit ran 2 times', // the README says so
      'work=1 none: beforeExit ran 2 times',
      'work=1 otlp: beforeExit ran 2 times',
      'work=late none: beforeExit ran 2 times',
      'work=late otlp: beforeExit ran 2 times',
    ]);
    assert.equal(otel.received.length, 3, 'one exit push per OTLP run');
  } finally {
    otel.server.close();
  }
});

test('bad OTLP variables: one line each from promotel, none from the SDK, and the push goes where the lines say', async () => {
  const otel = await collector();
  const appPort = await freePort();
  const app = startApp(join(FIXTURES, 'otlp-app.js'), {
    env: {
      PORT: String(appPort),
      OTEL_METRICS_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: otel.url.replace('http://', ''),
      OTEL_EXPORTER_OTLP_ENDPOINT: otel.url,
      OTEL_EXPORTER_OTLP_TIMEOUT: 'abc',
      OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: '0',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-team=a%20b,x-bad=%ZZ',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'HTTP/JSON',
      OTEL_METRIC_EXPORT_INTERVAL: '200',
    },
  });
  try {
    await app.waitFor(/listening/);
    const r = await eventually(async () => otel.received[0], 10_000);
    assert.equal(r.path, '/v1/metrics');
    assert.match(r.contentType, /^application\/json/);
    assert.equal(r.headers['x-team'], 'a b');
    assert.equal(r.headers['x-bad'], undefined);
    assert.deepEqual(agentLines(app.stderr()), [
      `promotel warn: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=${JSON.stringify(otel.url.replace('http://', ''))} is invalid: write a URL with http:// or https://; using ${otel.url}/v1/metrics from OTEL_EXPORTER_OTLP_ENDPOINT`,
      'promotel warn: OTEL_EXPORTER_OTLP_METRICS_TIMEOUT="0" is invalid: use milliseconds from 100 to 600000; using 10000',
      'promotel warn: OTEL_EXPORTER_OTLP_TIMEOUT="abc" is invalid: use milliseconds from 100 to 600000; using 10000',
      'promotel warn: OTEL_EXPORTER_OTLP_HEADERS is invalid in part: header "x-bad" has a bad percent escape: write % as %25; that header is not sent, the others are (values are not shown: they may be credentials)',
    ]);
  } finally {
    app.kill();
    otel.server.close();
  }
});

test('OTEL_EXPORTER_OTLP_ENDPOINT without a scheme: one line naming what is used, and the failure names the same target', async () => {
  const deadPort = await freePort();
  const app = startApp(join(FIXTURES, 'otlp-batch.js'), {
    env: { OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: `127.0.0.1:${deadPort}`, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: '', OTEL_EXPORTER_OTLP_TIMEOUT: '300' },
  });
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  const lines = agentLines(app.stderr());
  assert.equal(lines[0], `promotel warn: OTEL_EXPORTER_OTLP_ENDPOINT="127.0.0.1:${deadPort}" is invalid: write a URL with http:// or https://; using http://localhost:4318/v1/metrics`);
  assert.deepEqual(lines.slice(1).map((l) => l.replace(/ failed: .*/, '')), ['promotel warn: OTLP export to http://localhost:4318/v1/metrics']);
});

test('a collector refusing the credentials (401): the warning points to OTEL_EXPORTER_OTLP_HEADERS', async () => {
  const otel = await collector(Array(50).fill(401));
  const appPort = await freePort();
  const app = startApp(join(FIXTURES, 'otlp-app.js'), {
    env: { PORT: String(appPort), OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: otel.url, OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20wrong', OTEL_METRIC_EXPORT_INTERVAL: '200' },
  });
  try {
    await app.waitFor(/OTLP export/);
    assert.equal(otel.received[0]!.headers.authorization, 'Bearer wrong');
    const lines = agentLines(app.stderr());
    assert.equal(lines.length, 1, app.stderr());
    assert.match(lines[0]!, new RegExp(`^promotel warn: OTLP export to ${otel.url}/v1/metrics failed: HTTP 401 .*; the next push is in 200 ms, the application is unaffected: the collector refused the credentials \\(HTTP 401\\): check OTEL_EXPORTER_OTLP_HEADERS \\(or OTEL_EXPORTER_OTLP_METRICS_HEADERS\\)$`));
  } finally {
    app.kill();
    otel.server.close();
  }
});

test('a per-signal endpoint without /v1/metrics (HTTP 404): the warning gives the status and says it is used as it is', async () => {
  const otel = await collector(Array(50).fill(404));
  const appPort = await freePort();
  const app = startApp(join(FIXTURES, 'otlp-app.js'), {
    env: { PORT: String(appPort), OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: otel.url, OTEL_METRIC_EXPORT_INTERVAL: '200' },
  });
  try {
    await app.waitFor(/OTLP export/);
    assert.equal(otel.received[0]!.path, '/');
    assert.deepEqual(agentLines(app.stderr()), [
      `promotel warn: OTLP export to ${otel.url}/ failed: HTTP 404 Not Found; the next push is in 200 ms, the application is unaffected: nothing takes OTLP at that path: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is used as it is (end it in /v1/metrics), while OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/metrics appended`,
    ]);
  } finally {
    app.kill();
    otel.server.close();
  }
});

test('the last push at exit to a collector too slow to answer: the line says it was the last, and that the collector was slow', async () => {
  const otel = await collector([], 5000);
  const job = startApp(join(FIXTURES, 'otlp-batch.js'), {
    env: { OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: otel.url, OTEL_EXPORTER_OTLP_TIMEOUT: '500', OTEL_METRIC_EXPORT_INTERVAL: '60000' },
  });
  try {
    assert.deepEqual(await job.exited, { code: 0, signal: null });
    assert.deepEqual(agentLines(job.stderr()), [
      `promotel warn: OTLP export to ${otel.url}/v1/metrics failed: Request timed out; this was the last push, as the process ends, the application is unaffected: the collector did not answer within 500 ms: if it is overloaded, see its log, or raise OTEL_EXPORTER_OTLP_TIMEOUT (OTEL_METRIC_EXPORT_TIMEOUT bounds it too)`,
    ]);
  } finally {
    job.kill();
    otel.server.closeAllConnections();
    otel.server.close();
  }
});

test('credentials in the endpoint URL (userinfo, query) are used, and never shown in a line', async () => {
  const otel = await collector(Array(50).fill(401));
  const endpoint = `${otel.url.replace('http://', 'http://tenant:s3cr3t@')}/?api-key=k3y`;
  const job = startApp(join(FIXTURES, 'otlp-batch.js'), {
    env: { OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'ftp://tenant:s3cr3t@collector', OTEL_METRIC_EXPORT_INTERVAL: '60000' },
  });
  try {
    assert.deepEqual(await job.exited, { code: 0, signal: null });
    assert.equal(otel.received[0]!.headers.authorization, `Basic ${Buffer.from('tenant:s3cr3t').toString('base64')}`);
    const lines = agentLines(job.stderr());
    assert.equal(lines.length, 2, job.stderr());
    assert.equal(otel.received[0]!.path, '/v1/metrics?api-key=k3y');
    assert.doesNotMatch(job.stderr(), /s3cr3t|tenant|k3y/);
    const shown = `${otel.url.replace('http://', 'http://***@')}/v1/metrics?api-key=***`;
    assert.equal(lines[0], `promotel warn: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT="ftp://***@collector" is invalid: write a URL with http:// or https://; using ${shown} from OTEL_EXPORTER_OTLP_ENDPOINT`);
    assert.ok(lines[1]!.startsWith(`promotel warn: OTLP export to ${shown} failed: HTTP 401 `), lines[1]);
  } finally {
    job.kill();
    otel.server.close();
  }
});

test('gzip over mutual TLS: the CA, client certificate and key files of the variables are used', async () => {
  const { KEY_FILE, CERT_FILE } = selfSignedCert();
  const received: Array<{ encoding?: string; body: Buffer; peer: boolean }> = [];
  // The collector trusts only its own certificate, which the client also presents as its own.
  const server = createHttpsServer({ key: readFileSync(KEY_FILE), cert: readFileSync(CERT_FILE), ca: readFileSync(CERT_FILE), requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c)).on('end', () => {
      received.push({ encoding: req.headers['content-encoding'], body: Buffer.concat(chunks), peer: (req.socket as TLSSocket).authorized });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  const job = startApp(join(FIXTURES, 'otlp-batch.js'), {
    env: {
      OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_METRIC_EXPORT_INTERVAL: '60000',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'GZIP', OTEL_EXPORTER_OTLP_CERTIFICATE: CERT_FILE, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: CERT_FILE, OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY: KEY_FILE,
    },
  });
  try {
    assert.deepEqual(await job.exited, { code: 0, signal: null });
    assert.equal(agentLines(job.stderr()).length, 0, job.stderr());
    assert.equal(received.length, 1);
    assert.deepEqual([received[0]!.encoding, received[0]!.peer], ['gzip', true]);
    const [point] = metricsOf(gunzipSync(received[0]!.body)).get('batch.items')!;
    assert.equal(Number(point!.asInt ?? point!.asDouble), 7);
  } finally {
    job.kill();
    server.close();
  }
});

test('OTEL_METRIC_EXPORT_TIMEOUT bounds the last push of a finished app, under the OTLP timeout', async () => {
  const deadPort = await freePort();
  const started = Date.now();
  const job = startApp(join(FIXTURES, 'otlp-batch.js'), {
    env: { OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${deadPort}`, OTEL_METRIC_EXPORT_TIMEOUT: '500' },
  });
  const exit = await Promise.race([job.exited, new Promise((r) => setTimeout(() => r('still running after 15 s'), 15_000))]);
  job.kill();
  assert.deepEqual(exit, { code: 0, signal: null });
  // 500 ms plus start-up; the OTLP timeout alone (10 s by default) would hold it far longer.
  assert.ok(Date.now() - started < 3500, `exit took ${Date.now() - started} ms`);
});

test('a metric callback that never settles costs one warning; the pushes go on with the other metrics', async () => {
  const otel = await collector();
  const app = startApp(join(FIXTURES, 'otlp-hung-callback.js'), {
    env: { OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: otel.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_METRIC_EXPORT_INTERVAL: '300', OTEL_METRIC_EXPORT_TIMEOUT: '200' },
  });
  try {
    await app.waitFor(/ready/);
    await eventually(async () => otel.received.length >= 3, 10_000);
    const [point] = metricsOf(otel.received[2]!.body).get('jobs')!;
    assert.equal(Number(point!.asInt ?? point!.asDouble), 3);
    assert.deepEqual(agentLines(app.stderr()), [
      'promotel warn: a metric callback failed during an OTLP export (Operation timed out.); the other metrics were pushed: fix or remove that callback',
    ]);
  } finally {
    app.kill();
    otel.server.close();
  }
});

/** A collector that takes the connection and never answers; `requests()` counts the pushes it was sent. */
async function silentCollector(): Promise<{ url: string; requests: () => number; close: () => void }> {
  let requests = 0;
  const silent = createNetServer((socket) => socket.on('data', (d: Buffer) => void (requests += d.toString().split('POST /v1/metrics').length - 1)));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(silent.address() as { port: number }).port}`, requests: () => requests, close: () => silent.close() };
}

test('an app that ends while a push to a silent collector is in flight waits for that push alone, within the timeout', async () => {
  const silent = await silentCollector();
  const url = silent.url;
  const script = `require('@opentelemetry/api').metrics.getMeter('batch').createCounter('batch.items').add(7); setTimeout(() => console.log('done'), 1500);`;
  const app = startApp('-e', { args: [script], env: { OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_METRIC_EXPORT_INTERVAL: '200', OTEL_EXPORTER_OTLP_TIMEOUT: '3000' } });
  try {
    await app.waitFor(/done/);
    const done = Date.now();
    assert.deepEqual(await app.exited, { code: 0, signal: null });
    // The push of 0.2 s times out at 3.2 s, 1.7 s after the app's end; a second push at exit would wait 3 s more.
    const waited = Date.now() - done;
    assert.ok(waited < 3000, `exit took ${waited} ms after the app's end`);
    assert.equal(silent.requests(), 1);
    assert.equal(agentLines(app.stderr()).length, 1, app.stderr());
  } finally {
    app.kill();
    silent.close();
  }
});

test('promotel.shutdown() while a push to a silent collector is in flight returns within the timeout', async () => {
  const silent = await silentCollector();
  const url = silent.url;
  const index = join(ROOT, 'dist', 'src', 'index.js');
  const script = `
    const p = require(${JSON.stringify(index)});
    p.start({ exporters: ['otlp'], otlpEndpoint: '${url}/v1/metrics', exportIntervalMs: 200, otlpTimeoutMs: 3000, runtimeMetrics: false, hostMetrics: false });
    setTimeout(async () => { const t = Date.now(); await p.shutdown(); console.log(Date.now() - t); }, 1500);`;
  const app = startApp('-e', { preload: 'none', args: [script], cwd: ROOT });
  try {
    assert.deepEqual(await app.exited, { code: 0, signal: null });
    // The push of 0.2 s times out at 3.2 s, 1.7 s into shutdown(); a second push would wait 3 s more.
    const took = Number(app.stdout());
    assert.ok(took < 3000, `shutdown() took ${took} ms`);
    assert.equal(silent.requests(), 1);
  } finally {
    app.kill();
    silent.close();
  }
});
