// `promotel poll` turning what targets answer into metrics: a JSON API mapped
// by selectors, and Prometheus or OpenMetrics text re-exposed with the
// target's labels. Polls are driven through /probe (interval 0), so every
// count below is exact. What cannot be converted is counted in
// promotel_poll_errors_total{target, reason} and logged once, never thrown.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { convertJson } from '../src/poll/convert-json';
import { convertPrometheus } from '../src/poll/convert-prometheus';
import { compileSelector } from '../src/poll/selector';
import { get, promtoolCheck, pythonParse, sampleValue } from './helpers';
import { scrape, startPoller, startTargets, value, type Poller, type Targets } from './poll-helpers';

let t: Targets;
let poller: Poller;

const GOOD = JSON.stringify({
  up: true,
  jobs: 5,
  queues: [
    { name: 'mail', depth: 3 },
    { name: 'sms', depth: '7.5' },
  ],
  caches: { users: { hits: 10 }, 'odd "key"': { hits: 2 } },
});

before(async () => {
  t = await startTargets();
  poller = await startPoller(`
interval: 0s        # polled only through /probe
modules:
  api:
    format: json
    metrics:
      - name: app_up
        help: Whether the service says it is up.
        value: $.up
      - name: app_jobs
        type: counter
        value: $.jobs
      - name: app_queue_depth
        each: $.queues[*]
        value: $.depth
        labels: { queue: $.name }
      - name: app_cache_hits
        each: $.caches.*
        value: $.hits
        labels: { cache: "@key" }
  clash:
    format: json
    metrics:
      - name: app_queue_depth
        each: $.queues[*]
        value: $.depth
        labels: { env: $.name }
      - { name: app_x, value: $.a }
      - { name: app_x, value: $.b }
  metrics: { format: prometheus }
  gzip: { format: prometheus, headers: { Accept-Encoding: gzip } }
  small: { format: prometheus, max_body_size: 100000 }
targets:
  - { name: api, url: "${t.base}/json", module: api, labels: { env: test } }
  - { name: clash, url: "${t.base}/json", module: clash, labels: { env: test } }
  - { name: prom, url: "${t.base}/metrics", module: metrics }
  - { name: om, url: "${t.base}/om", module: metrics, job: batch }
  - { name: py, url: "${t.base}/python-text", module: metrics }
  - { name: latin1, url: "${t.base}/latin1", module: metrics }
  - { name: html, url: "${t.base}/html", module: metrics }
  - { name: tricky, url: "${t.base}/tricky", module: metrics }
  - { name: bad-lines, url: "${t.base}/bad-lines", module: metrics }
  - { name: gzip, url: "${t.base}/metrics-gzip", module: gzip }
  - { name: bomb, url: "${t.base}/gzip-bomb", module: small }
`);
});

after(async () => {
  await poller?.stop();
  await t?.close();
});

async function probe(target: string, openMetrics = false): Promise<string> {
  const res = await get(`${poller.url}/probe?target=${target}`, openMetrics ? { headers: { accept: 'application/openmetrics-text; version=1.0.0' } } : undefined);
  assert.equal(res.status, 200, res.body);
  return res.body;
}

