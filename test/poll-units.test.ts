// The small pure parts of the sidecar, as their documentation describes
// them: the JSON selector syntax, allow: URL patterns, durations, and the
// scheduler's jitter and concurrency limit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allowed, compilePattern, normalise } from '../src/poll/allow';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseConfig, parseDuration } from '../src/poll/config';
import { handleProbe } from '../src/poll/endpoint';
import { createLimiter, createScheduler } from '../src/poll/scheduler';
import { jitterOf } from '../src/poll/service';
import { compileSelector, select } from '../src/poll/selector';
import * as log from '../src/log';
import { captureStderr, get } from './helpers';
import { startPoller, startTargets, value } from './poll-helpers';

test('selectors: fields, quoted keys, indexes, wildcards and @key', () => {
  const doc = { a: { 'b c': [10, 20, 30] }, list: [{ n: 1 }, { n: 2 }], map: { x: { n: 3 }, y: { n: 4 } } };
  const values = (s: string, root: unknown = doc): unknown[] => select(compileSelector(s), root).map((m) => m.value);
  assert.deepEqual(values('$'), [doc]);
  assert.deepEqual(values('$.a["b c"][1]'), [20]);
  assert.deepEqual(values('$.list[*].n'), [1, 2]);
  assert.deepEqual(values('$.map.*.n'), [3, 4]);
  assert.deepEqual(select(compileSelector('$.map.*'), doc).map((m) => m.key), ['x', 'y']);
  assert.deepEqual(select(compileSelector('@key'), { n: 3 }, 'x'), [{ value: 'x', key: 'x' }]);
  assert.deepEqual(values('$.missing.n'), []);
  assert.deepEqual(values('$.list.n'), [], 'a field of a list is nothing: use [*]');
  assert.deepEqual(values('$.constructor'), [], 'only own fields');
  assert.throws(() => compileSelector('queue.depth'), /does not start with \$/);
  assert.throws(() => compileSelector('$.a..b'), /cannot be read at "\.\.b" \(position 4\)/);
});

test('allow patterns: * is one segment, a trailing ** the rest, matched after normalisation', () => {
  const yes = (pattern: string, url: string): boolean => allowed(normalise(url)!, [compilePattern(pattern)]);
  assert.equal(yes('http://127.0.0.1:8080/health', 'http://127.0.0.1:8080/health'), true);
  assert.equal(yes('http://127.0.0.1:8080/health', 'http://127.0.0.1:8080/health?x=1'), false, 'no query unless **');
  assert.equal(yes('http://*.svc.local:8080/q', 'http://shop.svc.local:8080/q'), true);
  assert.equal(yes('http://*.svc.local:8080/q', 'http://evil.com/.svc.local:8080/q'), false);
  // In the host, * is one label or the port: never a dot or a colon.
  assert.equal(yes('http://10.0.0.*/metrics', 'http://10.0.0.7/metrics'), true);
  assert.equal(yes('http://10.0.0.*/metrics', 'http://10.0.0.1:6379/metrics'), false);
  assert.equal(yes('http://10.0.0.*/metrics', 'http://10.0.0.169.254.169.254.nip.io/metrics'), false);
  assert.equal(yes('http://*.svc.local:8080/q', 'http://a.b.svc.local:8080/q'), false);
  assert.equal(yes('http://10.0.0.1:*/metrics', 'http://10.0.0.1:9100/metrics'), true);
  assert.equal(yes('https://api.internal/status/**', 'https://api.internal/status/a/b?c=d'), true);
  assert.equal(yes('https://api.internal/status/**', 'https://api.internal/status/../admin'), false);
  assert.equal(yes('https://api.internal:443/x', 'https://API.internal/x'), true, 'default port and host case are normalised');
  assert.equal(normalise('http://u:p@h/'), undefined);
  assert.equal(normalise('ftp://h/'), undefined);
  assert.throws(() => compilePattern('http://h/**/x'), /\*\* is only allowed at the end/);
  assert.throws(() => compilePattern('h:80/x'), /is not an http\(s\) URL pattern/);
});

