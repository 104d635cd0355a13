// CPU time and utilization, read by promotel (src/instrumentations/cpu.ts):
// every state of /proc/stat by each CPU's own number, the process's share of
// the CPUs it may run on, and windows that a second scraper a few ms after the
// first cannot make meaningless.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseProcStat } from '../src/instrumentations/cpu';
import { FIXTURES, freePort, get, pythonParse, samplesOf, startApp, type Family, type Sample } from './helpers';

test('/proc/stat: each CPU by its own number, iowait and steal kept, irq and softirq as interrupt', () => {
  const text = [
    'cpu  900 0 300 5000 20 10 40 5 0 0',
    'cpu0 500 1 200 2000 10 5 20 3 7 0',
    // cpu1 is offline: the next one keeps its number 2.
    'cpu2 400 0 100 3000 10 5 20 2 0 0',
    'intr 12345',
    'btime 1700000000',
  ].join('\n');
  const cpus = parseProcStat(text);
  assert.deepEqual([...cpus.keys()], [0, 2]);
  // user nice system idle iowait interrupt steal, in seconds (100 ticks a second); guest is inside user.
  assert.deepEqual(cpus.get(0), [5, 0.01, 2, 20, 0.1, 0.25, 0.03]);
  assert.deepEqual(cpus.get(2), [4, 0, 1, 30, 0.1, 0.25, 0.02]);
});

const ratios = (samples: Sample[]) => samples.map((s) => `${JSON.stringify(s.labels)} ${s.value}`).sort();
const total = (families: Family[], name: string) => samplesOf(families, name).reduce((sum, s) => sum + s.value, 0);
/** The event loop's time since it started, active and idle: wall time, read in the same collection as the rest. */
const loopSeconds = (families: Family[]) => total(families, 'nodejs_eventloop_time_seconds_total');

test('the process share is of the CPUs it may run on, over the window since the last scrape', async () => {
  const metricsPort = await freePort();
  const app = startApp(join(FIXTURES, 'spin.js'), { env: { OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  const scrape = async () => pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
  try {
    await app.waitFor(/spinning/);
    // One CPU allowed: os.availableParallelism() in the app reads the new mask on its next call.
    execFileSync('taskset', ['-a', '-p', '-c', '0', String(app.child.pid)], { stdio: 'ignore' });
    const before = await scrape(); // ends the window
    await new Promise((r) => setTimeout(r, 1500));
    const after = await scrape();
    // The window's CPU and wall time, from the same collections as the share: the process's CPU
    // seconds, and the event loop's time (active + idle), which runs with the wall clock.
    const cpu = total(after, 'process_cpu_time_seconds_total') - total(before, 'process_cpu_time_seconds_total');
    const wall = loopSeconds(after) - loopSeconds(before);
    const share = total(after, 'process_cpu_utilization_ratio');
    assert.ok(wall > 1.4, `a window of ${wall} s`);
    assert.ok(Math.abs(share - cpu / wall) < 0.05, `process_cpu_utilization_ratio user + system ${share}; ${cpu} CPU s in ${wall} s on the one CPU allowed`);
    assert.equal(app.stderr(), '');
  } finally {
    app.kill();
  }
});

test('a second scrape under 100 ms after the first (an HA pair) repeats its utilizations; every ratio within [0, 1], each CPU\'s states summing to 1', async () => {
  const metricsPort = await freePort();
  const app = startApp(join(FIXTURES, 'server.js'), { env: { PORT: String(await freePort()), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  const body = async () => (await get(`http://127.0.0.1:${metricsPort}/metrics`)).body;
  try {
    await app.waitFor(/listening/);
    await body();
    // Pairs until one lands within 100 ms by the app's own clock: a loaded machine may delay a second scrape longer.
    let pair: [Family[], Family[]] | undefined;
    for (let i = 0; i < 10 && !pair; i++) {
      await new Promise((r) => setTimeout(r, 300));
      const [a, b] = [await body(), await body()];
      const [first, second] = [pythonParse(a), pythonParse(b)];
      if (loopSeconds(second) - loopSeconds(first) < 0.09) pair = [first, second];
    }
    assert.ok(pair, 'no two scrapes came within 90 ms of each other in 10 tries');
    const [first, second] = pair;
    for (const name of ['process_cpu_utilization_ratio', 'system_cpu_utilization_ratio', 'nodejs_eventloop_utilization_ratio']) {
      assert.ok(samplesOf(first, name).length > 0, name);
      assert.deepEqual(ratios(samplesOf(second, name)), ratios(samplesOf(first, name)), `${name}: the second scraper's window is too short to measure, so it sees the last one`);
      for (const s of samplesOf(first, name)) assert.ok(s.value >= 0 && s.value <= 1, `${name} ${JSON.stringify(s.labels)} ${s.value}`);
    }
    const byCpu = new Map<string, number>();
    for (const s of samplesOf(first, 'system_cpu_utilization_ratio')) byCpu.set(s.labels.system_cpu_logical_number!, (byCpu.get(s.labels.system_cpu_logical_number!) ?? 0) + s.value);
    assert.ok(byCpu.size > 0);
    for (const [cpu, sum] of byCpu) assert.ok(Math.abs(sum - 1) < 1e-9, `cpu ${cpu}: states sum to ${sum}`);
    assert.deepEqual([...new Set(samplesOf(first, 'system_cpu_time_seconds_total').map((s) => s.labels.system_cpu_state))].sort(), ['idle', 'interrupt', 'iowait', 'nice', 'steal', 'system', 'user']);
    assert.equal(app.stderr(), '');
  } finally {
    app.kill();
  }
});