test('a JSON API becomes gauges and counters with labels from its fields', async () => {
  t.jsonBodies = [GOOD];
  const body = await probe('api');
  const base = { target: 'api', job: 'api', env: 'test' };
  assert.equal(value(body, 'promotel_probe_success', base), 1);
  assert.equal(value(body, 'app_up', base), 1, 'true is 1');
  assert.equal(value(body, 'app_jobs_total', base), 5, 'a counter gets _total');
  assert.equal(value(body, 'app_queue_depth', { ...base, queue: 'mail' }), 3);
  assert.equal(value(body, 'app_queue_depth', { ...base, queue: 'sms' }), 7.5, 'a numeric string is a number');
  assert.equal(value(body, 'app_cache_hits', { ...base, cache: 'users' }), 10, '@key is the field name');
  assert.equal(value(body, 'app_cache_hits', { ...base, cache: 'odd \\"key\\"' }), 2, 'escaped in the exposition');
  assert.match(body, /^# HELP app_up Whether the service says it is up\.$/m);
  assert.match(body, /^# TYPE app_jobs_total counter$/m);
  assert.equal(promtoolCheck(body), '');
  const families = pythonParse(body);
  assert.equal(sampleValue(families, 'app_queue_depth', { queue: 'sms' }), 7.5);
  assert.equal(sampleValue(families, 'app_cache_hits', { cache: 'odd "key"' }), 2);
  const errors = await scrape(`${poller.url}/metrics`);
  assert.equal(value(errors, 'promotel_poll_errors_total', { target: 'api' }), undefined, 'a clean poll counts no error');
});

test('JSON labels named like the target\'s move to exported_*, and two entries of one name never give one series twice', async () => {
  t.jsonBodies = [JSON.stringify({ queues: [{ name: 'mail', depth: 3 }, { name: 'sms', depth: 5 }], a: 1, b: 2 })];
  const body = await probe('clash');
  const base = { target: 'clash', job: 'clash', env: 'test' };
  assert.equal(value(body, 'app_queue_depth', { ...base, exported_env: 'mail' }), 3);
  assert.equal(value(body, 'app_queue_depth', { ...base, exported_env: 'sms' }), 5);
  const families = pythonParse(body);
  assert.deepEqual(families.flatMap((f) => f.samples).filter((s) => s.name === 'app_x').map((s) => s.value), [2], 'the last entry wins, once');
  assert.equal(promtoolCheck(body), '');
  const metrics = await scrape(`${poller.url}/metrics`);
  assert.equal(value(metrics, 'promotel_poll_errors_total', { target: 'clash', reason: 'duplicate_series' }), 1);
});

test('missing fields, invalid numbers and type changes are counted and skipped, not thrown', async () => {
  t.jsonBodies = [
    JSON.stringify({ up: true, jobs: 6, queues: [{ name: 'mail', depth: 'lots' }, { name: 'sms', depth: 'n/a' }, { name: 'push' }], caches: {} }),
    JSON.stringify({ up: 'maybe', jobs: 7, queues: [{ name: 'mail', depth: 4 }, { depth: 1 }], caches: { users: { hits: 11 } } }),
  ];
  const first = await probe('api');
  const base = { target: 'api', job: 'api', env: 'test' };
  assert.equal(value(first, 'promotel_probe_success', base), 1, 'conversion problems do not fail the probe');
  assert.equal(value(first, 'app_jobs_total', base), 6);
  assert.equal(value(first, 'app_queue_depth', { ...base, queue: 'mail' }), undefined, '"lots" is skipped');
  assert.equal(value(first, 'app_queue_depth', { ...base, queue: 'sms' }), undefined, '"n/a" is skipped');
  assert.equal(value(first, 'app_queue_depth', { ...base, queue: 'push' }), undefined, 'no depth: skipped');
  assert.equal(value(first, 'app_cache_hits', base), undefined, 'each matched nothing');

  const second = await probe('api');
  assert.equal(value(second, 'app_up', base), undefined, '"maybe" is no number');
  assert.equal(value(second, 'app_queue_depth', { ...base, queue: 'mail' }), 4);
  assert.equal(value(second, 'app_cache_hits', { ...base, cache: 'users' }), 11);

  const metrics = await scrape(`${poller.url}/metrics`);
  const errors = (reason: string): number | undefined => value(metrics, 'promotel_poll_errors_total', { target: 'api', reason });
  // First body: mail's depth was a number and is now "lots" (type_changed); sms's was the
  // string "7.5" and is now "n/a" (invalid_number); push has no depth and caches no element
  // (missing_field twice). Second body: up was a boolean (type_changed), mail's depth and the
  // second queue's were strings and are numbers (type_changed twice), and the second queue
  // has no name for its label (missing_field).
  assert.equal(errors('type_changed'), 4);
  assert.equal(errors('missing_field'), 3);
  assert.equal(errors('invalid_number'), 1);
  assert.equal(poller.stderr().match(/target api .*type_changed/g)?.length, 1, `logged once per reason:\n${poller.stderr()}`);
  assert.equal(poller.stderr().match(/target api .*missing_field/g)?.length, 1);
});

test('a body that is not JSON fails the probe with reason invalid_json', async () => {
  t.jsonBodies = ['<html>oops</html>'];
  const body = await probe('api');
  assert.equal(value(body, 'promotel_probe_success', { target: 'api' }), 0);
  assert.equal(value(body, 'promotel_probe_failure', { target: 'api', reason: 'invalid_json' }), 1);
  assert.equal(value(body, 'promotel_probe_http_status_code', { target: 'api' }), 200);
  const metrics = await scrape(`${poller.url}/metrics`);
  assert.equal(value(metrics, 'promotel_poll_errors_total', { target: 'api', reason: 'invalid_json' }), 1);

  // Logged once while it lasts; after a clean poll, the next failure is a new episode and is logged again.
  await probe('api');
  assert.equal(poller.stderr().match(/target api .*invalid_json/g)?.length, 1);
  // The first good body still differs in types from the poll before the broken one; the second is clean.
  t.jsonBodies = [GOOD, GOOD, '<html>again</html>'];
  await probe('api');
  await probe('api');
  assert.equal(poller.stderr().match(/target api .*invalid_json/g)?.length, 1);
  await probe('api');
  assert.equal(poller.stderr().match(/target api .*invalid_json/g)?.length, 2, poller.stderr());
});

test('Prometheus text is re-exposed with target and job; the target\'s own job label becomes exported_job', async () => {
  const body = await probe('prom');
  const base = { target: 'prom', job: 'prom' };
  assert.equal(value(body, 'app_requests_total', { ...base, code: '200', exported_job: 'inner' }), 1027);
  assert.equal(value(body, 'app_requests_total', { ...base, code: '500', exported_job: 'inner' }), 3);
  assert.equal(value(body, 'app_temperature', base), -1.5);
  assert.equal(value(body, 'app_latency_seconds_bucket', { ...base, le: '0.1' }), 4);
  assert.equal(value(body, 'app_latency_seconds_bucket', { ...base, le: '0.5' }), 9);
  assert.equal(value(body, 'app_latency_seconds_bucket', { ...base, le: '+Inf' }), 10);
  assert.equal(value(body, 'app_latency_seconds_sum', base), 2.5);
  assert.equal(value(body, 'app_latency_seconds_count', base), 10);
  assert.equal(value(body, 'app_rpc_seconds', { ...base, quantile: '0.5' }), 0.05);
  assert.equal(value(body, 'app_rpc_seconds_sum', base), 7);
  assert.equal(value(body, 'app_rpc_seconds_count', base), 70);
  assert.equal(value(body, 'app_untyped', { ...base, path: 'a\\"b' }), 42, 'the timestamp is dropped: served as of the poll');
  assert.match(body, /^# TYPE app_latency_seconds histogram$/m);
  assert.match(body, /^# TYPE app_rpc_seconds summary$/m);
  assert.match(body, /^# HELP app_requests_total Requests served\.$/m);
  assert.equal(promtoolCheck(body), '');

  const text = pythonParse(body);
  assert.equal(sampleValue(text, 'app_untyped', { path: 'a"b' }), 42);
  assert.equal(sampleValue(text, 'app_rpc_seconds', { quantile: '0.5' }), 0.05);
  const om = await probe('prom', true);
  const parsed = pythonParse(om, true);
  assert.equal(sampleValue(parsed, 'app_requests_total', { code: '200', exported_job: 'inner', target: 'prom' }), 1027);
  assert.equal(sampleValue(parsed, 'app_latency_seconds_bucket', { le: '0.5', target: 'prom' }), 9);
  assert.equal(sampleValue(parsed, 'app_rpc_seconds_count', { target: 'prom' }), 70);
  assert.doesNotMatch(om, /^app_requests_created/m, 'no _created where the source gave none');
});

test('OpenMetrics is re-exposed too: _created kept, exemplars dropped, info as a gauge', async () => {
  const body = await probe('om', true);
  const base = { target: 'om', job: 'batch' };
  assert.equal(value(body, 'om_jobs_total', { ...base, queue: 'mail' }), 17);
  assert.equal(value(body, 'om_jobs_created', { ...base, queue: 'mail' }), 1700000000.5);
  assert.equal(value(body, 'om_build_info', { ...base, version: '1.2.3' }), 1);
  assert.equal(value(body, 'om_up', base), 1);
  assert.doesNotMatch(body, /trace_id/);
  const parsed = pythonParse(body, true);
  assert.equal(sampleValue(parsed, 'om_jobs_total', { queue: 'mail' }), 17);
  assert.equal(promtoolCheck(await probe('om')), '');
});

test('the creation times the Python client writes in text as gauges (x_created) become the families\' own _created', async () => {
  const source = pythonParse((await get(`${t.base}/python-text`)).body);
  const created = (name: string) => sampleValue(source, name, name === 'py_jobs_created' ? { queue: 'mail' } : {})!;
  assert.ok(created('py_jobs_created') > 1.7e9, 'the source has its creation times as gauges');
  const om = pythonParse(await probe('py', true), true);
  const base = { target: 'py', job: 'py' };
  const family = (name: string) => om.find((f) => f.name === name);
  assert.equal(family('py_jobs')?.type, 'counter');
  assert.equal(sampleValue(om, 'py_jobs_total', { ...base, queue: 'mail' }), 17);
  assert.equal(sampleValue(om, 'py_jobs_created', { ...base, queue: 'mail' }), created('py_jobs_created'));
  assert.equal(sampleValue(om, 'py_latency_seconds_created', base), created('py_latency_seconds_created'));
  assert.equal(sampleValue(om, 'py_rpc_seconds_created', base), created('py_rpc_seconds_created'));
  assert.deepEqual(om.filter((f) => f.type === 'gauge' && f.name.startsWith('py_')), [], 'no gauge left beside them');
  const text = await probe('py');
  assert.equal(promtoolCheck(text), '');
  assert.equal(value(text, 'py_latency_seconds_count', base), 1);
  const metrics = await scrape(`${poller.url}/metrics`);
  assert.equal(value(metrics, 'promotel_poll_errors_total', { target: 'py' }), undefined, 'nothing was dropped as a conflict');
});

test('a body that is not UTF-8 is still served, its invalid bytes as U+FFFD, and counted as invalid_utf8', async () => {
  const body = await probe('latin1');
  const base = { target: 'latin1', job: 'latin1' };
  assert.equal(value(body, 'promotel_probe_success', base), 1);
  assert.equal(sampleValue(pythonParse(body), 'city_up', { ...base, city: 'M\uFFFDnchen' }), 1);
  const metrics = await scrape(`${poller.url}/metrics`);
  assert.equal(value(metrics, 'promotel_poll_errors_total', { target: 'latin1', reason: 'invalid_utf8' }), 1);
  await poller.waitFor(/target latin1 \(\S+\): invalid_utf8: the body \(47 bytes\) is not valid UTF-8; each invalid byte sequence is served as U\+FFFD: have the target send UTF-8, and promotel_poll_errors_total\{target="latin1",reason="invalid_utf8"\} counts it \(logged once\)$/m);
});

test('a page that is not metrics fails the probe with reason invalid_exposition', async () => {
  const body = await probe('html');
  assert.equal(value(body, 'promotel_probe_success', { target: 'html' }), 0);
  assert.equal(value(body, 'promotel_probe_failure', { target: 'html', reason: 'invalid_exposition' }), 1);
  const metrics = await scrape(`${poller.url}/metrics`);
  assert.equal(value(metrics, 'promotel_poll_errors_total', { target: 'html', reason: 'invalid_exposition' }), 1);
});

test('re-exposing never invents, duplicates or renames series, nor lets a target fake promotel\'s own', async () => {
  const body = await probe('tricky');
  const base = { target: 'tricky', job: 'tricky' };
  assert.equal(value(body, 'foo', base), 5, 'a counter without _total keeps its name');
  assert.match(body, /^# TYPE foo gauge$/m);
  assert.doesNotMatch(body, /^foo_total/m);
  assert.equal(body.match(/^dup\{/gm)?.length, 1, 'one series, not two');
  assert.equal(value(body, 'dup', base), 2, 'the last value wins');
  assert.equal(value(body, 'clash', { ...base, exported_exported_target: 't1', exported_target: 'orig' }), 3, 'exported_ repeated until free, nothing lost');
  assert.equal(value(body, 's', { ...base, quantile: '0.5' }), 1.5, 'the last quantile given wins');
  assert.equal(value(body, 'c_total', { ...base, a: '1', b: '2' }), 2, 'the last value wins, whatever the label order');
  assert.equal(body.match(/^c_total\{/gm)?.length, 1);
  assert.equal(value(body, 'h_bucket', { ...base, le: '1' }), 2, 'the last bucket given wins');
  assert.equal(body.match(/^h_bucket\{/gm)?.length, 2, 'le="1" and le="+Inf", once each');
  assert.equal(value(body, 'gh_bucket', { ...base, le: '0.5' }), 3, 'a gauge histogram\'s bucket keeps its le');
  assert.equal(value(body, 'untyped_series', { ...base, x__y: '1', exported_otel_scope_schema_url: 's' }), 1);
  assert.equal(body.match(/^m\{/gm)?.length, 1, 'one m series once relabeled');
  assert.equal(value(body, 'm', { ...base, exported_job: 'a' }), 2, 'the last one wins');
  assert.doesNotMatch(body, /^s_(sum|count)/m, 'no _sum or _count the source did not give');
  assert.equal(value(body, 'q__r', base), 1, 'a valid name keeps its run of _');
  assert.equal(value(body, 'q_r', base), 2);
  assert.equal(body.match(/^q_r\{/gm)?.length, 1, 'q__r does not become a second q_r');
  assert.equal(value(body, 'n__x_total', base), 4);
  assert.equal(body.match(/^promotel_probe_success\{/gm)?.length, 1);
  assert.equal(value(body, 'promotel_probe_success', base), 1, 'the probe result, not the target\'s 7');
  // promtool lints the names of the source's gauge histogram, kept as they were; nothing else.
  assert.equal(promtoolCheck(body).split('\n').filter((l) => !l.startsWith('gh_bucket non-histogram metrics')).join('\n'), '');
  assert.equal(sampleValue(pythonParse(body), 'clash', { exported_target: 'orig' }), 3);
  const metrics = await scrape(`${poller.url}/metrics`);
  assert.equal(value(metrics, 'promotel_poll_errors_total', { target: 'tricky', reason: 'duplicate_series' }), 5, 'dup, the quantile, the counter, the bucket and m');
  assert.equal(value(metrics, 'promotel_poll_errors_total', { target: 'tricky', reason: 'reserved_name' }), 1);
});

test('a body of 130,000 unreadable lines is counted once per line and logged once; the good sample is served', async () => {
  const body = await probe('bad-lines');
  const base = { target: 'bad-lines', job: 'bad-lines' };
  assert.equal(value(body, 'promotel_probe_success', base), 1);
  assert.equal(value(body, 'ok', base), 1);
  const metrics = await scrape(`${poller.url}/metrics`);
  assert.equal(value(metrics, 'promotel_poll_errors_total', { target: 'bad-lines', reason: 'invalid_number' }), 130_000);
  assert.match(poller.stderr(), /target bad-lines \(.*\): invalid_number: line 3: "a b c" has a value that is not a number \(and 129999 more like it\); the value is skipped, and promotel_poll_errors_total/);
});

test('converting a big body gives the event loop turns: other work runs in between', async () => {
  let body = '# TYPE g gauge\n';
  for (let i = 0; i < 100_000; i++) body += `g{path="/items/${i}"} ${i}\n`;
  let turns = 0;
  const ticker = setInterval(() => turns++, 1);
  const out = await convertPrometheus(body, { target: 't', job: 't' }, new Map());
  clearInterval(ticker);
  assert.equal(out.families[0]!.series.length, 100_000);
  assert.ok(turns > 0, 'a 1 ms interval fired while the body was converted');
});

test('converting a big JSON body gives the event loop turns too', async () => {
  const body = JSON.stringify({ items: Array.from({ length: 100_000 }, (_, i) => ({ name: `q${i}`, depth: i })) });
  const metrics = [{ name: 'q_depth', type: 'gauge' as const, help: 'h', each: compileSelector('$.items[*]'), value: compileSelector('$.depth'), labels: [['queue', compileSelector('$.name')] as [string, ReturnType<typeof compileSelector>]] }];
  let turns = 0;
  const ticker = setInterval(() => turns++, 1);
  const out = await convertJson(body, metrics, { target: 't', job: 't' }, new Map());
  clearInterval(ticker);
  assert.equal(out.families[0]!.series.length, 100_000);
  assert.equal(out.families[0]!.series[99_999]!.value, 99_999);
  assert.ok(turns > 0, 'a 1 ms interval fired while the body was converted');
});

test('a compressed answer is decoded (Content-Encoding: gzip), within max_body_size', async () => {
  const body = await probe('gzip');
  const base = { target: 'gzip', job: 'gzip' };
  assert.equal(value(body, 'promotel_probe_success', base), 1);
  assert.equal(value(body, 'app_requests_total', { ...base, code: '200', exported_job: 'inner' }), 1027);
  assert.equal(value(body, 'app_temperature', base), -1.5);
  const bomb = await probe('bomb');
  assert.equal(value(bomb, 'promotel_probe_success', { target: 'bomb', job: 'bomb' }), 0);
  assert.equal(value(bomb, 'promotel_probe_failure', { target: 'bomb', job: 'bomb', reason: 'body_too_large' }), 1);
  assert.equal(value(bomb, 'pad', { target: 'bomb', job: 'bomb' }), undefined);
});