test('durations: 500ms, 15s, 1m30s, or a number of seconds', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('15s'), 15_000);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.equal(parseDuration(2.5), 2500);
  assert.equal(parseDuration('15'), undefined, 'a unit is required in text');
  assert.equal(parseDuration('-1s'), undefined);
  assert.equal(parseDuration('15 seconds'), undefined);
  assert.equal(parseDuration('596h'), 2_145_600_000);
  assert.equal(parseDuration('600h'), undefined, 'past what a timer can wait, it would fire at once');
});

test('the limiter never runs more than its limit, and a busy target skips its turn', async () => {
  const limiter = createLimiter(3);
  let running = 0;
  let most = 0;
  let runs = 0;
  const job = (i: number) => ({
    key: `job${i}`, intervalMs: 20, jitterMs: 0,
    run: async () => {
      runs++;
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 50)); // longer than the interval
      running--;
    },
  });
  const scheduler = createScheduler(limiter, () => 0);
  scheduler.set(Array.from({ length: 10 }, (_, i) => job(i)));
  await new Promise((r) => setTimeout(r, 330));
  scheduler.stop();
  assert.equal(most, 3);
  // 3 at a time for 330 ms of 50 ms polls is at most 3 * ceil(330 / 50) = 21 runs, never 10 * 16.
  assert.ok(runs >= 6 && runs <= 21, `runs: ${runs}`);
});

test('jitter spreads first polls over [0, jitter) and unchanged jobs keep their timers on set()', async () => {
  const started: Array<[string, number]> = [];
  const t0 = Date.now();
  const draws = [0, 0.5, 0.99];
  let i = 0;
  const scheduler = createScheduler(createLimiter(10), () => draws[i++ % draws.length]!);
  const job = (key: string) => ({ key, intervalMs: 10_000, jitterMs: 200, run: async () => void started.push([key, Date.now() - t0]) });
  scheduler.set([job('a'), job('b'), job('c')]);
  await new Promise((r) => setTimeout(r, 60));
  scheduler.set([job('a'), job('b'), job('c')]); // a reload with the same targets: no new first poll
  await new Promise((r) => setTimeout(r, 400));
  scheduler.stop();
  assert.deepEqual(started.map(([k]) => k), ['a', 'b', 'c']);
  const at = Object.fromEntries(started);
  // Timers may fire late on a busy machine, never early.
  assert.ok(at.a! < 95, `a at ${at.a}`);
  assert.ok(at.b! >= 99 && at.b! < 190, `b at ${at.b}`);
  assert.ok(at.c! >= 197, `c at ${at.c}`);
});

