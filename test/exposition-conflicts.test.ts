// Names and labels that would collide in the output. Prometheus rejects a
// whole scrape for one repeated label name, and mixes up families whose
// sample names meet, so each case must come out valid in both formats (the
// Python parsers and promtool read it back) and say once what it changed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ValueType, type Meter } from '@opentelemetry/api';
import { serialize } from '../src/exposition/serialize';
import { PullReader } from '../src/exposition/reader';
import { scopeLabels, seenPoints } from '../src/exposition/labels';
import { promtoolCheck, pythonParse, type Family } from './helpers';

/** Both formats of what `record` puts on a fresh meter `s` 1.0, with the problems the serializer reported. */
async function expose(record: (meter: Meter) => void): Promise<{ text: string; om: string; problems: string[] }> {
  const reader = new PullReader({ cardinalityLimit: 100 });
  const provider = new MeterProvider({ readers: [reader] });
  record(provider.getMeter('s', '1.0'));
  const { resourceMetrics } = await reader.collect();
  const problems: string[] = [];
  const onProblem = (_key: string, message: string): void => void problems.push(message);
  const text = serialize(resourceMetrics, { openMetrics: false, onProblem });
  const om = serialize(resourceMetrics, { openMetrics: true, onProblem });
  await provider.shutdown();
  return { text, om, problems };
}

/** Read back by both Python parsers; `promtool check metrics` clean too, unless `lint` is false (it also lints names such as a gauge `y_sum`). */
function valid(text: string, om: string, lint = true): { text: Family[]; om: Family[] } {
  if (lint) assert.equal(promtoolCheck(text), '', 'promtool check metrics');
  return { text: pythonParse(text, false), om: pythonParse(om, true) };
}

const kinds = (families: Family[]) => families.filter((f) => f.name !== 'target_info' && f.name !== 'target').map((f) => `${f.name} ${f.type}`).sort();
const labelsOf = (families: Family[], sample: string) => families.flatMap((f) => f.samples).filter((s) => s.name === sample).map((s) => s.labels);

test('an attribute that maps to otel_scope_name or otel_scope_version is renamed key_..., not repeated', async () => {
  const { text, om, problems } = await expose((m) => m.createCounter('c').add(1, { 'otel.scope.name': 'spoof', otel_scope_version: '9' }));
  const parsed = valid(text, om);
  for (const families of [parsed.text, parsed.om]) {
    assert.deepEqual(labelsOf(families, 'c_total'), [{ key_otel_scope_name: 'spoof', key_otel_scope_version: '9', otel_scope_name: 's', otel_scope_version: '1.0' }]);
  }
  assert.match(problems[0] ?? '', /metric c has attributes that map to otel_scope_name, otel_scope_version, labels the exposition sets itself on such series; they are exposed as key_otel_scope_name, key_otel_scope_version: rename the attributes/);
});

test('a histogram attribute named le becomes key_le; on other kinds le and quantile stay as they are', async () => {
  const attrs = { le: 'x' };
  const { text, om, problems } = await expose((m) => {
    const h = m.createHistogram('h', { advice: { explicitBucketBoundaries: [1] } });
    h.record(0.5, attrs);
    h.record(0.7, { le: 'y' });
    // The same attributes object on a counter: encoded for each kind, not shared.
    m.createCounter('c').add(2, attrs);
    m.createObservableGauge('g_bucket').addCallback((r) => r.observe(3, { le: '0.5', quantile: '0.9' }));
  });
  // promtool lints `le` on a non-histogram (a gauge histogram re-exposed by the sidecar has it): parsers only here.
  const parsed = valid(text, om, false);
  assert.deepEqual(labelsOf(parsed.text, 'h_bucket').map((l) => `${l.key_le} ${l.le}`).sort(), ['x +Inf', 'x 1', 'y +Inf', 'y 1'], 'two series stay two');
  assert.deepEqual(labelsOf(parsed.om, 'h_bucket').map((l) => `${l.key_le} ${l.le}`).sort(), ['x +Inf', 'x 1.0', 'y +Inf', 'y 1.0']);
  assert.deepEqual(labelsOf(parsed.text, 'c_total'), [{ le: 'x', otel_scope_name: 's', otel_scope_version: '1.0' }]);
  assert.deepEqual(labelsOf(parsed.text, 'g_bucket'), [{ le: '0.5', quantile: '0.9', otel_scope_name: 's', otel_scope_version: '1.0' }]);
  assert.ok(problems.some((p) => p.includes('metric h has attributes that map to le, labels the exposition sets itself on such series; they are exposed as key_le')), problems.join('\n'));
  assert.ok(!problems.some((p) => /metric (c|g_bucket) /.test(p)), problems.join('\n'));
});

