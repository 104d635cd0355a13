// Runtime metrics: the event-loop delay monitor samples as often as
// PROMOTEL_EVENTLOOP_DELAY_RESOLUTION says, because each sample is a timer that
// wakes an idle process (bench/RESULTS.md: idle CPU). Delay and utilization
// summarize the time since the data was last exported (a scrape), also in a
// cluster, whose workers push every second.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, eventually, freePort, get, pythonParse, sampleValue, samplesOf, startApp } from './helpers';

const SERVER = join(FIXTURES, 'server.js');

async function startWith(env: Record<string, string>) {
  const metricsPort = await freePort();
  const app = startApp(SERVER, { env: { PORT: String(await freePort()), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), ...env } });
  await app.waitFor(/listening/);
  const body = async () => (await get(`http://127.0.0.1:${metricsPort}/metrics`)).body;
  const scrape = async () => pythonParse(await body());
  return { app, scrape, body };
}

test('event-loop delay: sampled every 10 ms by default; at PROMOTEL_EVENTLOOP_DELAY_RESOLUTION=60000 too few samples for a value yet', async () => {
  const fine = await startWith({});
  const coarse = await startWith({ PROMOTEL_EVENTLOOP_DELAY_RESOLUTION: '60000' });
  try {
    // The instrumentation reports nothing until it has 5 samples: 50 ms at 10 ms, 5 minutes at 60 s.
    const families = await eventually(async () => {
      const f = await fine.scrape();
      return sampleValue(f, 'nodejs_eventloop_delay_p99_seconds') !== undefined && f;
    });
    const p99 = sampleValue(families, 'nodejs_eventloop_delay_p99_seconds')!;
    assert.ok(p99 > 0 && p99 < 1, `p99 ${p99} s`);
    await eventually(async () => sampleValue(await coarse.scrape(), 'nodejs_eventloop_utilization_ratio') !== undefined); // runtime metrics are loaded
    await new Promise((r) => setTimeout(r, 300)); // 30 samples had the resolution been 10 ms
    const coarseFamilies = await coarse.scrape();
    for (const stat of ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99']) {
      assert.equal(sampleValue(coarseFamilies, `nodejs_eventloop_delay_${stat}_seconds`), undefined, stat);
    }
    assert.equal(coarse.app.stderr(), '');
  } finally {
    fine.app.kill();
    coarse.app.kill();
  }
});

test('event-loop delay: a scrape that follows the last one sooner than two resolutions repeats its values instead of dropping the series', async () => {
  // Node records nothing in a window shorter than two resolutions (the first tick after a reset only starts the
  // clock): two scrapers under 20 ms apart (an HA pair, two jobs) meet this at the default 10 ms. At 200 ms,
  // scrapes a second apart see a sample, and the one right after certainly does not.
  const { app, body } = await startWith({ PROMOTEL_EVENTLOOP_DELAY_RESOLUTION: '200' });
  const STATS = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'];
  try {
    // The second scrape right after the first, both parsed after: parsing takes longer than 400 ms on a loaded machine.
    const [first, second] = await eventually(async () => {
      const [a, b] = [await body(), await body()];
      const f = pythonParse(a);
      return sampleValue(f, 'nodejs_eventloop_delay_p99_seconds') !== undefined && [f, pythonParse(b)];
    }, 10_000, 1000);
    for (const stat of STATS) {
      const name = `nodejs_eventloop_delay_${stat}_seconds`;
      assert.notEqual(sampleValue(first, name), undefined, stat);
      assert.equal(sampleValue(second, name), sampleValue(first, name), stat);
    }
  } finally {
    app.kill();
  }
});

test('a cluster worker blocked for 400 ms shows it in the very next scrape of the primary, before any push of its own; the scrape after starts afresh', async () => {
  const metricsPort = await freePort();
  // Pushes every 5 s: what the scrapes show can only come from the primary's request at scrape time.
  const app = startApp(join(FIXTURES, 'cluster-app.js'), {
    env: { PORT: String(await freePort()), WORKERS: '1', NO_RESPAWN: '1', BLOCK_MS: '400', PROMOTEL_CLUSTER_PUSH_INTERVAL: '5000', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort) },
  });
  const workerMax = async (): Promise<number | undefined> =>
    sampleValue(pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body), 'nodejs_eventloop_delay_max_seconds', { worker: '1' });
  try {
    await app.waitFor(/worker 1 blocked/);
    const max = await workerMax();
    assert.ok(max !== undefined && max >= 0.4 && max < 1, `worker's max delay ${max} s right after a 400 ms block`);
    await new Promise((r) => setTimeout(r, 300));
    const next = await workerMax();
    assert.ok(next !== undefined && next < 0.2, `the next window still reads ${next} s`);
  } finally {
    app.kill();
  }
});

test("v8js.resource.active counts the app's resources, not the agent's scrape work", async () => {
  // server.js holds one listening socket, and stdout and stderr are pipes to this test; the agent's own timers are unref'd.
  const { app, scrape } = await startWith({});
  try {
    const families = await eventually(async () => {
      const f = await scrape();
      return samplesOf(f, 'v8js_resource_active').length > 0 && f;
    });
    const counts = Object.fromEntries(samplesOf(families, 'v8js_resource_active').filter((s) => s.value > 0).map((s) => [s.labels.v8js_resource_type, s.value]));
    assert.deepEqual(counts, { PipeWrap: 2, TCPServerWrap: 1 });
  } finally {
    app.kill();
  }
});
