// Scrape cost, in process: the same series through promotel's serializer, the
// stock OTel PrometheusSerializer and prom-client. One counter with N label
// sets and one 14-bucket histogram with N/10, as in issue 3.
//
// Every row ends with the bytes a server would send: promotel writes a Buffer;
// the stock serializer and prom-client return strings, so their rows include
// Buffer.from(string) (the encoding their servers pay in res.end()).
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

function attrs(i) {
  return { 'http.route': `/api/v1/items/${i}`, 'http.request.method': i % 3 ? 'GET' : 'POST' };
}

/** Fills an SDK MeterProvider and returns a reader ready to collect. */
export async function sdkSetup(n) {
  const { MeterProvider } = require('@opentelemetry/sdk-metrics');
  const { PullReader } = require('../dist/src/exposition/reader.js');
  const reader = new PullReader({ cardinalityLimit: n + 10 });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('bench', '1.0.0');
  const counter = meter.createCounter('bench.requests', { unit: '{request}', description: 'Requests.' });
  const hist = meter.createHistogram('bench.duration', { unit: 's', description: 'Durations.', advice: { explicitBucketBoundaries: BUCKETS } });
  for (let i = 0; i < n; i++) counter.add(i + 1, attrs(i));
  for (let i = 0; i < n / 10; i++) for (let k = 0; k < 3; k++) hist.record(0.001 * (i % 97) * (k + 1), attrs(i));
  return { reader, provider };
}

export function promClientSetup(n) {
  const client = require('prom-client');
  const registry = new client.Registry();
  const counter = new client.Counter({ name: 'bench_requests_total', help: 'Requests.', labelNames: ['http_route', 'http_request_method'], registers: [registry] });
  const hist = new client.Histogram({ name: 'bench_duration_seconds', help: 'Durations.', labelNames: ['http_route', 'http_request_method'], buckets: BUCKETS, registers: [registry] });
  const lab = (i) => ({ http_route: `/api/v1/items/${i}`, http_request_method: i % 3 ? 'GET' : 'POST' });
  for (let i = 0; i < n; i++) counter.inc(lab(i), i + 1);
  for (let i = 0; i < n / 10; i++) for (let k = 0; k < 3; k++) hist.observe(lab(i), 0.001 * (i % 97) * (k + 1));
  return registry;
}

const toBytes = (x) => (typeof x === 'string' ? Buffer.from(x, 'utf8') : x);
const lines = (s) => { let c = 0; for (let i = s.indexOf(10); i !== -1; i = s.indexOf(10, i + 1)) c++; return c; };

async function timeIt(fn, minMs, maxRuns) {
  // Every row starts from a collected heap, so that no row pays for the garbage of the one before it
  // (the stock serializer's leave a heap that slowed the next row's scavenges).
  globalThis.gc?.();
  const times = [];
  let out;
  const end = performance.now() + minMs;
  while (times.length < maxRuns && (times.length < 3 || performance.now() < end)) {
    const t = performance.now();
    out = toBytes(await fn());
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], first: undefined, out, runs: times.length };
}