test('a family whose sample names meet another family’s is left out with a warning, in both formats', async () => {
  const { text, om, problems } = await expose((m) => {
    m.createHistogram('x', { advice: { explicitBucketBoundaries: [1] } }).record(0.5);
    m.createObservableGauge('x_count').addCallback((r) => r.observe(7));
    m.createCounter('clash').add(1);
    m.createObservableGauge('clash_total').addCallback((r) => r.observe(7));
  });
  const parsed = valid(text, om);
  for (const families of [parsed.text, parsed.om]) {
    assert.deepEqual(kinds(families), ['clash counter', 'x histogram']);
    assert.deepEqual(families.flatMap((f) => f.samples).filter((s) => s.value === 7), [], 'no gauge sample leaked into another family');
  }
  assert.ok(problems.some((p) => /metric x_count of scope s maps to x_count, whose sample names clash with the histogram x of scope s; it is left out/.test(p)), problems.join('\n'));
  assert.ok(problems.some((p) => /metric clash_total of scope s maps to clash_total, /.test(p)), problems.join('\n'));
});

test('the first family to claim a name keeps it, whichever kind it is', async () => {
  const { text, om } = await expose((m) => {
    m.createObservableGauge('y_sum').addCallback((r) => r.observe(7));
    m.createHistogram('y', { advice: { explicitBucketBoundaries: [1] } }).record(0.5);
  });
  const parsed = valid(text, om, false);
  for (const families of [parsed.text, parsed.om]) assert.deepEqual(kinds(families), ['y_sum gauge']);
});

test('a NaN counter is left out of OpenMetrics, which forbids it, and kept in text 0.0.4', async () => {
  const { text, om, problems } = await expose((m) => {
    m.createCounter('n').add(NaN, { k: 'nan' });
    m.createCounter('n').add(1, { k: 'one' });
  });
  const parsed = valid(text, om);
  assert.deepEqual(parsed.om.flatMap((f) => f.samples).filter((s) => s.name === 'n_total').map((s) => s.labels.k), ['one']);
  assert.deepEqual(parsed.text.flatMap((f) => f.samples).filter((s) => s.name === 'n_total').map((s) => `${s.labels.k}=${s.value}`).sort(), ['nan=nan', 'one=1']);
  assert.match(problems.join('\n'), /counter n holds NaN, which OpenMetrics does not allow in a total; that series is left out of OpenMetrics scrapes/);
});

test('runs of _ that sanitizing makes fold to one, so no label starts with the reserved __; valid names stay as they are', async () => {
  const { text, om } = await expose((m) => m.createCounter('u').add(1, { 'a..b': '1', __z: '2', 'x/-y': '3', x__y: '4' }));
  const parsed = valid(text, om);
  assert.deepEqual(labelsOf(parsed.text, 'u_total'), [{ a_b: '1', _z: '2', x_y: '3', x__y: '4', otel_scope_name: 's', otel_scope_version: '1.0' }]);
});

test('meters that differ only by schema URL keep their series apart with otel_scope_schema_url', async () => {
  const reader = new PullReader({ cardinalityLimit: 100 });
  const provider = new MeterProvider({ readers: [reader] });
  provider.getMeter('s', '1', { schemaUrl: 'https://opentelemetry.io/schemas/1.20.0' }).createCounter('c').add(1);
  provider.getMeter('s', '1', { schemaUrl: 'https://opentelemetry.io/schemas/1.30.0' }).createCounter('c').add(2);
  provider.getMeter('s', '1').createCounter('c').add(4);
  const { resourceMetrics } = await reader.collect();
  const text = serialize(resourceMetrics, { openMetrics: false });
  const parsed = valid(text, serialize(resourceMetrics, { openMetrics: true }));
  assert.deepEqual(
    parsed.text.flatMap((f) => f.samples).filter((s) => s.name === 'c_total').map((s) => `${s.labels.otel_scope_schema_url ?? '-'} ${s.value}`).sort(),
    ['- 4', 'https://opentelemetry.io/schemas/1.20.0 1', 'https://opentelemetry.io/schemas/1.30.0 2'],
  );
  await provider.shutdown();
});

