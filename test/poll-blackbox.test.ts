// promotel's probe next to the probe it imitates: Prometheus' blackbox_exporter
// (Debian's prometheus-blackbox-exporter 0.23), both probing the same real
// targets on 127.0.0.1 through their /probe endpoints, with equivalent modules
// and the header Prometheus sends with scrape_timeout: 1s. promotel says it
// probes "as blackbox_exporter probes HTTP", so this test holds it to that: the
// same success, status code, body size, redirects, certificate expiry, timeout
// and phases. Where the two differ by design the difference is asserted
// exactly, with its reason, so that any other change shows up.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { eventually, freePort, get } from './helpers';
import { startPoller, startTargets, value, type Poller, type Targets } from './poll-helpers';

const BLACKBOX = '/usr/bin/prometheus-blackbox-exporter';
const PHASES = ['resolve', 'connect', 'tls', 'processing', 'transfer'] as const;
type Phase = (typeof PHASES)[number];
// What Prometheus sends with scrape_timeout: 1s. Both exporters then give a probe
// that minus half a second (500 ms), below the modules' own timeout of 5s.
const SCRAPE_TIMEOUT = { 'X-Prometheus-Scrape-Timeout-Seconds': '1' };
// Every other target answers at once; a roomier budget keeps a loaded machine from turning them into timeouts.
const ROOMY_TIMEOUT = { 'X-Prometheus-Scrape-Timeout-Seconds': '4' };

let t: Targets;
let poller: Poller | undefined;
let blackbox: ChildProcess | undefined;
let blackboxLog = '';
let blackboxUrl: string;
let dir: string | undefined;
/** promotel's target names and the URLs blackbox_exporter is given for them. */
const urls = new Map<string, string>();