test('the limiter counts what waits, and /probe answers 503 instead of queueing past the bound', async () => {
  const limiter = createLimiter(1);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const runs = [limiter.run(() => gate), limiter.run(async () => 1), limiter.run(async () => 2)];
  assert.equal(limiter.active, 1);
  assert.equal(limiter.queued, 2);
  release();
  await Promise.all(runs);
  assert.equal(limiter.queued, 0);

  const config = parseConfig('targets:\n  - { name: a, url: "http://127.0.0.1:1/" }\n');
  let polled = 0;
  const server = createServer((req, res) => handleProbe(req, res, { config: () => config, poll: async () => (polled++, []), busy: () => true }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/probe?target=a`);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.match(await res.text(), /too many probes are waiting/);
    assert.equal(polled, 0);
  } finally {
    server.close();
  }
});

test('/probe waits for a poll slot only until its deadline, then answers 503 in time', async () => {
  const t = await startTargets();
  // One slot, held by a target that answers after 2 s and is polled again at once.
  const poller = await startPoller(`
interval: 1s
concurrency: 1
targets:
  - { name: slow, url: "${t.base}/slow", timeout: 5s }
  - { name: ok, url: "${t.base}/ok", interval: 1h }
`);
  try {
    await new Promise((r) => setTimeout(r, 1200)); // the first poll of ok is done; slow holds the slot
    const started = Date.now();
    const res = await get(`${poller.url}/probe?target=ok`, { headers: { 'X-Prometheus-Scrape-Timeout-Seconds': '1' } });
    const ms = Date.now() - started;
    assert.equal(res.status, 503, res.body);
    assert.match(res.body, /no poll slot came free in time for a 500 ms probe \(all 1 were busy\): raise concurrency: in the config, or probe less often/);
    assert.ok(ms < 1000, `answered after ${ms} ms, within the scraper's 1 s`);
  } finally {
    await poller.stop();
    await t.close();
  }
});

test('jitter defaults to a tenth of each target\'s own interval, and never exceeds it', () => {
  const unset = parseConfig('interval: 5m\ntargets:\n  - { name: fast, url: "http://h/", interval: 10s }\n  - { name: slow, url: "http://h/" }\n');
  assert.deepEqual(unset.targets.map((t) => jitterOf(unset, t)), [1000, 30_000]);
  const set = parseConfig('interval: 5m\njitter: 1m\ntargets:\n  - { name: fast, url: "http://h/", interval: 10s }\n  - { name: slow, url: "http://h/" }\n');
  assert.deepEqual(set.targets.map((t) => jitterOf(set, t)), [10_000, 60_000]);
});

test('a log line stays one line of text whatever a target sent: control bytes are escaped', () => {
  const stderr = captureStderr();
  try {
    log.warn('body starts "\u0000\u001b[31m\r\nx"');
  } finally {
    stderr.restore();
  }
  assert.deepEqual(stderr.lines, ['promotel warn: body starts "\\x00\\x1b[31m x"\n']);
});

test('text fields keep the text the file wrote: 1.10, 007, 0x10 and 1e3 are not numbers, so two targets 0x10 and 16 stay two', () => {
  const config = parseConfig(`targets:
  - { name: 0x10, url: "http://h/a", job: 1.20, labels: { version: 1.10, build: 007, flag: 1e3, on: true } }
  - { name: 16, url: "http://h/b" }
`);
  assert.deepEqual(config.targets.map((t) => [t.name, t.job, t.labels]), [
    ['0x10', '1.20', { version: '1.10', build: '007', flag: '1e3', on: 'true' }],
    ['16', '16', {}],
  ]);
});

test('/probe: converting a body that came in time is bounded by the deadline too; past it the probe fails as a timeout, in time', async () => {
  const t = await startTargets();
  const poller = await startPoller(`
interval: 0s
modules: { metrics: { format: prometheus } }
targets:
  - { name: big, url: "${t.base}/big", module: metrics, timeout: 10s }
`);
  try {
    await get(`${t.base}/big`); // the body is built once, before the clock starts: it then comes in a few ms
    const started = Date.now();
    const res = await get(`${poller.url}/probe?target=big`, { headers: { 'X-Prometheus-Scrape-Timeout-Seconds': '1' } });
    const ms = Date.now() - started;
    assert.equal(res.status, 200);
    assert.equal(value(res.body, 'promotel_probe_success', { target: 'big', job: 'big' }), 0);
    assert.ok(ms < 1000, `answered after ${ms} ms, within the scraper's 1 s`);
    assert.match(poller.stderr(), /target big .* failed: timeout: the answer came, but converting it took past the \d+ ms timeout/);
  } finally {
    await poller.stop();
    await t.close();
  }
});

test('/probe: a big JSON body is converted within the deadline too, in slices; past it the probe fails as a timeout, in time', async () => {
  const t = await startTargets();
  // 300,000 elements, 10 MB (under the default max_body_size): seconds of conversion on one thread.
  t.jsonBodies = [JSON.stringify({ items: Array.from({ length: 300_000 }, (_, i) => ({ name: `q${i}`, depth: i })) })];
  const poller = await startPoller(`
interval: 0s
modules:
  api:
    format: json
    metrics: [{ name: q_depth, each: "$.items[*]", value: $.depth, labels: { queue: $.name } }]
targets:
  - { name: big, url: "${t.base}/json", module: api, timeout: 10s }
`);
  try {
    const started = Date.now();
    const res = await get(`${poller.url}/probe?target=big`, { headers: { 'X-Prometheus-Scrape-Timeout-Seconds': '1.5' } });
    const ms = Date.now() - started;
    assert.equal(res.status, 200);
    assert.equal(value(res.body, 'promotel_probe_success', { target: 'big', job: 'big' }), 0);
    assert.equal(value(res.body, 'promotel_probe_failure', { target: 'big', job: 'big', reason: 'timeout' }), 1);
    assert.equal(value(res.body, 'q_depth', { target: 'big', job: 'big', queue: 'q0' }), undefined);
    assert.ok(ms < 1500, `answered after ${ms} ms, within the scraper's 1.5 s`);
    assert.match(poller.stderr(), /target big .* failed: timeout: the answer came, but converting it took past the \d+ ms timeout/);
  } finally {
    await poller.stop();
    await t.close();
  }
});

test('warnOnce remembers 10,000 problems at most: past that, new ones say so once and go to debug', () => {
  const stderr = captureStderr();
  try {
    for (let i = 0; i < 10_005; i++) log.warnOnce(`test-bound:${i}`, `problem ${i}`);
    log.warnOnce('test-bound:0', 'problem 0 again');
  } finally {
    stderr.restore();
    log.forgetWarnings('test-bound:');
  }
  // 10,000 problems said, then one line saying the rest go to debug (off at the default level), and no repeat.
  assert.equal(stderr.lines.length, 10_001);
  assert.equal(stderr.lines.filter((l) => l.startsWith('promotel warn: problem ')).length, 10_000);
  assert.equal(stderr.lines.at(-1), 'promotel warn: 10000 different problems have been reported; new ones are logged at debug level only (OTEL_LOG_LEVEL=debug), so that ever-new problems grow neither memory nor the log\n');
});

test('YAML anchors, aliases and << merge keys read as any YAML reader reads them; a merge of no mapping is one problem', () => {
  const config = parseConfig(`targets:
  - &first { name: a, url: "http://h/a", interval: 10s, labels: &common { env: prod, team: core } }
  - { <<: *first, name: b, url: "http://h/b" }
  - { name: c, url: "http://h/c", labels: *common }
`);
  assert.deepEqual(config.targets.map((t) => [t.name, t.url, t.intervalMs, t.labels]), [
    ['a', 'http://h/a', 10_000, { env: 'prod', team: 'core' }],
    ['b', 'http://h/b', 10_000, { env: 'prod', team: 'core' }],
    ['c', 'http://h/c', 15_000, { env: 'prod', team: 'core' }],
  ]);
  assert.throws(() => parseConfig('targets:\n  - { <<: 5, name: d, url: "http://h/d" }\n'), /<config>:2: targets\[0\]: << must name a mapping \(<<: \*anchor\), not 5/);
  // An alias to a node that holds it, and aliases of aliases 40 levels deep (2^40 paths): read in linear time.
  assert.throws(() => parseConfig('targets: &t\n  - { name: e, url: "http://h/e", labels: { x: *t } }\n'), /<config>:2: targets\[0\]\.labels\.x: must be text, not a list/);
  const deep = `a0: &a0 [x, x]\n${Array.from({ length: 40 }, (_, i) => `a${i + 1}: &a${i + 1} [*a${i}, *a${i}]`).join('\n')}\ntargets: []\n`;
  assert.throws(() => parseConfig(deep), /<config>:1: a0: is not a known field/);
  // A name anchored twice: an alias names the latest before it, as YAML says.
  const twice = parseConfig('targets:\n  - { name: a, url: "http://h/a", labels: &l { k: v1 } }\n  - { name: b, url: "http://h/b", labels: &l { k: v2 } }\n  - { name: c, url: "http://h/c", labels: *l }\n');
  assert.deepEqual(twice.targets.map((t) => t.labels.k), ['v1', 'v2', 'v2']);
});