test('two instruments of one name that sdk-metrics keeps apart keep their own label blocks from scrape to scrape', async () => {
  const reader = new PullReader({ cardinalityLimit: 100 });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('s', '1.0');
  // One name, two units: sdk-metrics warns and exports both, here as dup_seconds_total and dup_bytes_total.
  meter.createCounter('dup', { unit: 's' }).add(1, { a: '1' });
  meter.createCounter('dup', { unit: 'By' }).add(2, { b: '2' });
  const { resourceMetrics } = await reader.collect();
  const text = serialize(resourceMetrics, { openMetrics: false });
  assert.match(text, /^dup_seconds_total\{a="1",otel_scope_name="s",otel_scope_version="1.0"\} 1$/m);
  assert.match(text, /^dup_bytes_total\{b="2",otel_scope_name="s",otel_scope_version="1.0"\} 2$/m);
  // Where the next scrape looks for each point's block first: its own points, not the other instrument's.
  const metrics = resourceMetrics.scopeMetrics[0]!.metrics;
  assert.equal(metrics.length, 2);
  for (const metric of metrics) {
    assert.deepEqual(seenPoints(scopeLabels({ name: 's', version: '1.0' }), metric).attrs, metric.dataPoints.map((p) => p.attributes), metric.descriptor.unit);
  }
  await provider.shutdown();
});

test('a family named just its unit word has no # UNIT line, which OpenMetrics scrapers would reject with the whole scrape', async () => {
  const { text, om } = await expose((m) => {
    m.createHistogram('seconds', { unit: 's', advice: { explicitBucketBoundaries: [1] } }).record(0.2);
    m.createCounter('bytes_total', { unit: 'By' }).add(3);
    m.createObservableGauge('ratio', { unit: '1' }).addCallback((r) => r.observe(0.5));
    m.createCounter('wait', { unit: 's' }).add(1);
  });
  const parsed = valid(text, om);
  assert.deepEqual(kinds(parsed.om), ['bytes counter', 'ratio gauge', 'seconds histogram', 'wait_seconds counter']);
  assert.deepEqual(om.split('\n').filter((l) => l.startsWith('# UNIT')), ['# UNIT wait_seconds seconds']);
  assert.deepEqual(parsed.text.flatMap((f) => f.samples).filter((s) => s.name === 'bytes_total' || s.name === 'seconds_sum').map((s) => `${s.name} ${s.value}`).sort(), ['bytes_total 3', 'seconds_sum 0.2']);
});

test('a counter named _total keeps that name rather than an empty one', async () => {
  const { text, om } = await expose((m) => m.createCounter('_total').add(2));
  const parsed = valid(text, om);
  for (const families of [parsed.text, parsed.om]) {
    assert.deepEqual(families.flatMap((f) => f.samples).filter((s) => s.name === '_total_total').map((s) => s.value), [2]);
  }
});

test('a histogram with a negative bucket has no _sum (OTel rules), and in OpenMetrics no _count either (its parsers reject them): +Inf says the count', async () => {
  const { text, om } = await expose((m) => {
    const h = m.createHistogram('neg', { advice: { explicitBucketBoundaries: [-1, 0, 1] } });
    h.record(0.5);
    h.record(3);
    m.createHistogram('pos', { advice: { explicitBucketBoundaries: [0, 1] } }).record(0.5);
  });
  const parsed = valid(text, om);
  for (const [families, one] of [[parsed.text, '1'], [parsed.om, '1.0']] as const) {
    const lines = families.flatMap((f) => f.samples).filter((s) => (s.name.startsWith('neg_') && s.name !== 'neg_created') || s.name === 'pos_count' || s.name === 'pos_sum');
    assert.deepEqual(lines.map((s) => `${s.name}${s.labels.le === undefined ? '' : `{le=${s.labels.le}}`} ${s.value}`), [
      `neg_bucket{le=-${one}} 0`, `neg_bucket{le=0${one.slice(1)}} 0`, `neg_bucket{le=${one}} 1`, 'neg_bucket{le=+Inf} 2',
      ...(families === parsed.text ? ['neg_count 2'] : []),
      'pos_count 1', 'pos_sum 0.5',
    ]);
  }
});

