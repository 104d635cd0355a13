// `promotel poll` against real servers: healthy, slow, failing, refusing,
// garbage, redirecting and TLS targets, on a schedule and through /probe,
// with exact values. The slow target must not delay the others.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, get } from './helpers';
import { scrape, startPoller, startTargets, value, type Poller, type Targets } from './poll-helpers';

let t: Targets;
let poller: Poller;

before(async () => {
  t = await startTargets();
  const config = `
interval: 20s      # one scheduled round during the test: counters have exact values
timeout: 1s
jitter: 0s
concurrency: 4
modules:
  tls_ca:
    tls: { ca_file: ${JSON.stringify(t.certFile)} }
  only_200:
    valid_status_codes: [200]
    follow_redirects: false
targets:
  - { name: ok, url: "${t.base}/ok", labels: { team: core } }
  - { name: slow, url: "${t.base}/slow" }
  - { name: fail, url: "${t.base}/fail" }
  - { name: refused, url: "http://127.0.0.1:${t.refusedPort}/" }
  - { name: garbage, url: "http://127.0.0.1:${t.garbagePort}/" }
  - { name: redirect, url: "${t.base}/redirect" }
  - { name: no_follow, url: "${t.base}/redirect", module: only_200 }
  - { name: tls, url: "https://127.0.0.1:${t.tlsPort}/ok", module: tls_ca }
  - { name: tls_untrusted, url: "https://127.0.0.1:${t.tlsPort}/ok" }
  - { name: dns, url: "http://no-such-host.invalid/" }
`;
  poller = await startPoller(config);
});

after(async () => {
  await poller?.stop();
  await t?.close();
});

test('the healthy target is reported well before the slow one could answer, and the slow one times out', async () => {
  const early = await eventually(async () => {
    const body = await scrape(`${poller.url}/metrics`);
    return value(body, 'promotel_probe_success', { target: 'ok' }) === 1 ? body : undefined;
  }, 5000, 20);
  // The slow target needs 2 s and times out after 1 s; the healthy one, polled at the same moment, did not wait for it.
  assert.equal(value(early, 'promotel_probe_success', { target: 'slow' }), undefined, 'the slow target was still being polled');
  assert.equal(value(early, 'promotel_probe_http_status_code', { target: 'ok', job: 'ok', team: 'core' }), 200);

  const body = await eventually(async () => {
    const b = await scrape(`${poller.url}/metrics`);
    return value(b, 'promotel_probe_success', { target: 'slow' }) === 0 ? b : undefined;
  }, 5000, 50);
  assert.equal(value(body, 'promotel_probe_failure', { target: 'slow', reason: 'timeout' }), 1);
  assert.equal(value(body, 'promotel_probe_http_status_code', { target: 'slow' }), 0);
  const d = value(body, 'promotel_probe_duration_seconds', { target: 'slow' })!;
  assert.ok(d >= 0.99 && d < 2, `slow probe took ${d} s: the timeout is 1 s and the answer would have come at 2 s`);
});

