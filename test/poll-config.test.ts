// The sidecar's command line and config file: validated in full at start
// (every problem as file:line: field: what is wrong; the fix), checked alone
// with --check, reloaded on SIGHUP and on change, and a bad reload keeps the
// config that works.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { HELP, OPTIONS } from '../src/cli';
import { eventually, freePort, get, ROOT, startApp } from './helpers';
import { CLI, scrape, startPoller, startTargets, value, type Targets } from './poll-helpers';

let dir: string;
let t: Targets;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'promotel-config-'));
  t = await startTargets();
});

after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await t?.close();
});

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 15_000, env: { PATH: process.env.PATH } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const BAD = `interval: 15 seconds
modules:
  api:
    format: xml
targets:
  - name: a
    url: ftp://x/
  - name: a
    url: http://x/
    module: nope
    colour: red
`;

test('--check lists every problem with the file, the line and the field, and exits 1', () => {
  const path = file('bad.yaml', BAD);
  const r = cli(['poll', '--check', path]);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.deepEqual(r.stderr.trimEnd().split('\n'), [
    `${path}:1: interval: "15 seconds" is not a duration: write it like 500ms, 15s, 1m or 1m30s`,
    `${path}:4: modules.api.format: "xml" is not a format: use none, json or prometheus`,
    `${path}:7: targets[0].url: "ftp://x/" has scheme ftp: only http and https can be polled`,
    `${path}:8: targets[1].name: "a" is used by an earlier target: target names must be unique`,
    `${path}:10: targets[1].module: "nope" is not defined: use one of http, prometheus, api or define it under modules:`,
    `${path}:11: targets[1].colour: is not a known field: use one of name, url, module, job, labels, interval, timeout`,
  ]);
});

test('--check names the line of a YAML syntax error, and a file that cannot be read', () => {
  const path = file('syntax.yaml', 'targets:\n  - name: a\n   url: http://x/\n');
  const r = cli(['poll', '--check', path]);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `${path}:3: YAML syntax: Sequence item without - indicator\n`);
  const twice = file('twice.yaml', 'interval: 1s\ninterval: 2s\ntargets:\n  - { name: a, url: "ftp://x/" }\n');
  assert.deepEqual(cli(['poll', '--check', twice]).stderr.trimEnd().split('\n'), [
    `${twice}:2: YAML syntax: interval is given twice in one map: keep one of them`,
    `${twice}:4: targets[0].url: "ftp://x/" has scheme ftp: only http and https can be polled`,
  ], 'a duplicate key does not hide the other problems');
  const missing = cli(['poll', '--check', join(dir, 'nope.yaml')]);
  assert.equal(missing.status, 1);
  assert.equal(missing.stderr, `${join(dir, 'nope.yaml')}: cannot read the config file (ENOENT): check the path given to --config\n`);
  const module = file('module.yaml', 'modules:\n  m:\n    timeout: 0s\n    headers: { "X Bad": v }\n  j: { format: json, metrics: [] }\ntargets: []\n');
  assert.deepEqual(cli(['poll', '--check', module]).stderr.trimEnd().split('\n'), [
    `${module}:3: modules.m.timeout: must be above 0: give a duration such as 5s`,
    `${module}:4: modules.m.headers.X Bad: is not an HTTP header name: use letters, digits and - (no spaces)`,
    `${module}:5: modules.j.metrics: is empty: a json module needs at least one metric (name, value selector)`,
  ]);
  const label = file('label.yaml', 'targets:\n  - name: a\n    url: http://x/\n    labels:\n      bad-name:\n        v\n');
  assert.equal(cli(['poll', '--check', label]).stderr, `${label}:5: targets[0].labels.bad-name: is not a usable label name: use letters, digits and _, not starting with __\n`);
  // A label the exposition sets itself would be repeated in the output, and Prometheus would refuse the whole scrape.
  const many = file('many.yaml', 'modules:\n  j:\n    format: json\n    metrics:\n      - { name: depth, value: "$.queues[*].depth" }\ntargets: []\n');
  assert.equal(cli(['poll', '--check', many]).stderr, `${many}:5: modules.j.metrics[0].value: "$.queues[*].depth" may reach several values: put the list part in each (each: $.queues[*], value: $.depth) and keep value to one field\n`);
  assert.match(cli(['poll', '--target', 'http://x/', '--interval', '1000h']).stderr, /--interval "1000h" is longer than 596h, the longest a timer can wait: give a shorter duration/);
  const twiceMetric = file('twice-metric.yaml', 'modules:\n  j:\n    format: json\n    metrics:\n      - { name: backlog, each: "$.queues[*]", value: $.n, labels: { queue: $.name } }\n      - { name: backlog, each: "$.topics[*]", value: $.n, labels: { topic: $.name } }\n      - { name: backlog, type: counter, value: $.total }\ntargets: []\n');
  assert.equal(cli(['poll', '--check', twiceMetric]).stderr, `${twiceMetric}:7: modules.j.metrics[2].type: "counter" differs from the gauge of an earlier metric named "backlog": one name is one family of one type; rename one of them\n`, 'one name for two lists is fine; two types are not');
  const taken = file('taken.yaml', 'modules:\n  j: { format: json, metrics: [{ name: x, value: $.a, labels: { le: $.b } }] }\ntargets:\n  - { name: a, url: "http://x/", labels: { otel_scope_name: mine } }\n');
  assert.deepEqual(cli(['poll', '--check', taken]).stderr.trimEnd().split('\n'), [
    `${taken}:2: modules.j.metrics[0].labels.le: is a label promotel sets itself: use another name (not target, job, otel_scope_name, otel_scope_version, otel_scope_schema_url, le, quantile)`,
    `${taken}:4: targets[0].labels.otel_scope_name: is a label promotel sets itself: use another name (not target, job, otel_scope_name, otel_scope_version, otel_scope_schema_url, le, quantile)`,
  ]);
  const zero = file('zero.yaml', 'timeout: 0s\ntargets:\n  - { name: a, url: "http://x/" }\n  - { name: b, url: "http://y/" }\n');
  assert.deepEqual(cli(['poll', '--check', zero]).stderr.trimEnd().split('\n'), [`${zero}:1: timeout: must be above 0: give a duration such as 5s`], 'one problem, where it was written');
  const long = file('long.yaml', 'interval: 600h\ntargets: []\n');
  assert.equal(cli(['poll', '--check', long]).stderr, `${long}:1: interval: "600h" is longer than 596h, the longest a timer can wait: give a shorter duration\n`);
  const json = file('json.yaml', 'modules:\n  api:\n    format: json\n    metrics:\n      - name: x\n        value: queue.depth\ntargets: []\n');
  assert.match(cli(['poll', '--check', json]).stderr, new RegExp(`^${json}:6: modules\\.api\\.metrics\\[0\\]\\.value: "queue\\.depth" does not start with \\$`));
});