test('a bucket bound given twice is written once: a second le line would be a duplicate series', async () => {
  const { text, om } = await expose((m) => {
    const h = m.createHistogram('dup', { advice: { explicitBucketBoundaries: [1, 1, 2, 0.5, 2] } });
    for (const v of [0.7, 1, 1.5, 3]) h.record(v);
  });
  const parsed = valid(text, om);
  for (const [families, suffix] of [[parsed.text, ''], [parsed.om, '.0']] as const) {
    const buckets = families.flatMap((f) => f.samples).filter((s) => s.name === 'dup_bucket');
    assert.deepEqual(buckets.map((s) => `${s.labels.le} ${s.value}`), ['0.5 0', `1${suffix} 2`, `2${suffix} 3`, '+Inf 4']);
  }
});

test('two instruments of one scope that map to one name write its series once, and say so', async () => {
  const { text, om, problems } = await expose((m) => {
    m.createCounter('x', { valueType: ValueType.INT }).add(1, { k: 'v' });
    m.createCounter('x', { valueType: ValueType.DOUBLE }).add(2.5, { k: 'v' });
    m.createCounter('w', { unit: 'By' }).add(4);
    m.createCounter('w_bytes').add(5);
  });
  const parsed = valid(text, om);
  for (const families of [parsed.text, parsed.om]) {
    assert.deepEqual(families.flatMap((f) => f.samples).filter((s) => s.name.endsWith('_total')).map((s) => `${s.name} ${s.value}`).sort(), ['w_bytes_total 4', 'x_total 1']);
  }
  assert.ok(problems.some((p) => p === 'metric x of scope s maps to x_total, as another instrument of that scope does; it is left out, since both would write the same series: give one of the instruments another name'), problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('metric w_bytes of scope s maps to w_bytes_total, as another instrument')), problems.join('\n'));
});

test('an observable callback that passes one attributes object with new values each time is shown with its values of the moment', async () => {
  const reader = new PullReader({ cardinalityLimit: 100 });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('s', '1.0');
  const shared = { role: 'follower' };
  const frozen = Object.freeze({ role: 'fixed' });
  meter.createObservableGauge('node').addCallback((r) => {
    r.observe(1, shared);
    r.observe(2, frozen);
  });
  const scrape = async (): Promise<string[]> => {
    const { resourceMetrics } = await reader.collect();
    return serialize(resourceMetrics, { openMetrics: false }).split('\n').filter((l) => l.startsWith('node{'));
  };
  assert.deepEqual(await scrape(), ['node{role="follower",otel_scope_name="s",otel_scope_version="1.0"} 1', 'node{role="fixed",otel_scope_name="s",otel_scope_version="1.0"} 2']);
  shared.role = 'leader';
  assert.deepEqual(await scrape(), ['node{role="leader",otel_scope_name="s",otel_scope_version="1.0"} 1', 'node{role="fixed",otel_scope_name="s",otel_scope_version="1.0"} 2']);
  (shared as Record<string, string>).zone = 'a';
  assert.deepEqual((await scrape())[0], 'node{role="leader",zone="a",otel_scope_name="s",otel_scope_version="1.0"} 1');
  await provider.shutdown();
});

test('a value that ends like a reserved label (`a,le=`) is only a value: no warning, no renaming', async () => {
  const { text, om, problems } = await expose((m) => m.createHistogram('v', { advice: { explicitBucketBoundaries: [1] } }).record(0.5, { k: 'a,le=' }));
  const parsed = valid(text, om);
  assert.deepEqual(labelsOf(parsed.text, 'v_count'), [{ k: 'a,le=', otel_scope_name: 's', otel_scope_version: '1.0' }]);
  assert.deepEqual(problems, []);
});

test('a name that sanitizing ends with _ gets its suffixes without a run of __', async () => {
  const { text, om } = await expose((m) => {
    m.createCounter('my-metric.name!').add(1);
    // A valid name that ends in `_` is kept as it is: the sidecar re-exposes names.
    m.createObservableGauge('kept_').addCallback((r) => r.observe(1));
    m.createHistogram('wait!', { unit: 's', advice: { explicitBucketBoundaries: [1] } }).record(0.5);
  });
  const parsed = valid(text, om);
  for (const families of [parsed.text, parsed.om]) {
    assert.deepEqual(families.flatMap((f) => f.samples).map((s) => s.name).filter((n) => n.startsWith('my') || n.startsWith('wait') || n.startsWith('kept')).filter((n) => !n.endsWith('_created')).sort(), [
      'kept_', 'my_metric_name_total', 'wait_seconds_bucket', 'wait_seconds_bucket', 'wait_seconds_count', 'wait_seconds_sum',
    ]);
  }
});