before(async () => {
  // CI installs it (.ci/install); a missing exporter must fail the test, not skip it.
  assert.ok(existsSync(BLACKBOX), `${BLACKBOX} is missing: this test needs Debian's prometheus-blackbox-exporter (apt-get install prometheus-blackbox-exporter, as .ci/install does)`);
  const version = spawnSync(BLACKBOX, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(version.status, 0, `${BLACKBOX} --version failed: ${version.stderr}`);

  t = await startTargets();
  const port = new URL(t.base).port;
  urls.set('ok', `${t.base}/ok`);
  urls.set('fail', `${t.base}/fail`);
  urls.set('redirect', `${t.base}/redirect`);
  urls.set('slow', `${t.base}/slow`);
  urls.set('refused', `http://127.0.0.1:${t.refusedPort}/`);
  urls.set('garbage', `http://127.0.0.1:${t.garbagePort}/`);
  urls.set('localhost', `http://localhost:${port}/ok`); // the one target whose host needs a lookup
  urls.set('tls', `https://127.0.0.1:${t.tlsPort}/ok`);

  dir = mkdtempSync(join(tmpdir(), 'promotel-blackbox-'));
  const config = join(dir, 'blackbox.yml');
  // preferred_ip_protocol: ip4 because the targets listen on 127.0.0.1 only and blackbox_exporter
  // would otherwise try ::1 first for localhost. promotel (Node's happy eyeballs) needs no such option.
  writeFileSync(
    config,
    `modules:
  http_2xx:
    prober: http
    timeout: 5s
    http: { preferred_ip_protocol: ip4 }
  tls_ca:
    prober: http
    timeout: 5s
    http: { preferred_ip_protocol: ip4, tls_config: { ca_file: ${JSON.stringify(t.certFile)} } }
  no_follow:
    prober: http
    timeout: 5s
    http: { preferred_ip_protocol: ip4, follow_redirects: false }
`,
  );
  const bbPort = await freePort();
  blackbox = spawn(BLACKBOX, [`--config.file=${config}`, `--web.listen-address=127.0.0.1:${bbPort}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  blackbox.stderr!.setEncoding('utf8').on('data', (d: string) => (blackboxLog = (blackboxLog + d).slice(-20_000)));
  blackboxUrl = `http://127.0.0.1:${bbPort}`;

  poller = await startPoller(`
interval: 0s       # polled only through /probe, like blackbox_exporter
timeout: 5s
modules:
  http_2xx: { timeout: 5s }
  tls_ca: { timeout: 5s, tls: { ca_file: ${JSON.stringify(t.certFile)} } }
  no_follow: { timeout: 5s, follow_redirects: false }
targets:
${[...urls].map(([name, url]) => `  - { name: ${name}, url: "${url}" }`).join('\n')}
`);

  await eventually(async () => {
    if (blackbox!.exitCode !== null) throw new Error(`blackbox_exporter exited with ${blackbox!.exitCode}: ${blackboxLog}`);
    return (await get(`${blackboxUrl}/-/healthy`).catch(() => undefined))?.status === 200;
  }, 10_000, 50).catch((err: unknown) => {
    throw new Error(`blackbox_exporter did not serve: ${String(err)}\n${blackboxLog}`);
  });
});

after(async () => {
  const stopBlackbox = async (): Promise<void> => {
    const child = blackbox;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
  };
  await Promise.all([stopBlackbox(), poller?.stop()]); // poller.stop() sends SIGKILL after 8 s
  await t?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** What one exporter said about one probe. */
interface Seen {
  success: number | undefined;
  status: number | undefined;
  redirects: number | undefined;
  /** Body bytes read (blackbox: probe_http_uncompressed_body_length). */
  bodyBytes: number | undefined;
  certExpiry: number | undefined;
  duration: number | undefined;
  /** Every phase series, present or not (undefined). */
  phases: Record<Phase, number | undefined>;
}

const phasesOf = (text: string, name: string): Record<Phase, number | undefined> =>
  Object.fromEntries(PHASES.map((phase) => [phase, value(text, name, { phase })])) as Record<Phase, number | undefined>;

/** The phases that took time, in the usual order. */
const took = (s: Seen): string => PHASES.filter((p) => (s.phases[p] ?? 0) > 0).join(' ');

const probed = new Map<string, Promise<{ bb: Seen; pt: Seen; bbText: string }>>();

/** Probes promotel target `name` and its URL with module `module` through both exporters, at the same time; once per pair. */
function both(name: string, module: string): Promise<{ bb: Seen; pt: Seen; bbText: string }> {
  const key = `${name}/${module}`;
  if (!probed.has(key)) {
    probed.set(key, (async () => {
      const url = urls.get(name)!;
      const [bbRes, ptRes] = await Promise.all([
        get(`${blackboxUrl}/probe?target=${encodeURIComponent(url)}&module=${module}`, { headers: name === 'slow' ? SCRAPE_TIMEOUT : ROOMY_TIMEOUT }),
        get(`${poller!.url}/probe?target=${name}&module=${module}`, { headers: name === 'slow' ? SCRAPE_TIMEOUT : ROOMY_TIMEOUT }),
      ]);
      assert.equal(bbRes.status, 200, `blackbox_exporter /probe of ${url}: ${bbRes.body}`);
      assert.equal(ptRes.status, 200, `promotel /probe of ${name}: ${ptRes.body}`);
      const b = bbRes.body;
      const p = ptRes.body;
      return {
        bbText: b,
        bb: {
          success: value(b, 'probe_success'),
          status: value(b, 'probe_http_status_code'),
          redirects: value(b, 'probe_http_redirects'),
          bodyBytes: value(b, 'probe_http_uncompressed_body_length'),
          certExpiry: value(b, 'probe_ssl_earliest_cert_expiry'),
          duration: value(b, 'probe_duration_seconds'),
          phases: phasesOf(b, 'probe_http_duration_seconds'),
        },
        pt: {
          success: value(p, 'promotel_probe_success', { target: name }),
          status: value(p, 'promotel_probe_http_status_code', { target: name }),
          redirects: value(p, 'promotel_probe_http_redirects', { target: name }),
          bodyBytes: value(p, 'promotel_probe_http_response_size_bytes', { target: name }),
          certExpiry: value(p, 'promotel_probe_tls_cert_expiry_timestamp_seconds', { target: name }),
          duration: value(p, 'promotel_probe_duration_seconds', { target: name }),
          phases: phasesOf(p, 'promotel_probe_phase_duration_seconds'),
        },
      };
    })());
  }
  return probed.get(key)!;
}

test('every target gets the same verdict, status code and body size from both', async () => {
  const expected: Array<[string, string, number, number, number]> = [
    // target, module, success, status code, body bytes
    ['ok', 'http_2xx', 1, 200, 6],
    ['localhost', 'http_2xx', 1, 200, 6],
    ['fail', 'http_2xx', 0, 503, 12], // a failed probe still reports the status and the body it got
    ['redirect', 'http_2xx', 1, 200, 6], // of the response redirected to
    ['redirect', 'no_follow', 0, 302, 0],
    ['slow', 'http_2xx', 0, 0, 0],
    ['refused', 'http_2xx', 0, 0, 0],
    ['garbage', 'http_2xx', 0, 0, 0],
    ['tls', 'tls_ca', 1, 200, 6],
    ['tls', 'http_2xx', 0, 0, 0], // the test certificate is not trusted without ca_file
  ];
  for (const [name, module, success, status, bytes] of expected) {
    const { bb, pt } = await both(name, module);
    const what = `${name} with ${module}`;
    assert.deepEqual([bb.success, bb.status, bb.bodyBytes], [success, status, bytes], `blackbox_exporter on ${what}`);
    assert.deepEqual([pt.success, pt.status, pt.bodyBytes], [bb.success, bb.status, bb.bodyBytes], `promotel on ${what}`);
  }
  // blackbox_exporter 0.23 has two size metrics: probe_http_content_length is the Content-Length
  // header (-1 when there is none), probe_http_uncompressed_body_length the bytes it read. promotel's
  // response size is the bytes read, so it is compared with the latter; the targets send an exact
  // Content-Length, so here the two agree.
  const { bbText } = await both('fail', 'http_2xx');
  assert.equal(value(bbText, 'probe_http_content_length'), 12);
  assert.equal(value(bbText, 'probe_http_uncompressed_body_length'), 12);
});

test('redirects: the same count when followed; with follow_redirects: false blackbox counts the one it was given, promotel the ones it followed', async () => {
  assert.deepEqual([(await both('redirect', 'http_2xx')).bb.redirects, (await both('redirect', 'http_2xx')).pt.redirects], [1, 1]);
  assert.deepEqual([(await both('ok', 'http_2xx')).bb.redirects, (await both('ok', 'http_2xx')).pt.redirects], [0, 0]);
  // By design (README): promotel_probe_http_redirects counts hops made, so that "redirects > 0"
  // means the answer came from elsewhere; blackbox_exporter 0.23 counts the 302 it did not follow.
  const { bb, pt } = await both('redirect', 'no_follow');
  assert.equal(bb.redirects, 1);
  assert.equal(pt.redirects, 0);
});

test('TLS: the same certificate expiry, the notAfter of the test certificate; none for plain HTTP or an untrusted chain', async () => {
  const trusted = await both('tls', 'tls_ca');
  assert.equal(trusted.bb.certExpiry, t.certExpiry);
  assert.equal(trusted.pt.certExpiry, trusted.bb.certExpiry);
  // Neither reports a certificate it could not verify (the handshake failed) or that does not exist.
  for (const [name, module] of [['tls', 'http_2xx'], ['ok', 'http_2xx']] as const) {
    const { bb, pt } = await both(name, module);
    assert.equal(bb.certExpiry, undefined, `blackbox_exporter on ${name} with ${module}`);
    assert.equal(pt.certExpiry, undefined, `promotel on ${name} with ${module}`);
  }
});

test('a slow target: both give up after the scrape timeout minus half a second', async () => {
  const { bb, pt } = await both('slow', 'http_2xx'); // /slow answers after 2 s
  assert.ok(bb.duration! >= 0.49 && bb.duration! < 1, `blackbox_exporter gave up after ${bb.duration} s`);
  assert.ok(pt.duration! >= 0.49 && pt.duration! < 1, `promotel gave up after ${pt.duration} s`);
});

test('phases: both report all five for every probe, and the same ones took time, except resolve of an IP literal', async () => {
  const expected: Array<[string, string, string, string]> = [
    // target, module, phases that took time: blackbox_exporter, promotel
    ['ok', 'http_2xx', 'resolve connect processing transfer', 'connect processing transfer'],
    ['fail', 'http_2xx', 'resolve connect processing transfer', 'connect processing transfer'],
    ['redirect', 'http_2xx', 'resolve connect processing transfer', 'connect processing transfer'],
    ['redirect', 'no_follow', 'resolve connect processing transfer', 'connect processing transfer'],
    ['localhost', 'http_2xx', 'resolve connect processing transfer', 'resolve connect processing transfer'],
    ['tls', 'tls_ca', 'resolve connect tls processing transfer', 'connect tls processing transfer'],
    ['refused', 'http_2xx', 'resolve', ''],
    // A failed handshake: blackbox_exporter counts connect and tls only once the connection is
    // ready for the request, so neither is reported; promotel agrees.
    ['tls', 'http_2xx', 'resolve', ''],
  ];
  for (const [name, module, bbTook, ptTook] of expected) {
    const { bb, pt } = await both(name, module);
    const what = `${name} with ${module}`;
    for (const phase of PHASES) {
      assert.notEqual(bb.phases[phase], undefined, `blackbox_exporter reports phase ${phase} of ${what}`);
      assert.notEqual(pt.phases[phase], undefined, `promotel reports phase ${phase} of ${what}`);
    }
    assert.equal(took(bb), bbTook, `phases of ${what} that took time for blackbox_exporter`);
    assert.equal(took(pt), ptTook, `phases of ${what} that took time for promotel`);
    // The one difference: blackbox_exporter resolves the host itself before every probe (its
    // probe_dns_lookup_time_seconds), which takes microseconds even for an IP literal; promotel times
    // the socket's DNS lookup, which Node does not make for an IP literal, so its resolve is exactly 0.
    // With a name to look up (localhost) both report the lookup.
    if (name !== 'localhost') {
      assert.ok(bb.phases.resolve! > 0, `blackbox_exporter resolve of ${what}`);
      assert.equal(pt.phases.resolve, 0, `promotel resolve of ${what}`);
    }
  }
});

test('phases of a probe that connected and then failed: the connect time is reported, as blackbox_exporter does', async () => {
  // A target that accepts the connection and never answers in time: blackbox_exporter reports how
  // long the connection took (and no processing or transfer, as no byte came). promotel must too:
  // a connect phase of 0 would say the connection took no time, and "connected, then no answer"
  // could not be told from "never connected" by the phases.
  const slow = await both('slow', 'http_2xx');
  assert.equal(took(slow.bb), 'resolve connect');
  assert.equal(took(slow.pt), 'connect', 'promotel phases of the timed-out probe (resolve is 0 for an IP literal)');

  // A target that answers garbage: blackbox_exporter reports the connect phase. Its processing phase
  // is not compared: the garbage server talks before it is asked, and Go's transport reports the
  // first byte only when the request was on its way before that byte arrived (about 98% of runs).
  const garbage = await both('garbage', 'http_2xx');
  assert.ok(garbage.bb.phases.connect! > 0, 'blackbox_exporter connect of the garbage target');
  assert.ok(garbage.pt.phases.connect! > 0, `promotel connect of the garbage target: ${garbage.pt.phases.connect}`);
  assert.deepEqual([garbage.bb.phases.tls, garbage.bb.phases.transfer], [0, 0]);
  assert.deepEqual([garbage.pt.phases.tls, garbage.pt.phases.transfer], [0, 0]);
});
