// The scale-out path: Prometheus in agent mode (prometheus/agent.yml) scrapes
// the demo under the agent and remote-writes to a second Prometheus started
// with --web.enable-remote-write-receiver, standing in for Thanos Receive,
// Mimir or Cortex (same protocol). The second one must hold the demo's counts
// exactly.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { DEMO, ROOT, eventually, freePort, get, startApp, startPrometheus } from './helpers';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Prometheus in agent mode: no TSDB, no query API, only scrape and remote write (its flags differ from a server's). */
async function startPrometheusAgent(configYaml: string): Promise<{ url: string; log: () => string; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'promotel-agent-'));
  writeFileSync(join(dir, 'agent.yml'), configYaml);
  const port = await freePort();
  const child = spawn(
    'prometheus',
    ['--enable-feature=agent', `--config.file=${join(dir, 'agent.yml')}`, `--storage.agent.path=${join(dir, 'wal')}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-20_000)));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  try {
    await eventually(async () => (await get(`${url}/-/ready`)).status === 200, 30_000, 200);
  } catch (err) {
    await stop();
    throw new Error(`prometheus agent did not become ready: ${String(err)}\n${log}`);
  }
  return { url, log: () => log, stop };
}

test('agent-mode Prometheus remote-writes the demo\'s exact counts to a receiving Prometheus', async () => {
  const receiver = await startPrometheus('global:\n  scrape_interval: 1m\n', ['--web.enable-remote-write-receiver']);
  cleanups.push(() => receiver.stop());

  const appPort = await freePort();
  const metricsPort = await freePort();
  const app = startApp(DEMO, {
    env: { PORT: String(appPort), HOST: '127.0.0.1', INSTANCE: 'demo-7', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort) },
  });
  cleanups.push(() => app.kill());
  await app.waitFor(/demo listening/);

  // prometheus/agent.yml as shipped, pointed at this test's ports and made fast.
  const config = parse(readFileSync(join(ROOT, 'prometheus', 'agent.yml'), 'utf8')) as {
    global: Record<string, unknown> & { external_labels: Record<string, string> };
    scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
    remote_write: Array<{ url: string; queue_config: Record<string, unknown> }>;
  };
  assert.deepEqual(config.scrape_configs.map((s) => [s.job_name, s.static_configs]), [['promotel', [{ targets: ['localhost:9000'] }]]]);
  assert.equal(config.remote_write.length, 1);
  config.global.scrape_interval = '1s';
  config.scrape_configs[0]!.static_configs = [{ targets: [`127.0.0.1:${metricsPort}`] }];
  config.remote_write[0]!.url = `${receiver.url}/api/v1/write`;
  config.remote_write[0]!.queue_config.batch_send_deadline = '1s';
  const agent = await startPrometheusAgent(stringify(config));
  cleanups.push(() => agent.stop());

  // Agent mode really is agent mode: no query API.
  assert.notEqual((await get(`${agent.url}/api/v1/query?query=up`)).status, 200);

  const N = 37;
  for (let i = 0; i < N; i++) assert.equal((await get(`http://127.0.0.1:${appPort}/q`)).status, 200);

  const scalar = async (expr: string): Promise<number | undefined> => {
    const r = await receiver.query(expr);
    return r.length === 1 ? Number(r[0]!.value[1]) : undefined;
  };
  try {
    await eventually(async () => (await scalar('sum(http_requests_total{job="promotel"})')) === N, 45_000, 250);
    await eventually(async () => (await scalar('sum(http_server_request_duration_seconds_count{job="promotel", http_response_status_code="200"})')) === N, 15_000, 250);
  } catch (err) {
    throw new Error(`${String(err)}\nagent log:\n${agent.log()}`);
  }

  const own = await receiver.query('http_requests_total{job="promotel"}');
  assert.deepEqual(
    own.map((s) => ({ ...s.metric, value: Number(s.value[1]) })),
    [
      {
        __name__: 'http_requests_total',
        agent: 'promotel-agent-1',
        exported_instance: 'demo-7',
        instance: `127.0.0.1:${metricsPort}`,
        job: 'promotel',
        otel_scope_name: 'promotel-demo',
        status_code: '200',
        value: N,
      },
    ],
  );
  const server = await receiver.query('http_server_request_duration_seconds_count{job="promotel"}');
  assert.deepEqual(
    server.map((s) => [s.metric.http_request_method, s.metric.http_response_status_code, s.metric.agent, Number(s.value[1])]),
    [['GET', '200', 'promotel-agent-1', N]],
  );
  // The histogram arrives whole: its +Inf bucket equals its count.
  assert.equal(await scalar('sum(http_server_request_duration_seconds_bucket{job="promotel", http_response_status_code="200", le="+Inf"})'), N);
  // Runtime metrics travel the same way.
  assert.equal(await scalar('count(v8js_memory_heap_size_limit_bytes{job="promotel", agent="promotel-agent-1"})'), 1);
  assert.equal(await scalar('up{job="promotel"}'), 1);
  // The receiver scraped nothing itself: everything it holds came by remote write.
  assert.deepEqual((await receiver.query('count by (job) ({__name__=~".+"})')).map((s) => s.metric), [{ job: 'promotel' }]);
});
