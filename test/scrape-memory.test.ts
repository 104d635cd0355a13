// A scrape writes into the memory of the last one, once every response that
// sent that output is done with it: a new multi-megabyte buffer per scrape
// cost more in page faults than the serializing (bench/RESULTS.md). These
// tests pin both halves: the memory is reused, and never while a slow
// scraper is still being sent the bytes in it.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PullReader } from '../src/exposition/reader';
import { serialize } from '../src/exposition/serialize';
import { serveMetrics } from '../src/server';
import { exposedGc } from './helpers';

function setup(series: number): { reader: PullReader; provider: MeterProvider; addToAll: (n: number) => void } {
  const reader = new PullReader({ cardinalityLimit: series + 10 });
  const provider = new MeterProvider({ readers: [reader] });
  const counter = provider.getMeter('mem').createCounter('mem.jobs');
  const attrs = Array.from({ length: series }, (_, i) => ({ job: `j${i}` }));
  return { reader, provider, addToAll: (n) => attrs.forEach((a) => counter.add(n, a)) };
}

test('a released body is written over by the next scrape of its format; one not released is left alone', async () => {
  const { reader, provider, addToAll } = setup(100);
  addToAll(1);
  const first = await reader.scrape(false);
  const firstText = first.body.toString();
  first.release();
  first.release(); // twice is once
  addToAll(1);
  const second = await reader.scrape(false);
  assert.equal(second.body.buffer, first.body.buffer, 'the released memory is reused');
  assert.match(second.body.toString(), /mem_jobs_total\{job="j7",otel_scope_name="mem"\} 2\n/);
  assert.equal(second.body.toString(), serialize((await reader.collect()).resourceMetrics, { openMetrics: false }));
  assert.notEqual(firstText, second.body.toString());

  const om = await reader.scrape(true);
  assert.notEqual(om.body.buffer, second.body.buffer, 'each format has memory of its own');
  addToAll(1);
  const third = await reader.scrape(false);
  assert.notEqual(third.body.buffer, second.body.buffer, 'the second body was not released');
  assert.match(second.body.toString(), /job="j7",otel_scope_name="mem"\} 2\n/, 'and still reads as it did');
  assert.match(third.body.toString(), /job="j7",otel_scope_name="mem"\} 3\n/);
  await provider.shutdown();
});

test('a body shared by concurrent scrapes comes back only when all of them released it', async () => {
  const { reader, provider } = setup(10);
  const [a, b] = await Promise.all([reader.scrape(false), reader.scrape(false)]);
  assert.equal(a.body, b.body, 'one collection for both');
  a.release();
  const c = await reader.scrape(false);
  assert.notEqual(c.body.buffer, a.body.buffer, 'b still holds it');
  b.release();
  c.release();
  const d = await reader.scrape(false);
  assert.equal(d.body.buffer, c.body.buffer, 'the last one given back is the spare');
  await provider.shutdown();
});

test('a scraper that reads slowly gets the bytes of its own scrape while later scrapes run', { timeout: 60_000 }, async () => {
  // Far more than loopback's socket buffers take in (a few MB), so that the
  // server is still writing the first body while the later scrapes run.
  const series = 100_000;
  const { reader, provider, addToAll } = setup(series);
  addToAll(1);
  const server = serveMetrics({ host: '127.0.0.1', port: 0, scrape: (om) => reader.scrape(om) });
  const { port } = (await server.listening)!;
  try {
    const slow = connect(port, '127.0.0.1');
    slow.pause();
    const chunks: Buffer[] = [];
    slow.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise((resolve) => slow.on('end', resolve));
    slow.write('GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    // Until the server sends, and has filled the socket buffers with the start of the body.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    for (const value of [2, 3]) {
      addToAll(1);
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(text, new RegExp(`job="j${series - 1}",otel_scope_name="mem"\\} ${value}\\n`));
    }
    slow.resume();
    await ended;
    const text = Buffer.concat(chunks).toString();
    const values = [...text.matchAll(/^mem_jobs_total\{job="j\d+",otel_scope_name="mem"\} (\d+)$/gm)].map((m) => m[1]);
    assert.equal(values.length, series);
    assert.deepEqual(new Set(values), new Set(['1']), 'every series as the slow scrape collected it');
  } finally {
    await server.close();
    await provider.shutdown();
  }
});

test('the label cache lets go of the series a histogram no longer has, as it does for counters', async () => {
  const gc = exposedGc();
  const { reader, provider } = setup(1);
  // Data from elsewhere with fresh attribute objects each scrape, as a cluster primary's merge gives.
  const histogram = (peers: string[]) => ({
    descriptor: { name: 'wait', description: '', unit: 's', valueType: 1, type: 'HISTOGRAM' },
    aggregationTemporality: 1,
    dataPointType: 0,
    dataPoints: peers.map((peer) => ({ attributes: { peer }, startTime: [1, 0], endTime: [2, 0], value: { buckets: { boundaries: [1], counts: [1, 0] }, count: 1, sum: 0.5 } })),
  });
  let peers = ['a', 'b', 'c'];
  const refs: Array<WeakRef<object>> = [];
  reader.merge = (own) => {
    const metric = histogram(peers);
    for (const p of metric.dataPoints) refs.push(new WeakRef(p.attributes));
    return { resource: own.resource, scopeMetrics: [...own.scopeMetrics, { scope: { name: 'elsewhere' }, metrics: [metric as never] }] };
  };
  (await reader.scrape(false)).release();
  peers = ['a'];
  (await reader.scrape(false)).release();
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  // The first scrape's b and c are gone from the data; only the second scrape's a is still the cache's.
  assert.deepEqual(refs.map((r) => r.deref() !== undefined), [false, false, false, true]);
  await provider.shutdown();
});
