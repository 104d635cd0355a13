// Configuration mistakes in a running app: start() options, the endpoint's
// address, a cluster's warnings, the SDK's diagnostics. Each is one line on
// stderr and the app goes on; exact lines are asserted.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { guard } from '../src/agent';
import { FIXTURES, ROOT, captureStderr, eventually, freePort, get, startApp } from './helpers';

const INDEX = join(ROOT, 'dist', 'src', 'index.js');
const SERVER_JS = join(ROOT, 'dist', 'src', 'server.js');

const agentLines = (stderr: string): string[] => stderr.split('\n').filter((l) => l.startsWith('promotel '));

test('start({ port: 70000 }): one warning naming the option, the port the environment gives is used, the app lives and exits 0', async () => {
  const port = await freePort();
  const script = `require(${JSON.stringify(INDEX)}).start({ port: 70000, host: '127.0.0.1', logLevel: 'INFO' }).listening.then((a) => console.log('listening', a && a.port)); setTimeout(() => console.log('app alive'), 300);`;
  // `-e` takes the script as the next argument: startApp puts args after the "script".
  const app = startApp('-e', { preload: 'none', args: [script], env: { OTEL_EXPORTER_PROMETHEUS_PORT: String(port) } });
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  assert.match(app.stdout(), /app alive/);
  assert.match(app.stdout(), new RegExp(`^listening ${port}$`, 'm'));
  assert.deepEqual(agentLines(app.stderr()), [
    `promotel warn: promotel.start() option port=70000 is invalid: use a port number from 0 to 65535; using ${port}`,
    `promotel info: serving metrics on http://127.0.0.1:${port}/metrics`,
  ]);
});