test('the example config is valid', () => {
  const r = cli(['poll', '--check', join(ROOT, 'examples', 'promotel.yaml')]);
  assert.equal(r.stderr, '');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /promotel\.yaml: valid: 1 target\(s\)/);
});

test('a bad config stops `promotel poll` before it opens its port', async () => {
  const port = await freePort();
  const r = cli(['poll', '--config', file('bad2.yaml', BAD), '--port', String(port), '--host', '127.0.0.1']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /:1: interval: /);
  assert.match(r.stderr, /promotel: not started: fix the config/);
  assert.doesNotMatch(r.stderr, /serving metrics/);
});

test('--help documents every flag; unknown flags and commands exit 2 with a hint', () => {
  const help = cli(['--help']);
  assert.equal(help.status, 0);
  assert.equal(help.stdout, HELP);
  for (const [name, spec] of Object.entries(OPTIONS)) {
    assert.match(HELP, new RegExp(`--${name}\\b`), `--${name} is in --help`);
    if ('short' in spec) assert.match(HELP, new RegExp(`-${spec.short}, --${name}\\b`));
  }
  assert.match(cli(['--version']).stdout, /^promotel \d+\.\d+\.\d+\n$/);
  const unknown = cli(['poll', '--colour', 'red']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /Unknown option '--colour'[\s\S]*Run promotel --help/);
  assert.equal(cli(['serve']).status, 2);
  assert.match(cli(['poll']).stderr, /nothing to poll: give --config FILE or --target URL/);
  assert.match(cli(['poll', '--target', 'http://x/', '--interval', 'soon']).stderr, /--interval "soon" is not a duration/);
});

test('--target polls a URL with no config file', async () => {
  const poller = await startPoller(undefined, ['--target', `${t.base}/ok`, '--interval', '100ms', '--jitter', '0s']);
  try {
    const body = await eventually(async () => {
      const b = await scrape(`${poller.url}/metrics`);
      return value(b, 'promotel_poll_duration_seconds_count', { target: `${t.base}/ok` })! >= 2 ? b : undefined;
    }, 5000, 50);
    assert.equal(value(body, 'promotel_probe_success', { target: `${t.base}/ok`, job: `${t.base}/ok` }), 1);
  } finally {
    await poller.stop();
  }
});

test('a taken port is one line naming the port and the flag, and exit code 1', async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as { port: number }).port;
  try {
    const app = startApp(CLI, { preload: 'none', args: ['poll', '--target', `${t.base}/ok`, '--host', '127.0.0.1', '--port', String(port)] });
    const { code } = await app.exited;
    assert.equal(code, 1);
    const warnings = app.stderr().split('\n').filter((l) => /port/.test(l));
    assert.equal(warnings.length, 1, app.stderr());
    assert.match(warnings[0]!, new RegExp(`${port}.*--port`));
  } finally {
    blocker.close();
  }
});

