// A real Prometheus server scrapes promotel in both formats and its query API
// returns exactly the values recorded. Prometheus 2.42 (Debian) has no
// scrape_protocols setting and asks for OpenMetrics first, so the text format
// is forced by a second endpoint whose scrape function always answers text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { PullReader } from '../src/exposition/reader';
import { serveMetrics } from '../src/server';
import { eventually, startPrometheus } from './helpers';

test('Prometheus reads the exact values over OpenMetrics and over text 0.0.4', { timeout: 60_000 }, async () => {
  const reader = new PullReader({ cardinalityLimit: 2000 });
  const provider = new MeterProvider({ readers: [reader], resource: resourceFromAttributes({ 'service.name': 'prom-e2e' }) });
  const meter = provider.getMeter('e2e', '1.2.3');
  meter.createCounter('e2e.orders', { unit: '{order}' }).add(42.5, { region: 'eu "west"\n', tier: 'ü' });
  meter.createUpDownCounter('e2e.inflight').add(-7, { region: 'us' });
  const h = meter.createHistogram('e2e.wait', { unit: 's', advice: { explicitBucketBoundaries: [0.1, 1] } });
  for (const v of [0.05, 0.5, 0.7, 3]) h.record(v, { region: 'us' });
  // Names an OpenMetrics scraper once rejected the whole scrape for: a family named just its unit
  // (`# UNIT seconds seconds`), and a sum beside a negative bucket.
  meter.createHistogram('seconds', { unit: 's', advice: { explicitBucketBoundaries: [1] } }).record(0.2);
  meter.createHistogram('e2e.offset', { advice: { explicitBucketBoundaries: [-1, 0, 1] } }).record(0.5);

  const negotiated = serveMetrics({ host: '127.0.0.1', port: 0, scrape: (om) => reader.scrape(om) });
  const textOnly = serveMetrics({ host: '127.0.0.1', port: 0, scrape: () => reader.scrape(false) });
  const [a, b] = [(await negotiated.listening)!, (await textOnly.listening)!];
  const prom = await startPrometheus(
    [
      'global: { scrape_interval: 1s, scrape_timeout: 900ms }',
      'scrape_configs:',
      `  - { job_name: negotiated, static_configs: [{ targets: ['127.0.0.1:${a.port}'] }] }`,
      `  - { job_name: text, static_configs: [{ targets: ['127.0.0.1:${b.port}'] }] }`,
    ].join('\n'),
  );
  try {
    // OpenMetrics writes bucket bounds as canonical numbers (`1.0`, as the Go and Python clients do); Prometheus 2 stores them as sent.
    for (const job of ['negotiated', 'text']) {
      const q = async (expr: string): Promise<string[]> => (await prom.query(expr)).map((r) => `${JSON.stringify(Object.entries(r.metric).filter(([k]) => !['job', 'instance'].includes(k)).sort())} ${r.value[1]}`).sort();
      await eventually(async () => (await q(`e2e_orders_total{job="${job}"}`)).length === 1, 20_000, 250);
      assert.deepEqual(await q(`e2e_orders_total{job="${job}"}`), [
        `${JSON.stringify([['__name__', 'e2e_orders_total'], ['otel_scope_name', 'e2e'], ['otel_scope_version', '1.2.3'], ['region', 'eu "west"\n'], ['tier', 'ü']])} 42.5`,
      ]);
      assert.deepEqual((await q(`e2e_inflight{job="${job}"}`)).map((s) => s.split(' ').pop()), ['-7']);
      assert.deepEqual((await q(`e2e_wait_seconds_bucket{job="${job}"}`)).map((s) => `${JSON.parse(s.slice(0, s.lastIndexOf(' '))).find((p: string[]) => p[0] === 'le')[1]}=${s.split(' ').pop()}`).sort(), ['+Inf=4', '0.1=1', job === 'text' ? '1=3' : '1.0=3']);
      assert.deepEqual((await q(`e2e_wait_seconds_sum{job="${job}"}`)).map((s) => s.split(' ').pop()), ['4.25']);
      assert.deepEqual((await q(`target_info{job="${job}"}`)).map((s) => s.includes('"prom-e2e"')), [true]);
      assert.deepEqual((await q(`seconds_count{job="${job}"}`)).map((s) => s.split(' ').pop()), ['1']);
      assert.deepEqual((await q(`e2e_offset_bucket{job="${job}",le="+Inf"}`)).map((s) => s.split(' ').pop()), ['1']);
      assert.deepEqual(await q(`e2e_offset_sum{job="${job}"}`), []);
    }
    // Which format each job got: Prometheus records it per target only in its logs, so ask the endpoints directly.
    const om = await fetch(`http://127.0.0.1:${a.port}/metrics`, { headers: { Accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' } });
    assert.match(om.headers.get('content-type') ?? '', /^application\/openmetrics-text; version=1.0.0/);
    const text = await fetch(`http://127.0.0.1:${b.port}/metrics`, { headers: { Accept: 'application/openmetrics-text;version=1.0.0' } });
    assert.match(text.headers.get('content-type') ?? '', /^text\/plain; version=0.0.4/);
  } finally {
    await prom.stop();
    await negotiated.close();
    await textOnly.close();
    await provider.shutdown();
  }
});