test('every target has exact results after one round', async () => {
  const body = await eventually(async () => {
    const b = await scrape(`${poller.url}/metrics`);
    return value(b, 'promotel_probe_success', { target: 'dns' }) !== undefined && value(b, 'promotel_probe_success', { target: 'slow' }) !== undefined ? b : undefined;
  }, 8000, 50);
  const v = (name: string, target: string, labels: Record<string, string> = {}): number | undefined => value(body, name, { target, ...labels });
  const expected: Array<[string, number, number, string | undefined]> = [
    // target, success, status code, failure reason
    ['ok', 1, 200, undefined],
    ['slow', 0, 0, 'timeout'],
    ['fail', 0, 503, 'status_code'],
    ['refused', 0, 0, 'connection_refused'],
    ['garbage', 0, 0, 'invalid_response'],
    ['redirect', 1, 200, undefined],
    ['no_follow', 0, 302, 'status_code'],
    ['tls', 1, 200, undefined],
    ['tls_untrusted', 0, 0, 'tls'],
    ['dns', 0, 0, 'dns'],
  ];
  for (const [target, success, status, reason] of expected) {
    assert.equal(v('promotel_probe_success', target), success, `success of ${target}`);
    assert.equal(v('promotel_probe_http_status_code', target), status, `status of ${target}`);
    assert.equal(v('promotel_probe_failure', target, { reason: reason ?? '' }), reason ? 1 : undefined, `failure reason of ${target}`);
    if (reason) assert.equal(v('promotel_poll_errors_total', target, { reason }), 1, `errors of ${target}`);
    for (const phase of ['resolve', 'connect', 'tls', 'processing', 'transfer']) {
      assert.notEqual(v('promotel_probe_phase_duration_seconds', target, { phase }), undefined, `phase ${phase} of ${target}`);
    }
  }
  assert.equal(v('promotel_probe_http_response_size_bytes', 'ok'), 6);
  assert.equal(v('promotel_probe_http_redirects', 'ok'), 0);
  assert.equal(v('promotel_probe_http_redirects', 'redirect'), 1);
  assert.equal(v('promotel_probe_http_response_size_bytes', 'redirect'), 6);
  assert.equal(v('promotel_probe_http_response_size_bytes', 'fail'), 12);
  // An IP literal needs no lookup; the connect and processing phases took time.
  assert.equal(v('promotel_probe_phase_duration_seconds', 'ok', { phase: 'resolve' }), 0);
  assert.equal(v('promotel_probe_phase_duration_seconds', 'ok', { phase: 'tls' }), 0);
  assert.ok(v('promotel_probe_phase_duration_seconds', 'ok', { phase: 'connect' })! > 0);
  assert.ok(v('promotel_probe_phase_duration_seconds', 'tls', { phase: 'tls' })! > 0, 'TLS handshake time');
  assert.equal(v('promotel_probe_tls_cert_expiry_timestamp_seconds', 'tls'), t.certExpiry);
  assert.equal(v('promotel_probe_tls_cert_expiry_timestamp_seconds', 'ok'), undefined);
  assert.equal(v('promotel_poll_errors_total', 'ok', { reason: 'timeout' }), undefined);
  assert.equal(value(body, 'promotel_poll_targets'), 10);
  assert.equal(value(body, 'promotel_poll_in_flight'), 0);
  assert.equal(value(body, 'promotel_poll_duration_seconds_count', { target: 'ok' }), 1);
  // The runtime metrics of the poller itself are served too.
  assert.ok((value(body, 'v8js_memory_heap_size_limit_bytes') ?? 0) > 0);
  assert.ok((value(body, 'target_info', { service_name: 'promotel' }) ?? 0) === 1);
});

test('/probe polls a configured target now and answers with that poll only', async () => {
  const before = t.hits.get('/ok') ?? 0;
  const res = await get(`${poller.url}/probe?target=ok`);
  assert.equal(res.status, 200);
  assert.equal(t.hits.get('/ok'), before + 1);
  assert.equal(value(res.body, 'promotel_probe_success', { target: 'ok' }), 1);
  assert.equal(value(res.body, 'promotel_probe_http_response_size_bytes', { target: 'ok' }), 6);
  assert.equal(value(res.body, 'promotel_probe_success', { target: 'fail' }), undefined, 'only the asked target');
  assert.equal(value(res.body, 'target_info'), undefined);

  const failed = await get(`${poller.url}/probe?target=fail`);
  assert.equal(failed.status, 200, 'a failed probe is a successful scrape, as with blackbox_exporter');
  assert.equal(value(failed.body, 'promotel_probe_success', { target: 'fail' }), 0);
  assert.equal(value(failed.body, 'promotel_probe_http_status_code', { target: 'fail' }), 503);

  // A module of the config may be chosen per request: only_200 does not follow redirects.
  const noFollow = await get(`${poller.url}/probe?target=redirect&module=only_200`);
  assert.equal(value(noFollow.body, 'promotel_probe_http_status_code', { target: 'redirect' }), 302);
  assert.equal(value(noFollow.body, 'promotel_probe_http_redirects', { target: 'redirect' }), 0);

  const om = await get(`${poller.url}/probe?target=ok`, { headers: { accept: 'application/openmetrics-text; version=1.0.0' } });
  assert.match(om.headers.get('content-type') ?? '', /openmetrics/);
  assert.match(om.body, /# EOF\n$/);

  const errors = await scrape(`${poller.url}/metrics`);
  assert.equal(value(errors, 'promotel_poll_errors_total', { target: 'fail', reason: 'status_code' }), 2, 'the scheduled poll and the /probe one');
});

test('SIGTERM stops the poller promptly with exit code 0', async () => {
  const { code, ms } = await poller.stop();
  assert.equal(code, 0);
  assert.ok(ms < 3000, `took ${ms} ms`);
  assert.doesNotMatch(poller.stderr(), /unexpected/);
});