test('an address it cannot bind is one line naming the flag, and exit code 1', async () => {
  // TEST-NET-3: never an address of this machine.
  const app = startApp(CLI, { preload: 'none', args: ['poll', '--target', `${t.base}/ok`, '--host', '203.0.113.7', '--port', String(await freePort())] });
  const { code } = await app.exited;
  assert.equal(code, 1);
  const lines = app.stderr().split('\n').filter((l) => /cannot serve/.test(l));
  assert.equal(lines.length, 1, app.stderr());
  assert.match(lines[0]!, /203\.0\.113\.7.*EADDRNOTAVAIL.*check OTEL_EXPORTER_PROMETHEUS_HOST \(or --host\) and OTEL_EXPORTER_PROMETHEUS_PORT \(or --port\)/);
});

test('a changed file and SIGHUP reload the config; a bad reload keeps the old one and says why', async () => {
  const one = `interval: 0s\ntargets:\n  - { name: ok, url: "${t.base}/ok" }\n`;
  const two = `${one}  - { name: fail, url: "${t.base}/fail" }\n`;
  const poller = await startPoller(one);
  try {
    const targets = async (): Promise<number | undefined> => value(await scrape(`${poller.url}/metrics`), 'promotel_poll_targets');
    const reloadOk = async (): Promise<number | undefined> => value(await scrape(`${poller.url}/metrics`), 'promotel_poll_config_last_reload_success');
    assert.equal(await targets(), 1);

    writeFileSync(poller.configFile, two);
    await poller.waitFor(/reloaded .*\(the file changed\): 2 target\(s\)/, 5000);
    assert.equal(await targets(), 2);
    assert.equal(await reloadOk(), 1);

    writeFileSync(poller.configFile, `${two}  - { name: broken, url: "gopher://x/" }\n`);
    const line = await poller.waitFor(/reloading .* failed; the previous config stays in use.*/, 5000);
    assert.match(line, /:5: targets\[2\]\.url: "gopher:\/\/x\/" has scheme gopher/);
    assert.equal(await targets(), 2, 'the old config still runs');
    assert.equal(await reloadOk(), 0);
    const probed = await scrape(`${poller.url}/probe?target=fail`);
    assert.equal(value(probed, 'promotel_probe_http_status_code', { target: 'fail' }), 503);

    const selfSeries = async (target: string): Promise<Array<number | undefined>> => {
      const text = await scrape(`${poller.url}/metrics`);
      return [value(text, 'promotel_poll_duration_seconds_count', { target }), value(text, 'promotel_poll_errors_total', { target, reason: 'status_code' })];
    };
    assert.deepEqual(await selfSeries('fail'), [1, 1], 'the probe of fail was counted');
    await scrape(`${poller.url}/probe?target=ok`);

    // SIGHUP rereads the file even when it did not change on disk.
    writeFileSync(poller.configFile, one);
    await poller.waitFor(/reloaded .*\(the file changed\): 1 target\(s\)/, 5000);
    assert.deepEqual(await selfSeries('fail'), [undefined, undefined], 'the series of a removed target leave /metrics');
    assert.equal(value(await scrape(`${poller.url}/metrics`), 'promotel_poll_duration_seconds_count', { target: 'ok' }), 1, 'the remaining target keeps its own');
    poller.kill('SIGHUP');
    await poller.waitFor(/reloaded .*\(SIGHUP\): 1 target\(s\)/, 5000);
    assert.equal(await targets(), 1);
    assert.equal(await reloadOk(), 1);
    assert.equal((await get(`${poller.url}/probe?target=fail`)).status, 400, 'a removed target is no longer a name /probe knows');
  } finally {
    const { code } = await poller.stop();
    assert.equal(code, 0);
  }
});

test('a target reloaded to interval 0 leaves /metrics: its last scheduled poll is not served as current for good', async () => {
  const scheduled = `interval: 200ms\njitter: 0s\ntargets:\n  - { name: ok, url: "${t.base}/ok" }\n`;
  const poller = await startPoller(scheduled);
  try {
    const success = async (): Promise<number | undefined> => value(await scrape(`${poller.url}/metrics`), 'promotel_probe_success', { target: 'ok' });
    await eventually(async () => (await success()) === 1);
    writeFileSync(poller.configFile, scheduled.replace('interval: 200ms', 'interval: 0s'));
    await poller.waitFor(/reloaded .*\(the file changed\): 1 target\(s\)/, 5000);
    assert.equal(await success(), undefined, 'no poll for /metrics any more: no result there');
    assert.equal(value(await scrape(`${poller.url}/probe?target=ok`), 'promotel_probe_success', { target: 'ok' }), 1, '/probe still polls it');
    assert.equal(await success(), undefined, 'and a /probe does not make it a /metrics result');
  } finally {
    await poller.stop();
  }
});
