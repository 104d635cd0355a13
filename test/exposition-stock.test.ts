// Same metric data through promotel's serializer and the stock
// @opentelemetry/exporter-prometheus PrometheusSerializer: both parsed by the
// Python client must give the same samples. The stock one leaves units out of
// names, so names are compared with the unit word removed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { PullReader } from '../src/exposition/reader';
import { serialize } from '../src/exposition/serialize';
import { pythonParse } from './helpers';

test('promotel and the stock serializer agree on every sample of the same data', { timeout: 60_000 }, async () => {
  const reader = new PullReader({ cardinalityLimit: 2000 });
  const provider = new MeterProvider({ readers: [reader], resource: resourceFromAttributes({ 'service.name': 'cmp' }) });
  const meter = provider.getMeter('cmp-scope', '2.0.0');
  const requests = meter.createCounter('cmp.requests', { unit: '{request}', description: 'Requests "served".' });
  const bytes = meter.createCounter('cmp.io', { unit: 'By' });
  const queue = meter.createUpDownCounter('cmp.queue.depth');
  const temp = meter.createGauge('cmp.temperature', { unit: 'Cel' });
  const latency = meter.createHistogram('cmp.latency', { unit: 's', advice: { explicitBucketBoundaries: [0.01, 0.1, 1] } });
  const labels = [{}, { route: '/a', 'http.method': 'GET' }, { route: 'quote " back \\ nl \n', n: 3 }, { route: 'ünïcødé 🚀', ok: true }];
  labels.forEach((l, i) => {
    requests.add(i * 10 + 1, l);
    bytes.add(2 ** (i + 10), l);
    queue.add(5 - i * 3, l);
    temp.record(-2.5 + i, l);
    for (const v of [0.005, 0.05, 0.5, 5, 0.1]) latency.record(v * (i + 1), l);
  });
  const { resourceMetrics } = await reader.collect();
  const ours = pythonParse(serialize(resourceMetrics, { openMetrics: false }));
  const stock = pythonParse(new PrometheusSerializer().serialize(resourceMetrics));

  const unitWords = /_(seconds|bytes|celsius)(?=_total$|_bucket$|_count$|_sum$|$)/;
  const norm = (families: typeof ours, dropUnits: boolean): string[] =>
    families
      .flatMap((f) => f.samples)
      .filter((s) => s.name !== 'target_info')
      .map((s) => {
        const { otel_scope_name: _n, otel_scope_version: _v, otel_scope_schema_url: _u, ...rest } = s.labels;
        return `${dropUnits ? s.name.replace(unitWords, '') : s.name} ${JSON.stringify(Object.entries(rest).sort())} ${s.value}`;
      })
      .sort();
  const a = norm(ours, true);
  const b = norm(stock, false);
  // Per label set: 4 single-sample metrics, and a histogram of 3 bounds + Inf buckets, _count and _sum.
  assert.equal(a.length, 4 * (1 + 1 + 1 + 1 + (4 + 2)));
  assert.deepEqual(a, b);
  // And ours keeps the units the stock one drops.
  assert.ok(ours.some((f) => f.name === 'cmp_latency_seconds'));
  assert.ok(ours.some((f) => f.name === 'cmp_io_bytes'));
  await provider.shutdown();
});
