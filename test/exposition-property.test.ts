// Property test of the serializer: thousands of random metric names, label
// names and label values, in both formats, read back by the Python reference
// parsers, which must see exactly the values that went in. Seeded, so a
// failure reproduces: set PROMOTEL_SEED to the seed it prints.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import type { Attributes } from '@opentelemetry/api';
import { MeterProvider, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { familyName, sanitizeLabelName } from '../src/exposition/names';
import { PullReader } from '../src/exposition/reader';
import { serialize } from '../src/exposition/serialize';
import { promtoolCheck } from './helpers';

function prng(seed: number): () => number {
  // mulberry32: tiny, and the same sequence on every machine.
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env.PROMOTEL_SEED ?? 20251125);
const PIECES = ['a', 'Z', '_', '.', '-', '/', ' ', '0', '9', 'é', '指标', '😀', ':', 'total', 'x'];
const VALUE_PIECES = ['', '"', '\\', '\n', '\\n', '\\"', 'ä', '中文', '🚀', ' ', '{', '}', ',', '=', '#', 'plain', '\t', '\r', '\u2028', '\u0000'];

function gen(rand: () => number) {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const word = (pieces: string[], max: number): string => Array.from({ length: Math.floor(rand() * max) }, () => pick(pieces)).join('');
  const value = (): string => (rand() < 0.02 ? 'v'.repeat(2000 + Math.floor(rand() * 3000)) : word(VALUE_PIECES, 8));
  const number = (kind: string): number => {
    const r = rand();
    if (kind === 'gauge' && r < 0.05) return pick([NaN, Infinity, -Infinity]);
    if (r < 0.3) return Math.floor(rand() * 1e6);
    if (r < 0.5) return rand() * 10 ** Math.floor(rand() * 30 - 10);
    return kind === 'gauge' ? (rand() - 0.5) * 1e3 : rand() * 1e3;
  };
  return { pick, word, value, number };
}

interface Expected {
  kind: 'counter' | 'gauge';
  family: { text: string; openmetrics: string };
  series: Array<{ labels: Record<string, string>; value: number }>;
}

/** Random instruments as sdk-metrics would hand them over, plus what a parser must read back. */
function randomData(seed: number, metricsCount: number, promtoolSafe: boolean): { data: ResourceMetrics; expected: Expected[] } {
  const rand = prng(seed);
  const g = gen(rand);
  const usedNames = new Set<string>();
  const metrics: unknown[] = [];
  const expected: Expected[] = [];
  for (let m = 0; m < metricsCount; m++) {
    const kind = g.pick(['counter', 'gauge'] as const);
    // promtool also lints naming style (abbreviations like `b`, non-base units like ms): its run gets names it can only judge on format.
    const raw = promtoolSafe ? `m${m}_${g.word(['alpha', 'beta', 'gamma', '_'], 4)}` : g.word(PIECES, 6) || `m${m}`;
    const unit = promtoolSafe ? g.pick(['', 's', 'By', '1', '{request}']) : g.pick(['', 's', 'By', '1', '{request}', 'ms']);
    const family = familyName(raw, unit, kind);
    // Two instruments on one name would be one family: that case has its own tests.
    // A name of underscores alone (`.` sanitized) is valid Prometheus, but the Python client cannot hold a family named `` once it strips `_total`.
    if (usedNames.has(family.text) || usedNames.has(family.openmetrics) || /_(created|bucket|count|sum|info|total)$/.test(family.openmetrics) || /^_*$/.test(family.openmetrics)) continue;
    usedNames.add(family.text).add(family.openmetrics);
    const points: unknown[] = [];
    const series: Expected['series'] = [];
    const seen = new Set<string>();
    for (let s = 0, n = 1 + Math.floor(rand() * 6); s < n; s++) {
      const attributes: Attributes = {};
      const labels: Record<string, string> = {};
      for (let k = 0, kn = Math.floor(rand() * 4); k < kn; k++) {
        const key = promtoolSafe ? g.word(['a', 'b', 'c'], 5) || 'k' : g.word(PIECES, 5);
        const label = sanitizeLabelName(key);
        // Keys that fold onto one label are joined with ';' (tested on their own), and otel_scope_* belong to the scope.
        if (Object.prototype.hasOwnProperty.call(labels, label) || label.startsWith('otel_scope_') || key in attributes) continue;
        const v = g.value();
        attributes[key] = v;
        labels[label] = v;
      }
      const id = JSON.stringify(Object.entries(labels).sort());
      if (seen.has(id)) continue;
      seen.add(id);
      const value = g.number(kind);
      points.push({ attributes, startTime: [1_700_000_000, 500_000_000], endTime: [1_700_000_100, 0], value });
      series.push({ labels, value });
    }
    metrics.push({
      descriptor: { name: raw, description: promtoolSafe ? `help ${g.word(VALUE_PIECES, 4)}` : g.word(VALUE_PIECES, 4), unit, valueType: 1 },
      aggregationTemporality: 1,
      dataPointType: 3,
      isMonotonic: kind === 'counter',
      dataPoints: points,
    });
    expected.push({ kind, family, series });
  }
  const data = {
    resource: { attributes: { 'service.name': 'prop "test"\n\\' } },
    scopeMetrics: [{ scope: { name: 'prop', version: '1.0' }, metrics }],
  } as unknown as ResourceMetrics;
  return { data, expected };
}

const PARSE = `
import sys, json, math
from prometheus_client.parser import text_string_to_metric_families as text
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
parse = om if sys.argv[1] == 'om' else text
def num(v):
    return v if math.isfinite(v) else str(v)
out = [[s.name, s.labels, num(s.value)] for f in parse(sys.stdin.buffer.read().decode("utf-8")) for s in f.samples]
json.dump(out, sys.stdout)
`;

function parse(text: string, om: boolean): Array<[string, Record<string, string>, number | string]> {
  const res = spawnSync('/usr/bin/python3', ['-c', PARSE, om ? 'om' : 'text'], { input: text, encoding: 'utf8', timeout: 60_000, maxBuffer: 512 << 20 });
  const odd = text.split("\n").filter((l) => l !== "" && !l.startsWith("#") && !/^[a-zA-Z_:][a-zA-Z0-9_:]*[{ ]/.test(l)).slice(0, 3);
  assert.equal(res.status, 0, `the Python ${om ? "OpenMetrics" : "text"} parser rejected the output (seed ${SEED}): ${res.stderr.slice(-2000)}; odd lines: ${JSON.stringify(odd)}`);
  return JSON.parse(res.stdout);
}

const asParsed = (v: number): number | string => (Number.isFinite(v) ? v : Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf');

for (const om of [false, true]) {
  test(`${om ? 'OpenMetrics' : 'text 0.0.4'}: random names, labels and values read back exactly (seed ${SEED})`, { timeout: 60_000 }, () => {
    for (let round = 0; round < 4; round++) {
      const { data, expected } = randomData(SEED + round, 400, false);
      const text = serialize(data, { openMetrics: om });
      if (om) assert.ok(text.endsWith('# EOF\n'), 'OpenMetrics output must end with # EOF');
      const samples = parse(text, om);
      const byKey = new Map(samples.map(([name, labels, value]) => [`${name}|${JSON.stringify(Object.entries(labels).sort())}`, value]));
      let checked = 0;
      for (const e of expected) {
        assert.match(e.family.text, /^[a-zA-Z_:][a-zA-Z0-9_:]*$/);
        for (const s of e.series) {
          const labels = { ...s.labels, otel_scope_name: 'prop', otel_scope_version: '1.0' };
          const name = e.kind === 'counter' ? `${e.family.openmetrics}_total` : e.family.openmetrics;
          const key = `${name}|${JSON.stringify(Object.entries(labels).sort())}`;
          assert.ok(byKey.has(key), `seed ${SEED + round}: no sample ${key}`);
          assert.deepEqual(byKey.get(key), asParsed(s.value), `seed ${SEED + round}: value of ${key}`);
          if (om && e.kind === 'counter') {
            assert.equal(byKey.get(`${e.family.openmetrics}_created|${JSON.stringify(Object.entries(labels).sort())}`), 1_700_000_000.5);
          }
          checked++;
        }
      }
      assert.ok(checked > 500, `only ${checked} series were checked`);
      const info = samples.find(([n]) => n === 'target_info');
      assert.deepEqual(info?.[1], { service_name: 'prop "test"\n\\' });
    }
  });
}

test('promtool check metrics finds nothing to lint in the text format', { timeout: 60_000 }, () => {
  const { data } = randomData(SEED, 200, true);
  assert.equal(promtoolCheck(serialize(data, { openMetrics: false })), '');
});

test('attribute keys that fold onto one label name are joined with ; in key order', () => {
  const data = {
    resource: { attributes: {} },
    scopeMetrics: [{ scope: { name: 's' }, metrics: [{ descriptor: { name: 'g', description: '', unit: '', valueType: 1 }, aggregationTemporality: 1, dataPointType: 2, dataPoints: [{ attributes: { 'a.b': 'x', a_b: 'y', 'a-b': 'z' }, startTime: [0, 0], endTime: [0, 0], value: 7 }] }] }],
  } as unknown as ResourceMetrics;
  const [sample] = parse(serialize(data, { openMetrics: false }), false);
  assert.deepEqual(sample, ['g', { a_b: 'z;x;y', otel_scope_name: 's' }, 7]);
});

test('bucket bounds are spelled as the Python client spells them in OpenMetrics, and as the Go client in text 0.0.4: exponent form from 1e6 up and below 1e-4', async () => {
  const bounds = [1e-7, 0.00001, 0.0001, 0.25, 1, 100000, 999999, 1e6, 1048576, 123456789, 1e21];
  const reader = new PullReader({ cardinalityLimit: 100 });
  const provider = new MeterProvider({ readers: [reader] });
  provider.getMeter('s').createHistogram('size', { advice: { explicitBucketBoundaries: bounds } }).record(1);
  const les = async (om: boolean): Promise<string[]> => [...(await reader.scrape(om)).body.toString().matchAll(/^size_bucket\{.*le="([^"]+)"/gm)].map((m) => m[1]!);
  // The Python client's OpenMetrics output for a histogram with the same buckets.
  const python = spawnSync('/usr/bin/python3', ['-c', [
    'from prometheus_client import CollectorRegistry, Histogram',
    'from prometheus_client.openmetrics.exposition import generate_latest',
    'import re',
    'r = CollectorRegistry()',
    `Histogram("size", "s", registry=r, buckets=[${bounds.map((b) => b.toExponential()).join(', ')}])`,
    'print("\\n".join(re.findall(r\'^size_bucket\\{le="([^"]+)"\', generate_latest(r).decode(), re.M)))',
  ].join('\n')], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(python.status, 0, python.stderr);
  assert.deepEqual(await les(true), python.stdout.trim().split('\n'));
  assert.deepEqual(await les(false), ['1e-07', '1e-05', '0.0001', '0.25', '1', '100000', '999999', '1e+06', '1.048576e+06', '1.23456789e+08', '1e+21', '+Inf']);
  await provider.shutdown();
});
