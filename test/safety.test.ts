// The first rule: never harm the host application. Each case starts a real
// child process with the agent preloaded and watches what the app does.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { overlaps, scrapeTimeoutMs } from '../src/server';
import { FIXTURES, REGISTER, ROOT, eventually, freePort, get, startApp, type App } from './helpers';

const SERVER = join(FIXTURES, 'server.js');
const HELLO = join(FIXTURES, 'hello.js');

function agentLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('promotel '));
}

/** The one line the agent says when the app takes its port. */
const gaveWay = (port: number): string =>
  `promotel warn: the application listens on port ${port}, the metrics port: promotel closed its endpoint there so that the application gets the port (metrics are still recorded); set OTEL_EXPORTER_PROMETHEUS_PORT to a free port to serve them`;

test('port already taken: one warning naming the port and the variable, the app serves its own traffic, and the agent takes the port once it is free', async () => {
  const metricsPort = await freePort();
  const squatter: Server = createServer((_req, res) => res.end('squatter\n'));
  await new Promise<void>((r) => squatter.listen(metricsPort, '127.0.0.1', r));
  const appPort = await freePort();
  const app = startApp(SERVER, { env: { PORT: String(appPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort) } });
  try {
    await app.waitFor(/listening/);
    await app.waitFor(/already in use/);
    const lines = agentLines(app.stderr());
    assert.deepEqual(lines, [
      `promotel warn: cannot serve metrics on 127.0.0.1:${metricsPort}: port ${metricsPort} is already in use; set OTEL_EXPORTER_PROMETHEUS_PORT to a free port (the application keeps running without a metrics endpoint; promotel tries the port again every 2 s)`,
    ]);
    const res = await get(`http://127.0.0.1:${appPort}/`);
    assert.equal(res.body, 'app ok\n');
    assert.equal((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body, 'squatter\n');
    // Once the holder lets go (a process being replaced, pm2's CLI before its daemon), the agent takes the port.
    squatter.closeAllConnections();
    await new Promise((r) => squatter.close(r));
    await app.waitFor(/the metrics endpoint is up after all/, 6000);
    assert.match((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body, /^target_info\{/m);
    assert.equal(agentLines(app.stderr()).length, 2, 'the warning and the recovery, nothing else');
  } finally {
    app.kill();
    squatter.close();
  }
});

for (const [kind, script, preload, ready] of [
  ['CommonJS', SERVER, 'require', /listening/],
  ['ES-module', join(FIXTURES, 'esm-app.mjs'), 'import', /ready/],
] as const) {
  test(`${kind} app listening on the metrics port: the app gets the port, the agent steps aside with one warning`, async () => {
    const port = await freePort();
    const app = startApp(script, { preload, env: { PORT: String(port), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(port) } });
    try {
      await app.waitFor(ready);
      const res = await get(`http://127.0.0.1:${port}/metrics`);
      assert.equal(res.status, 200);
      assert.doesNotMatch(res.body, /target_info/, 'the app answers on the port, not the agent');
      assert.deepEqual(agentLines(app.stderr()), [
        gaveWay(port),
      ]);
      app.kill('SIGTERM');
      assert.deepEqual(await app.exited, { code: null, signal: 'SIGTERM' });
    } finally {
      app.kill();
    }
  });
}

test('cluster app listening on the metrics port: the primary steps aside and the workers share the port', async () => {
  const port = await freePort();
  const app = startApp(join(FIXTURES, 'cluster-app.js'), { env: { PORT: String(port), WORKERS: '2', NO_RESPAWN: '1', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(port) } });
  try {
    await eventually(async () => (app.stdout().match(/listening/g) ?? []).length === 2);
    assert.match((await get(`http://127.0.0.1:${port}/`)).body, /^worker [12]\n$/);
    assert.deepEqual(agentLines(app.stderr()), [
      gaveWay(port),
    ]);
  } finally {
    app.kill();
  }
});

test('an app that probes the metrics port (listen, then close, as get-port does) gets it, and the agent does not take it back: the port may be meant for another process', async () => {
  const port = await freePort();
  const app = startApp(join(FIXTURES, 'port-probe.js'), { env: { PORT: String(port), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(port) } });
  try {
    await app.waitFor(/probed/);
    await new Promise((r) => setTimeout(r, 2500)); // longer than the agent's 2 s retry of a port taken at start-up
    await assert.rejects(get(`http://127.0.0.1:${port}/metrics`), 'nobody listens on the port now');
    assert.deepEqual(agentLines(app.stderr()), [
      gaveWay(port),
    ]);
  } finally {
    app.kill();
  }
});

test('an app on the same port but another address leaves the endpoint alone', async () => {
  const port = await freePort();
  const app = startApp(join(FIXTURES, 'port-probe.js'), { env: { PORT: String(port), PROBE_HOST: '127.0.0.2', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(port) } });
  try {
    await app.waitFor(/listening on 127.0.0.2/);
    assert.match((await get(`http://127.0.0.1:${port}/metrics`)).body, /^target_info\{/m);
    assert.deepEqual(agentLines(app.stderr()), []);
  } finally {
    app.kill();
  }
});

test('which addresses collide on one port', () => {
  const cases: Array<[string, string, boolean, boolean]> = [
    ['0.0.0.0', '', false, true], // the app's listen(port): dual-stack ::
    ['0.0.0.0', '127.0.0.1', false, true],
    ['127.0.0.1', '127.0.0.2', false, false],
    ['127.0.0.1', '::', false, true],
    ['127.0.0.1', '::', true, false], // ipv6Only
    ['0.0.0.0', '::1', false, false],
    ['::', '127.0.0.1', false, true],
    ['::1', '::1', false, true],
    ['127.0.0.1', 'localhost', false, true], // a name may resolve to ours
    ['0.0.0.0', '::ffff:127.0.0.1', false, true], // IPv4-mapped: an IPv4 bind
    ['127.0.0.1', '::ffff:127.0.0.2', false, false],
    ['0.0.0.0', '::0', false, true],
    ['::1', '0:0:0:0:0:0:0:1', false, true],
  ];
  for (const [ours, theirs, v6only, expected] of cases) assert.equal(overlaps(ours, theirs, v6only), expected, `${ours} / ${theirs}${v6only ? ' ipv6Only' : ''}`);
});

test('a short script exits by itself with the agent loaded, even while a scraper holds a keep-alive connection', async () => {
  const port = await freePort();
  const bare = startApp(HELLO, { preload: 'none' });
  const withAgent = startApp(join(FIXTURES, 'linger.js'), { env: { OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(port) } });
  try {
    assert.deepEqual(await bare.exited, { code: 0, signal: null });
    await withAgent.waitFor(/lingering/);
    // A keep-alive scrape: the open connection must not hold the process.
    const res = await eventually(() => get(`http://127.0.0.1:${port}/metrics`, { headers: { connection: 'keep-alive' } }));
    assert.equal(res.status, 200);
    const exit = await Promise.race([withAgent.exited, new Promise((r) => setTimeout(() => r('still running after 10 s'), 10_000))]);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(withAgent.stdout(), 'lingering\ndone\n');
  } finally {
    bare.kill();
    withAgent.kill();
  }
});

test('OTEL_EXPORTER_PROMETHEUS_HOST as a host name: a short script does not wait for its lookup, however slow the DNS server, and a service is served there', async () => {
  const port = await freePort();
  const env = { OTEL_EXPORTER_PROMETHEUS_HOST: 'localhost', OTEL_EXPORTER_PROMETHEUS_PORT: String(port) };
  // Every dns.lookup() answers after 10 s, as from a DNS server that is slow or unreachable.
  const script = startApp(HELLO, { execArgv: ['--require', join(FIXTURES, 'slow-dns.js')], env });
  const exit = await Promise.race([script.exited, new Promise((r) => setTimeout(() => r('still running after 5 s'), 5000))]);
  script.kill();
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.equal(script.stdout(), 'hi\n');
  assert.deepEqual(agentLines(script.stderr()), []);
  const service = startApp(SERVER, { env: { ...env, PORT: '0' } });
  try {
    await service.waitFor(/listening/);
    const res = await eventually(() => get(`http://localhost:${port}/metrics`));
    assert.match(res.body, /^target_info\{/m);
    assert.deepEqual(agentLines(service.stderr()), []);
  } finally {
    service.kill();
  }
});

test('console.log("hi") prints and exits 0 under --require and --import alike', async () => {
  for (const preload of ['require', 'import'] as const) {
    const app = startApp(HELLO, { preload, env: { OTEL_EXPORTER_PROMETHEUS_PORT: '0' } });
    const exit = await Promise.race([app.exited, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]);
    app.kill();
    assert.deepEqual(exit, { code: 0, signal: null }, preload);
    assert.equal(app.stdout(), 'hi\n');
    assert.deepEqual(agentLines(app.stderr()), []);
  }
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal}: the app dies of it as it would without the agent`, async () => {
    const outcomes = [];
    for (const preload of ['none', 'require'] as const) {
      const app = startApp(SERVER, { preload, env: { PORT: '0', OTEL_EXPORTER_PROMETHEUS_PORT: '0' } });
      await app.waitFor(/listening/);
      app.kill(signal);
      const exit = await Promise.race([app.exited, new Promise((r) => setTimeout(() => r('ignored the signal for 5 s'), 5000))]);
      app.kill();
      outcomes.push(exit);
    }
    assert.deepEqual(outcomes, [{ code: null, signal }, { code: null, signal }]);
  });

  test(`${signal}: the app's own handler runs and decides the exit code`, async () => {
    const app = startApp(SERVER, { env: { PORT: '0', OTEL_EXPORTER_PROMETHEUS_PORT: '0', SIGNAL_HANDLER: 'exit3' } });
    try {
      await app.waitFor(/listening/);
      app.kill(signal);
      assert.deepEqual(await app.exited, { code: 3, signal: null });
      assert.match(app.stdout(), new RegExp(`app handled ${signal}`));
    } finally {
      app.kill();
    }
  });
}

for (const value of ['abc', '70000']) {
  test(`OTEL_EXPORTER_PROMETHEUS_PORT=${value}: one warning naming it, the default port is used, the app runs`, async () => {
    const appPort = await freePort();
    const app = startApp(SERVER, { env: { PORT: String(appPort), OTEL_EXPORTER_PROMETHEUS_PORT: value, OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_LOG_LEVEL: 'info' } });
    try {
      await app.waitFor(/listening/);
      // The default port is 9000: either it is served there, or (when something else holds 9000) the warning names 9000.
      await app.waitFor(/serving metrics on http:\/\/127\.0\.0\.1:9000\/metrics|cannot serve metrics on 127\.0\.0\.1:9000/);
      const warnings = agentLines(app.stderr()).filter((l) => l.includes('OTEL_EXPORTER_PROMETHEUS_PORT="'));
      assert.deepEqual(warnings, [`promotel warn: OTEL_EXPORTER_PROMETHEUS_PORT="${value}" is invalid: use a port number from 0 to 65535; using 9000`]);
      assert.equal((await get(`http://127.0.0.1:${appPort}/`)).body, 'app ok\n');
    } finally {
      app.kill();
    }
  });
}

for (const stderr of ['a pipe whose reader is gone', '/dev/full'] as const) {
  test(`a warning written to ${stderr} costs nothing: the app runs on and exits 0, as with its own console.error`, async () => {
    const child = spawn(process.execPath, ['--require', REGISTER, '-e', 'setTimeout(() => console.log("fine"), 300)'], {
      stdio: ['ignore', 'pipe', stderr === '/dev/full' ? openSync('/dev/full', 'w') : 'pipe'],
      // An invalid variable: the agent warns at once, then its endpoint goes on port 0.
      env: { ...process.env, NODE_OPTIONS: '', OTEL_EXPORTER_PROMETHEUS_PORT: 'abc', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
    });
    child.stderr?.destroy();
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    const exit = await new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    assert.deepEqual({ exit, out }, { exit: { code: 0, signal: null }, out: 'fine\n' });
  });
}

test('OTEL_SDK_DISABLED=true: nothing is loaded and no port is opened', async () => {
  const port = await freePort();
  const app = startApp(join(FIXTURES, 'disabled-probe.js'), { env: { OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_PROMETHEUS_PORT: String(port), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  assert.deepEqual(JSON.parse(app.stdout()), { loaded: 0 });
  assert.equal(app.stderr(), '');
  // The same probe without the switch sees the SDK, so the assertion above can fail.
  const enabled = startApp(join(FIXTURES, 'disabled-probe.js'), { env: { OTEL_EXPORTER_PROMETHEUS_PORT: String(port), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  await enabled.exited;
  assert.ok(JSON.parse(enabled.stdout()).loaded > 0);
});

/** The fixture whose metric callbacks fail (FAILURES picks how), beside a working counter. */
async function startFragile(env: Record<string, string> = {}): Promise<{ app: App; appPort: number; metricsPort: number }> {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'throwing-callback.js'), { env: { ...env, PORT: String(appPort), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  return { app, appPort, metricsPort };
}

/** Three scrapes, each answered 200 with the working counter. */
async function servesThrice(metricsPort: number): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const res = await get(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.body, /^fragile_ok_total\{otel_scope_name="fragile"\} 5$/m);
  }
}

test('a failing metric callback never reaches the app: the scrape succeeds and one warning is logged', async () => {
  const { app, appPort, metricsPort } = await startFragile();
  try {
    await app.waitFor(/listening/);
    await servesThrice(metricsPort);
    assert.equal((await get(`http://127.0.0.1:${appPort}/`)).body, 'still here\n');
    const lines = agentLines(app.stderr());
    assert.equal(lines.length, 1, app.stderr());
    assert.match(lines[0]!, /^promotel warn: a metric callback failed during a scrape \(sensor unplugged\); the other metrics were served/);
    assert.equal(app.child.exitCode, null);
  } finally {
    app.kill();
  }
});

test('callbacks that fail with no reason, null, or an unprintable value cost one warning each, not the scrape', async () => {
  const { app, metricsPort } = await startFragile({ FAILURES: 'odd' });
  try {
    await app.waitFor(/listening/);
    await servesThrice(metricsPort);
    const causes = agentLines(app.stderr()).map((l) => /^promotel warn: a metric callback failed during a scrape \((.*)\); the other metrics were served/.exec(l)?.[1] ?? l);
    assert.deepEqual(causes.sort(), ['a value that cannot be printed', 'it rejected with null, not an Error', 'it rejected with undefined, not an Error', 'sensor unplugged']);
  } finally {
    app.kill();
  }
});

test('a callback that never settles: the scrape is answered within the timeout Prometheus sends, with the other metrics', async () => {
  const { app, metricsPort } = await startFragile({ FAILURES: 'hang', PROMOTEL_RUNTIME_METRICS: 'false', PROMOTEL_HOST_METRICS: 'false' });
  try {
    await app.waitFor(/listening/);
    const started = performance.now();
    const res = await get(`http://127.0.0.1:${metricsPort}/metrics`, { headers: { 'X-Prometheus-Scrape-Timeout-Seconds': '2' } });
    const ms = performance.now() - started;
    assert.equal(res.status, 200);
    assert.match(res.body, /^fragile_ok_total\{otel_scope_name="fragile"\} 5$/m);
    // 2 s less the half second of margin: well before the scraper gives up, and not at once (the callback had its time).
    assert.ok(ms >= 1400 && ms < 1950, `answered after ${Math.round(ms)} ms`);
    assert.match(agentLines(app.stderr()).join('\n'), /a metric callback failed during a scrape \(.*\); the other metrics were served/);
  } finally {
    app.kill();
  }
});

test('the callbacks\' timeout: the scraper\'s less half a second, between 0.1 and 10 s', () => {
  assert.deepEqual(['5', '0.3', '30', 'abc', undefined, ['2', '9']].map((h) => scrapeTimeoutMs(h)), [4500, 100, 10_000, 10_000, 10_000, 1500]);
});

test('a child process the app starts finds the port taken by its parent: the warning says so, and how to quiet it', async () => {
  const port = await freePort();
  const script = `setTimeout(() => { require('node:child_process').spawnSync(process.execPath, [...process.execArgv, '-e', 'setTimeout(() => {}, 800)'], { stdio: 'inherit' }); console.log(process.pid); }, 500);`;
  const app = startApp('-e', { args: [script], env: { OTEL_EXPORTER_PROMETHEUS_PORT: String(port), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  const parent = app.stdout().trim();
  assert.deepEqual(agentLines(app.stderr()), [
    `promotel warn: cannot serve metrics on 127.0.0.1:${port}: port ${port} is already in use; set OTEL_EXPORTER_PROMETHEUS_PORT to a free port for this process, a child of pid ${parent} whose promotel serves that port (only node:cluster workers report to their parent's endpoint), or set OTEL_SDK_DISABLED=true for it to run without the agent (the application keeps running without a metrics endpoint; promotel tries the port again every 2 s)`,
  ]);
});

test('loaded twice (NODE_OPTIONS and --require), the agent starts once', async () => {
  const port = await freePort();
  const app = startApp(SERVER, {
    env: { PORT: '0', NODE_OPTIONS: `--require ${REGISTER}`, OTEL_EXPORTER_PROMETHEUS_PORT: String(port), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
  });
  try {
    await app.waitFor(/listening/);
    assert.equal((await get(`http://127.0.0.1:${port}/metrics`)).status, 200);
    assert.deepEqual(agentLines(app.stderr()), []);
  } finally {
    app.kill();
  }
});

test('NODE_OPTIONS="--require promotel/register" resolves the package by name', async () => {
  const port = await freePort();
  const app = startApp(SERVER, { preload: 'none', cwd: ROOT, env: { PORT: '0', NODE_OPTIONS: '--require promotel/register', OTEL_EXPORTER_PROMETHEUS_PORT: String(port), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  try {
    await app.waitFor(/listening/);
    const res = await get(`http://127.0.0.1:${port}/metrics`);
    assert.match(res.body, /^nodejs_version_info\{[^}]*\bversion="v[\d.]+"[^}]*otel_scope_name="promotel"[^}]*\} 1$/m);
  } finally {
    app.kill();
  }
});

test('worker_threads inherit the preload, but only the main thread runs the agent: no second endpoint, no warnings', async () => {
  const port = await freePort();
  const app = startApp(join(FIXTURES, 'threads-app.js'), { env: { PORT: '0', OTEL_EXPORTER_PROMETHEUS_PORT: String(port), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  try {
    await app.waitFor(/threads done/);
    const body = (await get(`http://127.0.0.1:${port}/metrics`)).body;
    assert.match(body, /^http_server_request_duration_seconds_count\{[^}]*\} 2$/m, 'the threads\' requests reached the main thread\'s server');
    assert.deepEqual(agentLines(app.stderr()), [], 'no thread tried to take the port');
  } finally {
    app.kill();
  }
});

test('under `npm start` with NODE_OPTIONS, the app serves the endpoint, not npm', { timeout: 60_000 }, async () => {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'promotel-npm-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'npm-started-app', version: '1.0.0', private: true, scripts: { start: 'node server.js' } }));
  // Ends by itself, so that nothing outlives the test even if npm does not pass the signal on.
  writeFileSync(join(dir, 'server.js'), "const s = require('node:http').createServer((q, r) => r.end('ok')).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('app listening ' + process.pid)); setTimeout(() => process.exit(0), 30000);\n");
  // Through npm's bin link, as a shell or a container's CMD runs it: then npm's own path has no .js.
  const npmBin = join(dirname(process.execPath), 'npm');
  assert.ok(existsSync(npmBin), `no npm beside node at ${npmBin}`);
  const npm = startApp(npmBin, {
    preload: 'none',
    cwd: dir,
    args: ['start', '--silent', '--no-update-notifier'],
    env: { NODE_OPTIONS: `--require ${REGISTER}`, PORT: String(appPort), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
  });
  let appPid: number | undefined;
  try {
    appPid = Number((await npm.waitFor(/app listening \d+/, 30_000)).split(' ').pop());
    assert.equal((await get(`http://127.0.0.1:${appPort}/`)).body, 'ok');
    const body = await eventually(async () => {
      const res = await get(`http://127.0.0.1:${metricsPort}/metrics`).catch(() => undefined);
      return res?.body.includes('http_server_request_duration_seconds_count') ? res.body : undefined;
    }, 10_000);
    assert.match(body, new RegExp(`^target_info\\{[^}]*process_pid="${appPid}"`, 'm'), 'the endpoint is the app\'s');
    assert.deepEqual(agentLines(npm.stderr()), []);
  } finally {
    npm.kill('SIGTERM');
    if (appPid) process.kill(appPid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an app with its own MeterProvider: one warning line, and promotel.shutdown() leaves that provider registered', async () => {
  const port = await freePort();
  const app = startApp(join(FIXTURES, 'own-provider.js'), { preload: 'none', env: { PROMOTEL_ENTRY: join(ROOT, 'dist', 'src', 'index.js'), OTEL_EXPORTER_PROMETHEUS_PORT: String(port), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  await app.exited;
  assert.match(app.stdout(), /^still mine: true$/m);
  assert.deepEqual(agentLines(app.stderr()), [
    `promotel warn: a global MeterProvider was already registered before promotel, so metrics made with @opentelemetry/api go there, not to :${port}: load promotel first (--require/--import promotel/register) or drop the other SDK`,
  ]);
});

test('stderr whose reader is gone: the agent\'s warning does not use up the one failed write Node forgives the app', async () => {
  // Node lets a stdio stream's first write error pass and lets the second kill the process (EPIPE).
  async function run(preload: string[], lines: number): Promise<{ code: number | null; stdout: string }> {
    const child = spawn(process.execPath, [...preload, join(FIXTURES, 'stderr-lines.js')], {
      // An invalid port: the agent warns at once, on the broken stderr.
      env: { PATH: process.env.PATH, LINES: String(lines), OTEL_EXPORTER_PROMETHEUS_PORT: 'abc' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stderr.destroy();
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    return { code, stdout };
  }
  for (const lines of [1, 2]) {
    const [bare, agent] = await Promise.all([run([], lines), run(['--require', REGISTER], lines)]);
    assert.deepEqual(bare, lines === 1 ? { code: 0, stdout: 'alive\n' } : { code: 1, stdout: '' }, `bare, ${lines} lines`);
    assert.deepEqual(agent, bare, `with the agent, ${lines} lines`);
  }
});

test('an app started in a directory deleted since is measured as any other, without a warning', async () => {
  const gone = mkdtempSync(join(tmpdir(), 'promotel-gone-'));
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  // The shell enters the directory and deletes it, then becomes node: process.cwd() throws from the start.
  const child = spawn('sh', ['-c', `cd "${gone}" && rmdir "${gone}" && exec "${process.execPath}" --require "${REGISTER}" "${SERVER}"`], {
    env: { PATH: process.env.PATH, PORT: String(appPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  try {
    assert.equal((await eventually(() => get(`http://127.0.0.1:${appPort}/`))).body, 'app ok\n');
    const body = (await eventually(async () => {
      const res = await get(`http://127.0.0.1:${metricsPort}/metrics`);
      return res.body.includes('http_server_request_duration_seconds_count') && res;
    })).body;
    assert.match(body, /^http_server_request_duration_seconds_count\{.*http_response_status_code="200".*\} 1$/m);
    // Named from the script's package, found from its absolute path.
    assert.match(body, /^target_info\{.*service_name="promotel".*\} 1$/m);
    assert.equal(agentLines(stderr).join('\n'), '');
  } finally {
    child.kill('SIGKILL');
    if (existsSync(gone)) rmSync(gone, { recursive: true });
  }
});
