// The per-metric cardinality limit, end to end: with PROMOTEL_CARDINALITY_LIMIT=5
// a metric keeps 4 label sets of its own and folds every later one into the
// otel_metric_overflow="true" series, for SDK instruments and the HTTP server
// hook alike; the log says so once, however many scrapes see it.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PullReader } from '../src/exposition/reader';
import { FIXTURES, freePort, get, pythonParse, samplesOf, startApp } from './helpers';

function send(port: number, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent: false }, (res) => res.resume().on('end', resolve)).on('error', reject).end();
  });
}

test('PROMOTEL_CARDINALITY_LIMIT folds extra label sets into one overflow series and warns once', { timeout: 30_000 }, async () => {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'cardinality-app.js'), {
    env: { PORT: String(appPort), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', PROMOTEL_CARDINALITY_LIMIT: '5', PROMOTEL_RUNTIME_METRICS: 'false', PROMOTEL_HOST_METRICS: 'false' },
  });
  try {
    await app.waitFor(/listening/);
    // Six statuses, one request each, in order: 200..203 get series of their own, 204 and 205 overflow.
    for (const status of [200, 201, 202, 203, 204, 205]) await send(appPort, `/${status}`);
    const url = `http://127.0.0.1:${metricsPort}/metrics`;
    const first = (await get(url)).body;
    await get(url, { headers: { Accept: 'application/openmetrics-text; version=1.0.0' } });
    const families = pythonParse((await get(url)).body);

    const jobs = samplesOf(families, 'app_jobs_total').map((s) => [s.labels.kind ?? `overflow=${s.labels.otel_metric_overflow}`, s.value]);
    assert.deepEqual(jobs.sort(), [['k0', 1], ['k1', 2], ['k2', 3], ['k3', 4], ['overflow=true', 5 + 6 + 7 + 8 + 9 + 10 + 11 + 12 + 13 + 14 + 15 + 16 + 17 + 18 + 19 + 20]].sort());

    const counts = samplesOf(families, 'http_server_request_duration_seconds_count').map((s) => [s.labels.http_response_status_code ?? `overflow=${s.labels.otel_metric_overflow}`, s.value]);
    assert.deepEqual(counts.sort(), [['200', 1], ['201', 1], ['202', 1], ['203', 1], ['overflow=true', 2]].sort());
    const overflow = samplesOf(families, 'http_server_request_duration_seconds_count').find((s) => s.labels.otel_metric_overflow === 'true')!;
    assert.deepEqual(Object.keys(overflow.labels).sort(), ['otel_metric_overflow', 'otel_scope_name', 'otel_scope_version']);
    assert.match(first, /otel_metric_overflow="true"/);

    const warnings = app.stderr().split('\n').filter((l) => l.includes('reached its cardinality limit'));
    assert.equal(warnings.filter((l) => l.includes('app.jobs')).length, 1, app.stderr());
    assert.equal(warnings.filter((l) => l.includes('http.server.request.duration')).length, 1, app.stderr());
    assert.equal(warnings.length, 2, app.stderr());
  } finally {
    app.kill();
    await app.exited;
  }
});

test('the limit holds across scrapes: label sets new after the first collection go to the overflow series, not to series of their own', async () => {
  const reader = new PullReader({ cardinalityLimit: 5 });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('s');
  const counter = meter.createCounter('hits');
  const histogram = meter.createHistogram('wait', { unit: 's', advice: { explicitBucketBoundaries: [1] } });
  const series = async (): Promise<Record<string, string[]>> => {
    const { resourceMetrics } = await reader.collect();
    const out: Record<string, string[]> = {};
    for (const metric of resourceMetrics.scopeMetrics[0]!.metrics) {
      out[metric.descriptor.name] = metric.dataPoints.map((p) => `${String(p.attributes.user ?? `overflow=${String(p.attributes['otel.metric.overflow'])}`)}=${typeof p.value === 'number' ? p.value : (p.value as { count: number }).count}`).sort();
    }
    return out;
  };
  const record = (users: string[]): void => {
    for (const user of users) {
      counter.add(1, { user });
      histogram.record(0.5, { user });
    }
  };
  record(['u0', 'u1']);
  await series();
  // Each collection holds fewer new label sets than the limit, as a service with ever-new values does between scrapes.
  record(['u2', 'u3', 'u4']);
  await series();
  record(['u5', 'u6', 'u0']);
  const last = await series();
  const expected = ['overflow=true=3', 'u0=2', 'u1=1', 'u2=1', 'u3=1'];
  assert.deepEqual(last, { hits: expected, wait: expected });
  await provider.shutdown();
});

test('at the limit, label sets that already have a series keep counting there; only new ones go to the overflow series (the SDK spec, cumulative)', async () => {
  const reader = new PullReader({ cardinalityLimit: 5 });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('s');
  const counter = meter.createCounter('orders');
  const histogram = meter.createHistogram('wait', { unit: 's', advice: { explicitBucketBoundaries: [1] } });
  const record = (users: string[], n = 1): void => {
    for (const user of users) {
      counter.add(n, { user });
      for (let i = 0; i < n; i++) histogram.record(0.5, { user });
    }
  };
  const series = async (): Promise<Record<string, string[]>> => {
    const families = pythonParse((await reader.scrape(false)).body.toString());
    const of = (sample: string): string[] => samplesOf(families, sample).map((s) => `${s.labels.user ?? 'overflow'}=${s.value}`).sort();
    return { orders: of('orders_total'), wait: of('wait_seconds_count') };
  };
  record(['a', 'b', 'c', 'd']);
  await series();
  // In one interval: five new users first, which fill the interval's own storage, then the established ones.
  record(['n1', 'n2', 'n3', 'n4', 'n5']);
  record(['a', 'b', 'c', 'd'], 10);
  const expected = ['a=11', 'b=11', 'c=11', 'd=11', 'overflow=5'];
  assert.deepEqual(await series(), { orders: expected, wait: expected });
  // And in the interval after, with the same order.
  record(['n6', 'n7', 'n8', 'n9', 'n10']);
  record(['a', 'b', 'c', 'd'], 100);
  const next = ['a=111', 'b=111', 'c=111', 'd=111', 'overflow=10'];
  assert.deepEqual(await series(), { orders: next, wait: next });
  await provider.shutdown();
});
