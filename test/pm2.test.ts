// pm2's cluster mode: pm2 is the node:cluster primary. Preloaded through
// NODE_OPTIONS, promotel runs in pm2 too, so pm2 serves one endpoint with
// every worker's data, as a node:cluster primary does.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, REGISTER, ROOT, eventually, freePort, get, pythonParse, samplesOf, startApp, type Family } from './helpers';

const PM2_RUNTIME = join(ROOT, 'node_modules', 'pm2', 'bin', 'pm2-runtime');

test('pm2-runtime -i 3 with the preload in NODE_OPTIONS: one endpoint, exactly N requests, every worker', async () => {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const home = mkdtempSync(join(tmpdir(), 'promotel-pm2-'));
  const app = startApp(PM2_RUNTIME, {
    preload: 'none',
    args: ['start', join(FIXTURES, 'pm2-app.js'), '-i', '3'],
    env: {
      PM2_HOME: home,
      HOME: home,
      NODE_OPTIONS: `--require ${REGISTER}`,
      PORT: String(appPort),
      PROMOTEL_CLUSTER_PUSH_INTERVAL: '100',
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
      OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
    },
  });
  const scrape = async (): Promise<Family[]> => pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
  const served = (f: Family[]): number => samplesOf(f, 'http_server_request_duration_seconds_count').reduce((a, s) => a + s.value, 0);
  try {
    await eventually(async () => (app.stdout().match(/listening/g) ?? []).length >= 3, 20_000);
    const N = 45;
    const pids = new Set<string>();
    for (let i = 0; i < N; i++) pids.add((await get(`http://127.0.0.1:${appPort}/`)).body);
    assert.ok(pids.size >= 2, `requests reached ${[...pids].join(', ')}: the test needs the load spread`);
    const families = await eventually(async () => {
      const f = await scrape();
      return served(f) === N ? f : undefined;
    }, 10_000);
    assert.deepEqual(samplesOf(families, 'nodejs_version_info').map((s) => s.labels.worker).sort(), ['1', '2', '3', 'primary']);
    assert.doesNotMatch(app.stderr(), /promotel warn/);
  } finally {
    app.kill('SIGINT');
    const timer = setTimeout(() => app.kill('SIGKILL'), 8000);
    await app.exited;
    clearTimeout(timer);
    rmSync(home, { recursive: true, force: true });
  }
});
