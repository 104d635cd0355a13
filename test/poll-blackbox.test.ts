// promotel's probe next to Prometheus' blackbox_exporter (Debian's
// prometheus-blackbox-exporter), both probing the same real targets through
// their /probe endpoints with equivalent modules. They must agree on
// success, status code, redirects, body size, certificate expiry and which
// phases are reported. The differences that remain are by design and are
// asserted exactly, each with its reason.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { eventually, freePort, get } from './helpers';
import { startPoller, startTargets, value, type Poller, type Targets } from './poll-helpers';

const BLACKBOX = '/usr/bin/prometheus-blackbox-exporter';
const PHASES = ['resolve', 'connect', 'tls', 'processing', 'transfer'];

let t: Targets;
let poller: Poller;
let blackbox: ChildProcess;
let blackboxUrl: string;
let dir: string;

before(async () => {
  assert.equal(spawnSync(BLACKBOX, ['--version']).status, 0, `${BLACKBOX} is missing: bash .ci/install installs prometheus-blackbox-exporter`);
  t = await startTargets();
  dir = mkdtempSync(join(tmpdir(), 'promotel-blackbox-'));
  const config = join(dir, 'blackbox.yml');
  writeFileSync(
    config,
    `modules:
  http_2xx: { prober: http, timeout: 500ms }
  tls_ca: { prober: http, timeout: 500ms, http: { tls_config: { ca_file: ${JSON.stringify(t.certFile)} } } }
  only_200: { prober: http, timeout: 500ms, http: { valid_status_codes: [200], follow_redirects: false } }
`,
  );
  const port = await freePort();
  blackbox = spawn(BLACKBOX, [`--config.file=${config}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
  blackboxUrl = `http://127.0.0.1:${port}`;
  poller = await startPoller(`
interval: 0s
timeout: 500ms
modules:
  http_2xx: {}
  tls_ca: { tls: { ca_file: ${JSON.stringify(t.certFile)} } }
  only_200: { valid_status_codes: [200], follow_redirects: false }
targets:
  - { name: ok, url: "${t.base}/ok" }
  - { name: fail, url: "${t.base}/fail" }
  - { name: redirect, url: "${t.base}/redirect" }
  - { name: slow, url: "${t.base}/slow" }
  - { name: refused, url: "http://127.0.0.1:${t.refusedPort}/" }
  - { name: garbage, url: "http://127.0.0.1:${t.garbagePort}/" }
  - { name: tls, url: "https://127.0.0.1:${t.tlsPort}/ok" }
`);
  await eventually(async () => (await get(`${blackboxUrl}/-/healthy`).catch(() => undefined))?.status === 200, 10_000, 50);
});

after(async () => {
  blackbox?.kill('SIGKILL');
  await poller?.stop();
  await t?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Outcome {
  success: number | undefined;
  status: number | undefined;
  redirects: number | undefined;
  bodyBytes: number | undefined;
  certExpiry: number | undefined;
  phases: string[];
}

async function both(name: string, url: string, module: string): Promise<{ bb: Outcome; pt: Outcome }> {
  const [bbRes, ptRes] = await Promise.all([
    get(`${blackboxUrl}/probe?target=${encodeURIComponent(url)}&module=${module}`),
    get(`${poller.url}/probe?target=${name}&module=${module}`),
  ]);
  assert.equal(bbRes.status, 200, bbRes.body);
  assert.equal(ptRes.status, 200, ptRes.body);
  const b = bbRes.body;
  const p = ptRes.body;
  return {
    bb: {
      success: value(b, 'probe_success'),
      status: value(b, 'probe_http_status_code'),
      redirects: value(b, 'probe_http_redirects'),
      bodyBytes: value(b, 'probe_http_uncompressed_body_length'),
      certExpiry: value(b, 'probe_ssl_earliest_cert_expiry'),
      phases: PHASES.filter((phase) => value(b, 'probe_http_duration_seconds', { phase }) !== undefined),
    },
    pt: {
      success: value(p, 'promotel_probe_success'),
      status: value(p, 'promotel_probe_http_status_code'),
      redirects: value(p, 'promotel_probe_http_redirects'),
      bodyBytes: value(p, 'promotel_probe_http_response_size_bytes'),
      certExpiry: value(p, 'promotel_probe_tls_cert_expiry_timestamp_seconds'),
      phases: PHASES.filter((phase) => value(p, 'promotel_probe_phase_duration_seconds', { phase }) !== undefined),
    },
  };
}

test('healthy, failing, redirecting, slow, refused and garbage targets: the same verdicts', async () => {
  const cases: Array<[string, string, number, number]> = [
    // name, url, expected success, expected status code
    ['ok', `${t.base}/ok`, 1, 200],
    ['fail', `${t.base}/fail`, 0, 503],
    ['redirect', `${t.base}/redirect`, 1, 200],
    ['slow', `${t.base}/slow`, 0, 0],
    ['refused', `http://127.0.0.1:${t.refusedPort}/`, 0, 0],
    ['garbage', `http://127.0.0.1:${t.garbagePort}/`, 0, 0],
  ];
  for (const [name, url, success, status] of cases) {
    const { bb, pt } = await both(name, url, 'http_2xx');
    assert.equal(bb.success, success, `blackbox success of ${name}`);
    assert.equal(pt.success, bb.success, `success of ${name}`);
    assert.equal(bb.status, status, `blackbox status of ${name}`);
    assert.equal(pt.status, bb.status, `status of ${name}`);
    assert.equal(pt.redirects, bb.redirects, `redirects of ${name}`);
    assert.deepEqual(pt.phases, bb.phases, `phases of ${name}`);
    assert.deepEqual(bb.phases, PHASES, 'blackbox reports every phase, even of a failed probe, and so does promotel');
    if (success) assert.equal(pt.bodyBytes, bb.bodyBytes, `body size of ${name}`);
  }
});

test('TLS: the same success, certificate expiry and phases; an untrusted certificate fails both', async () => {
  const url = `https://127.0.0.1:${t.tlsPort}/ok`;
  const { bb, pt } = await both('tls', url, 'tls_ca');
  assert.equal(bb.success, 1);
  assert.equal(pt.success, 1);
  assert.equal(pt.status, bb.status);
  assert.equal(bb.certExpiry, t.certExpiry);
  assert.equal(pt.certExpiry, bb.certExpiry);
  assert.deepEqual(pt.phases, bb.phases);
  assert.equal(pt.bodyBytes, bb.bodyBytes);

  const untrusted = await both('tls', url, 'http_2xx');
  assert.equal(untrusted.bb.success, 0);
  assert.equal(untrusted.pt.success, 0);
  assert.equal(untrusted.pt.status, untrusted.bb.status);
});

test('a redirect not followed: the same verdict and status; redirects counted as followed, not as seen', async () => {
  const { bb, pt } = await both('redirect', `${t.base}/redirect`, 'only_200');
  assert.equal(bb.success, 0);
  assert.equal(pt.success, 0);
  assert.equal(bb.status, 302);
  assert.equal(pt.status, 302);
  // blackbox_exporter 0.23 counts the 302 it was given; promotel_probe_http_redirects counts the
  // redirects the probe followed, which is 0 here, so that "redirects > 0" means "a hop was made".
  assert.equal(bb.redirects, 1);
  assert.equal(pt.redirects, 0);
});