test('start(options) after the preload started the agent: the options that differ are named in one warning, the ones that match are not', async () => {
  const port = await freePort();
  const script = `const p = require(${JSON.stringify(INDEX)}); p.start({ port: ${port}, host: '127.0.0.1' }); p.start({ port: 1234, runtimeMetrics: false }); console.log('app alive');`;
  const app = startApp('-e', { args: [script], env: { OTEL_EXPORTER_PROMETHEUS_PORT: String(port), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  assert.equal(app.stdout(), 'app alive\n');
  assert.deepEqual(agentLines(app.stderr()), [
    'promotel warn: promotel.start() was called with port=1234, runtimeMetrics=false, but the agent was already running (the preload?) without them: they are ignored; drop the preload, or set them through the environment (OTEL_*/PROMOTEL_* variables) instead',
  ]);
});

test('start() from a second copy of promotel (a bundle, another install) after the preload: the running agent is returned, and the app\'s API metrics stay on the endpoint', async () => {
  const port = await freePort();
  const script = `
    // A fresh copy of promotel's modules, as a bundle or a nested node_modules holds: the preload's stay loaded.
    for (const file of Object.keys(require.cache)) if (file.startsWith(${JSON.stringify(join(ROOT, 'dist', 'src'))})) delete require.cache[file];
    const agent = require(${JSON.stringify(INDEX)}).start({ port: ${port}, host: '127.0.0.1' });
    require('@opentelemetry/api').metrics.getMeter('shop').createCounter('orders').add(3);
    agent.listening.then(() => require('node:http').get('http://127.0.0.1:${port}/metrics', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => console.log(body.split('\\n').filter((l) => l.startsWith('orders_total')).join('\\n') || 'no orders_total'));
    }));`;
  const app = startApp('-e', { args: [script], env: { OTEL_EXPORTER_PROMETHEUS_PORT: String(port), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  assert.equal(app.stdout(), 'orders_total{otel_scope_name="shop"} 3\n');
  assert.deepEqual(agentLines(app.stderr()), []);
});

test('start(options, env): OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS is read from the env given, not only from process.env', async () => {
  const port = await freePort();
  const script = `
    const http = require('node:http');
    const agent = require(${JSON.stringify(INDEX)}).start({ host: '127.0.0.1', port: ${port} }, { OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS: 'GET,PROPFIND' });
    const send = (p, method) => new Promise((r) => http.request({ host: '127.0.0.1', port: p, method }, (res) => { let d = ''; res.on('data', (c) => (d += c)); res.on('end', () => r(d)); }).end());
    const server = http.createServer((req, res) => res.end('ok')).listen(0, '127.0.0.1', async () => {
      await agent.listening;
      for (const method of ['PROPFIND', 'POST']) await send(server.address().port, method);
      const body = await send(${port}, 'GET');
      console.log(body.split('\\n').filter((l) => l.startsWith('http_server_request_duration_seconds_count')).map((l) => /http_request_method="([^"]+)"/.exec(l)[1]).sort().join(' '));
      server.close();
      agent.shutdown();
    });`;
  const app = startApp('-e', { preload: 'none', args: [script] });
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  assert.equal(app.stdout(), 'PROPFIND _OTHER\n');
  assert.equal(agentLines(app.stderr()).length, 0, app.stderr());
});

test('a port listen() refuses outright is a warning, and listening resolves undefined', async () => {
  const script = `require(${JSON.stringify(SERVER_JS)}).serveMetrics({ host: '127.0.0.1', port: 70000, scrape: async () => ({}) }).listening.then((a) => console.log('resolved', a));`;
  const app = startApp('-e', { preload: 'none', args: [script] });
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  assert.equal(app.stdout(), 'resolved undefined\n');
  const lines = agentLines(app.stderr());
  assert.equal(lines.length, 1, app.stderr());
  assert.match(lines[0]!, /^promotel warn: cannot serve metrics on 127\.0\.0\.1:70000: .*; check OTEL_EXPORTER_PROMETHEUS_HOST and OTEL_EXPORTER_PROMETHEUS_PORT \(the application keeps running without a metrics endpoint\)$/);
});

test('OTEL_EXPORTER_PROMETHEUS_PORT=abc with start({ port }) in code: no warning about the variable, the option is served', async () => {
  const port = await freePort();
  const script = `require(${JSON.stringify(INDEX)}).start({ port: ${port}, host: '127.0.0.1' }); setTimeout(() => {}, 1500);`;
  const app = startApp('-e', { preload: 'none', args: [script], env: { OTEL_EXPORTER_PROMETHEUS_PORT: 'abc' } });
  try {
    assert.match((await eventually(() => get(`http://127.0.0.1:${port}/metrics`))).body, /^target_info\{/m);
    assert.deepEqual(await app.exited, { code: 0, signal: null });
    assert.deepEqual(agentLines(app.stderr()), []);
  } finally {
    app.kill();
  }
});

test('an IPv6 host is logged as a URL, and [::1] is accepted as ::1', async () => {
  const port = await freePort();
  const app = startApp(join(FIXTURES, 'linger.js'), { env: { OTEL_LOG_LEVEL: 'info', OTEL_EXPORTER_PROMETHEUS_HOST: '[::1]', OTEL_EXPORTER_PROMETHEUS_PORT: String(port) } });
  try {
    await app.waitFor(/serving metrics/);
    assert.deepEqual(agentLines(app.stderr()), [`promotel info: serving metrics on http://[::1]:${port}/metrics`]);
    assert.equal((await get(`http://[::1]:${port}/metrics`)).status, 200);
  } finally {
    app.kill();
  }
});

test('OTEL_LOG_LEVEL=debug: the SDK\'s details are shown as objects, not [object Object]', async () => {
  const app = startApp(join(FIXTURES, 'hello.js'), { env: { OTEL_LOG_LEVEL: 'debug', OTEL_EXPORTER_PROMETHEUS_PORT: '0', PROMOTEL_HTTP_SERVER_HOOK: 'instrumentation-http' } });
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  assert.doesNotMatch(app.stderr(), /\[object Object\]/);
  assert.match(app.stderr(), /^promotel debug: OpenTelemetry: .*on require hook \{ module: 'http'/m);
});

test('an SDK warning repeated on every call is said once, whatever its numbers; OTEL_LOG_LEVEL=debug shows every one', async () => {
  const script = 'const c = require("@opentelemetry/api").metrics.getMeter("x").createCounter("neg"); for (let i = 0; i < 1000; i++) c.add(-1 - i / 10);';
  const lines = async (env: Record<string, string>): Promise<string[]> => {
    const app = startApp('-e', { args: [script], cwd: ROOT, env: { OTEL_EXPORTER_PROMETHEUS_PORT: '0', ...env } });
    assert.deepEqual(await app.exited, { code: 0, signal: null });
    return app.stderr().split('\n').filter((l) => l.includes('negative value provided to counter neg'));
  };
  assert.deepEqual(await lines({}), ['promotel warn: OpenTelemetry: negative value provided to counter neg: -1 (said once; OTEL_LOG_LEVEL=debug shows every repeat)']);
  assert.equal((await lines({ OTEL_LOG_LEVEL: 'debug' })).length, 1000);
});

test('under node:cluster the primary says each configuration warning once; the workers do not repeat it', async () => {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'cluster-app.js'), {
    env: { PORT: String(appPort), WORKERS: '2', NO_RESPAWN: '1', PROMOTEL_CARDINALITY_LIMIT: 'lots', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort) },
  });
  try {
    await eventually(async () => (app.stdout().match(/listening/g) ?? []).length === 2);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(agentLines(app.stderr()), ['promotel warn: PROMOTEL_CARDINALITY_LIMIT="lots" is invalid: use a whole number from 2 to 1000000; using 2000']);
  } finally {
    app.kill();
  }
});

test('a part that fails to start names a valid way to switch it off', () => {
  const stderr = captureStderr();
  try {
    guard('the metrics endpoint', 'OTEL_METRICS_EXPORTER', () => {
      throw new Error('boom');
    });
    guard('runtime metrics', 'PROMOTEL_RUNTIME_METRICS', () => {
      throw new Error('boom');
    });
  } finally {
    stderr.restore();
  }
  assert.deepEqual(stderr.lines, [
    'promotel warn: the metrics endpoint could not start: boom; the application runs without them (set OTEL_METRICS_EXPORTER=none to skip them quietly)\n',
    'promotel warn: runtime metrics could not start: boom; the application runs without them (set PROMOTEL_RUNTIME_METRICS=false to skip them quietly)\n',
  ]);
});
