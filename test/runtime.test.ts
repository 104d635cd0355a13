// Runtime metrics: the event-loop delay monitor samples as often as
// PROMOTEL_EVENTLOOP_DELAY_RESOLUTION says, because each sample is a timer that
// wakes an idle process (bench/RESULTS.md: idle CPU).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, eventually, freePort, get, pythonParse, sampleValue, startApp } from './helpers';

const SERVER = join(FIXTURES, 'server.js');

async function startWith(env: Record<string, string>) {
  const metricsPort = await freePort();
  const app = startApp(SERVER, { env: { PORT: String(await freePort()), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), ...env } });
  await app.waitFor(/listening/);
  const scrape = async () => pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
  return { app, scrape };
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
