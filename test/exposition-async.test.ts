// Observable instruments through the pull reader: a scrape shows what the
// callbacks observe during that scrape. The SDK spec: no data "for a
// previously-observed attribute set which is not observed during a successful
// callback". Counters stay cumulative.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { serialize } from '../src/exposition/serialize';
import { PullReader } from '../src/exposition/reader';
import { pythonParse } from './helpers';

test('an observable gauge shows only the label sets its callback observed in this scrape; an observable counter keeps its cumulative value', async () => {
  const reader = new PullReader({ cardinalityLimit: 100 });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('app');
  let scrape = 0;
  // A pool of connections per peer: the first scrape sees peer a, later ones only peer b.
  meter.createObservableGauge('pool.size').addCallback((r) => {
    if (scrape === 1) r.observe(42, { peer: 'a' });
    r.observe(scrape, { peer: 'b' });
  });
  meter.createObservableCounter('jobs.done').addCallback((r) => r.observe(10 * scrape));
  const samples: string[][] = [];
  for (scrape = 1; scrape <= 3; scrape++) {
    const { resourceMetrics } = await reader.collect();
    for (const openMetrics of [false, true]) {
      const families = pythonParse(serialize(resourceMetrics, { openMetrics }), openMetrics);
      const lines = families.flatMap((f) => f.samples).filter((s) => /^(pool_size|jobs_done_total)$/.test(s.name));
      samples.push(lines.map((s) => `${s.name}${s.labels.peer ? `{peer=${s.labels.peer}}` : ''} ${s.value}`).sort());
    }
  }
  await provider.shutdown();
  const expected = [
    ['jobs_done_total 10', 'pool_size{peer=a} 42', 'pool_size{peer=b} 1'],
    ['jobs_done_total 20', 'pool_size{peer=b} 2'],
    ['jobs_done_total 30', 'pool_size{peer=b} 3'],
  ];
  assert.deepEqual(samples, expected.flatMap((e) => [e, e]));
});

test('label sets observed in another order each scrape keep their own values (label blocks are found by position, then by object)', async () => {
  const reader = new PullReader({ cardinalityLimit: 100 });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('app');
  // The same attributes objects every time, in a rotating order: the position of a point no longer names its series.
  const queues = ['a', 'b', 'c', 'd'].map((name) => ({ name }));
  let scrape = 0;
  meter.createObservableGauge('queue.depth').addCallback((r) => {
    for (let k = 0; k < queues.length; k++) {
      const q = queues[(k + scrape) % queues.length]!;
      if (scrape === 2 && q.name === 'b') continue; // one scrape without b: the points after it move up
      r.observe(q.name.charCodeAt(0) * 10 + scrape, q);
    }
  });
  for (scrape = 0; scrape < 5; scrape++) {
    for (const openMetrics of [false, true]) {
      const body = (await reader.scrape(openMetrics)).body.toString();
      const seen = pythonParse(body, openMetrics).flatMap((f) => f.samples).filter((s) => s.name === 'queue_depth').map((s) => `${s.labels.name}=${s.value}`).sort();
      const expected = queues.filter((q) => scrape !== 2 || q.name !== 'b').map((q) => `${q.name}=${q.name.charCodeAt(0) * 10 + scrape}`);
      assert.deepEqual(seen, expected, `scrape ${scrape}`);
    }
  }
  await provider.shutdown();
});

test('an observable counter or up-down counter leaves out a label set its callback stopped observing, and goes on from its reported value if it comes back', async () => {
  const reader = new PullReader({ cardinalityLimit: 100 });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('app');
  let scrape = 0;
  // A queue removed after scrape 1 and back in scrape 3; a network interface that goes away for good.
  meter.createObservableUpDownCounter('queue.depth').addCallback((r) => {
    if (scrape !== 2) r.observe(5 + scrape, { queue: 'old' });
    r.observe(1, { queue: 'live' });
  });
  meter.createObservableCounter('bytes', { unit: 'By' }).addCallback((r) => {
    if (scrape === 1) r.observe(500, { device: 'eth1' });
    r.observe(100 * scrape, { device: 'eth0' });
  });
  const seen: string[][] = [];
  for (scrape = 1; scrape <= 3; scrape++) {
    for (const openMetrics of [false, true]) {
      const families = pythonParse((await reader.scrape(openMetrics)).body.toString(), openMetrics);
      const lines = families.flatMap((f) => f.samples).filter((s) => /^(queue_depth|bytes_total)$/.test(s.name));
      seen.push(lines.map((s) => `${s.name}{${s.labels.queue ?? s.labels.device}} ${s.value}`).sort());
    }
  }
  await provider.shutdown();
  const expected = [
    ['bytes_total{eth0} 100', 'bytes_total{eth1} 500', 'queue_depth{live} 1', 'queue_depth{old} 6'],
    ['bytes_total{eth0} 200', 'queue_depth{live} 1'],
    ['bytes_total{eth0} 300', 'queue_depth{live} 1', 'queue_depth{old} 8'],
  ];
  assert.deepEqual(seen, expected.flatMap((e) => [e, e]));
});

test('a text and an OpenMetrics scrape that overlap both show every observable gauge: they share one collection', async () => {
  const reader = new PullReader({ cardinalityLimit: 100 });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('app');
  meter.createObservableGauge('heap.used').addCallback((r) => r.observe(123));
  // A callback that waits on I/O: the second scrape starts while the first one waits.
  meter.createObservableGauge('db.pool.size').addCallback(async (r) => {
    await new Promise((resolve) => setTimeout(resolve, 200));
    r.observe(5);
  });
  const first = reader.scrape(true);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const second = reader.scrape(false);
  const bodies = await Promise.all([first, second]);
  await provider.shutdown();
  const gauges = bodies.map((b) => pythonParse(b.body.toString(), b.openMetrics).flatMap((f) => f.samples).filter((s) => /^(heap_used|db_pool_size)$/.test(s.name)).map((s) => `${s.name} ${s.value}`).sort());
  assert.deepEqual(gauges, [['db_pool_size 5', 'heap_used 123'], ['db_pool_size 5', 'heap_used 123']]);
});