/** One row per (N, implementation): ms per scrape (median), µs per line, lines. */
export async function scrapeBench(n, { minMs = 1500, maxRuns = 50 } = {}) {
  const { serializeToBuffer } = require('../dist/src/exposition/serialize.js');
  const { PrometheusSerializer } = require('@opentelemetry/exporter-prometheus');
  const rows = [];
  const heap0 = (globalThis.gc?.(), process.memoryUsage().heapUsed);
  const { reader, provider } = await sdkSetup(n);
  const heap1 = (globalThis.gc?.(), process.memoryUsage().heapUsed);
  const { resourceMetrics } = await reader.collect();
  // The least of three readings, each after a GC and a timer: memory not yet given back (a freed output's
  // backing store) only adds, and a single reading read up to 3x the settled value.
  const mem = async () => {
    let least = Infinity;
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 20));
      globalThis.gc?.();
      const m = process.memoryUsage();
      least = Math.min(least, m.heapUsed + m.arrayBuffers);
    }
    return least;
  };
  const before = await mem();
  // Cold: the first serialization of these attribute objects (nothing cached yet).
  let t = performance.now();
  let cold = serializeToBuffer(resourceMetrics, { openMetrics: false });
  const coldMs = performance.now() - t;
  const coldLines = lines(cold);
  cold = undefined;
  const after = await mem();
  // The label cache: JS objects plus the bytes of the encoded label blocks (outside the JS heap).
  const cacheBytes = after - before;
  rows.push({ impl: 'promotel, first scrape (label cache cold), text', kind: 'serialize', n, ms: coldMs, lines: coldLines, runs: 1 });
  for (const om of [false, true]) {
    // As the endpoint does: each output is written over the memory of the last one of its format, once sent.
    let spare;
    const r = await timeIt(() => (spare = serializeToBuffer(resourceMetrics, { openMetrics: om, into: spare })), minMs, maxRuns);
    rows.push({ impl: `promotel, ${om ? 'OpenMetrics' : 'text'}`, kind: 'serialize', n, ms: r.ms, lines: lines(r.out), runs: r.runs, ours: !om });
  }
  const stock = new PrometheusSerializer();
  const s = await timeIt(() => stock.serialize(resourceMetrics), minMs, Math.min(maxRuns, 15));
  rows.push({ impl: 'OTel PrometheusSerializer (exporter-prometheus)', kind: 'serialize', n, ms: s.ms, lines: lines(s.out), runs: s.runs });
  // Released at once, as the endpoint does when the response has been sent: the next scrape writes over that memory.
  const full = await timeIt(() => reader.scrape(false).then((x) => (x.release(), x.body)), minMs, maxRuns);
  rows.push({ impl: 'promotel: sdk-metrics collect() + serialize, text', kind: 'collect+serialize', n, ms: full.ms, lines: lines(full.out), runs: full.runs, ours: true });
  const collectOnly = await timeIt(() => reader.collect(), minMs, maxRuns);
  rows.push({ impl: 'sdk-metrics collect() alone (part of the two rows around it)', kind: 'collect', n, ms: collectOnly.ms, lines: full.lines ?? lines(full.out), runs: collectOnly.runs });
  const stockFull = await timeIt(() => reader.collect().then((r) => stock.serialize(r.resourceMetrics)), minMs, Math.min(maxRuns, 15));
  rows.push({ impl: 'OTel: sdk-metrics collect() + PrometheusSerializer', kind: 'collect+serialize', n, ms: stockFull.ms, lines: lines(stockFull.out), runs: stockFull.runs });
  await provider.shutdown();
  const heap2 = (globalThis.gc?.(), process.memoryUsage().heapUsed);
  const registry = promClientSetup(n);
  const heap3 = (globalThis.gc?.(), process.memoryUsage().heapUsed);
  const p = await timeIt(() => registry.metrics(), minMs, Math.min(maxRuns, 15));
  // prom-client has no separate collect step: registry.metrics() is both, so it is compared in both tables.
  rows.push({ impl: 'prom-client 15 await registry.metrics()', kind: 'serialize', n, ms: p.ms, lines: lines(p.out), runs: p.runs });
  rows.push({ impl: 'prom-client 15 await registry.metrics()', kind: 'collect+serialize', n, ms: p.ms, lines: lines(p.out), runs: p.runs });
  const series = n + n / 10;
  return {
    rows,
    memory: {
      sdkBytesPerSeries: (heap1 - heap0) / series,
      labelCacheBytesPerSeries: cacheBytes / series,
      promClientBytesPerSeries: (heap3 - heap2) / series,
      gcExposed: typeof globalThis.gc === 'function',
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const json = process.argv.includes('--json');
  const n = Number(process.argv.filter((a) => !a.startsWith('--'))[2] ?? 10000);
  const res = await scrapeBench(n, json && n <= 1000 ? { minMs: 200, maxRuns: 10 } : {});
  if (json) {
    process.stdout.write(JSON.stringify(res));
    process.exit(0);
  }
  for (const r of res.rows) console.log(`${(r.kind + ' | ' + r.impl).padEnd(72)} N=${n} ${r.ms.toFixed(2).padStart(9)} ms ${((r.ms * 1000) / r.lines).toFixed(3).padStart(7)} us/line lines=${r.lines} runs=${r.runs}`);
  console.log(JSON.stringify(res.memory));
}
