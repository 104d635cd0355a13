// The README is part of the product: its tables must say what the code does.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { VARIABLES } from '../src/config';
import { KNOWN_METHODS_VARIABLE } from '../src/instrumentations/http-semconv';
import { HELP } from '../src/cli';
import { DEMO, ROOT, eventually, freePort, get, pythonParse, startApp, type Family } from './helpers';
import { scrape, startPoller, startTargets } from './poll-helpers';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** Rows of the markdown table whose header starts with `firstHeader`. */
function table(firstHeader: string): string[][] {
  const lines = README.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`| ${firstHeader} |`));
  assert.ok(start >= 0, `README has no table headed "${firstHeader}"`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.slice(1, -1).split('|').map((c) => c.trim()));
  }
  return rows;
}

const ticked = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

test('the README starts with the two commands, and CI runs the same test command', () => {
  const block = /^```sh\n(.+)\n(.+)\n```/m.exec(README);
  assert.ok(block, 'no command block');
  assert.match(block[1]!, /^bash \.ci\/install && npm start\s+#/);
  assert.match(block[2]!, /^npm test\s+#/);
  const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
  assert.match(ci, /^bash \.ci\/install$/m);
  assert.match(ci, /^npm test$/m);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  assert.match(pkg.scripts.start, /node --require promotel\/register examples\/demo\/server\.js$/);
});

test('the configuration table lists every variable the agent reads, with its default', () => {
  const rows = table('variable').map(([name, def, meaning]) => ({ name: ticked(name!)[0], default: def!.replace(/`/g, ''), meaning: meaning! }));
  assert.deepEqual(rows, VARIABLES.map((v) => ({ name: v.name, default: v.default, meaning: v.meaning })), 'names, defaults and meanings as promotel.VARIABLES gives them, in order');
  assert.ok(VARIABLES.includes(KNOWN_METHODS_VARIABLE), 'the variable the HTTP hooks read themselves is listed too');
  // And every variable the agent's code names is in the table, as a row or in a row's meaning (the *_METRICS_* variants).
  const src = ['config.ts', 'config-otlp.ts', 'register.ts', 'agent.ts', 'exporters/otlp.ts', 'instrumentations/http-semconv.ts'].map((f) => readFileSync(join(ROOT, 'src', f), 'utf8')).join('\n');
  const read = new Set([...src.matchAll(/\b((?:OTEL|PROMOTEL)_[A-Z_]+)\b/g)].map((m) => m[1]!));
  read.delete('PROMOTEL_CLUSTER_PRIMARY'); // internal: set by a primary for its workers
  const tableText = table('variable').map((r) => r.join(' ')).join('\n');
  for (const name of read) assert.ok(tableText.includes(`\`${name}\``), `${name} is read but not in the README table`);
});

const AGENT_SOURCES = new Set(['resource', 'http', 'runtime', 'host']);
const INTERNAL_LABELS = new Set(['otel_scope_name', 'otel_scope_version', 'le']);

test('the metric table and what the demo serves agree, both ways, with types, units and labels', async () => {
  const rows = table('metric').map(([name, type, unit, labels, source]) => ({ name: ticked(name!)[0]!, type: type!, unit: unit!, labels: ticked(labels!), source: source! }));
  const expected = rows.filter((r) => AGENT_SOURCES.has(r.source) || r.source.startsWith('demo app'));

  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(DEMO, {
    execArgv: ['--max-semi-space-size=1'],
    env: { PORT: String(appPort), HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
  });
  let families: Family[];
  try {
    await app.waitFor(/demo listening/);
    assert.equal((await get(`http://127.0.0.1:${appPort}/upstream`)).status, 200);
    // Enough allocation for a garbage collection, so that v8js_gc_duration_seconds has data.
    families = await eventually(async () => {
      for (let i = 0; i < 20; i++) await get(`http://127.0.0.1:${appPort}/q`);
      const f = pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
      return f.length >= expected.length ? f : undefined;
    }, 20_000);
  } finally {
    app.kill();
  }

  const served = families.map((f) => f.name + (f.type === 'counter' ? '_total' : '')).sort();
  assert.deepEqual(served, expected.map((r) => r.name).sort(), 'families served vs README rows');
  for (const row of expected) {
    const family = families.find((f) => f.name + (f.type === 'counter' ? '_total' : '') === row.name)!;
    assert.equal(family.type, row.type, `${row.name}: type`);
    const suffix = { seconds: '_seconds', bytes: '_bytes', ratio: '_ratio' }[row.unit];
    if (suffix) assert.ok(row.name.replace(/_total$/, '').endsWith(suffix), `${row.name}: unit ${row.unit} but no ${suffix} suffix`);
    if (row.name === 'target_info') continue;
    const seen = new Set(family.samples.flatMap((s) => Object.keys(s.labels)).filter((l) => !INTERNAL_LABELS.has(l)));
    for (const label of seen) assert.ok(row.labels.includes(label), `${row.name}: label ${label} is served but not in the README`);
  }
});

test('the sidecar rows of the metric table and what `promotel poll` serves agree, both ways', async () => {
  const rows = table('metric').map(([name, type, unit, labels, source]) => ({ name: ticked(name!)[0]!, type: type!, unit: unit!, labels: ticked(labels!), source: source! }));
  const sidecar = rows.filter((r) => r.source === 'sidecar');
  const shared = new Set(rows.filter((r) => AGENT_SOURCES.has(r.source) && r.source !== 'http').map((r) => r.name));
  const targets = await startTargets();
  // One target of each outcome, so that every family appears: a failure, an HTTPS target, a scheduled poll.
  const poller = await startPoller(`
interval: 50ms
jitter: 0s
modules:
  tls: { tls: { ca_file: ${JSON.stringify(targets.certFile)} } }
targets:
  - { name: ok, url: "${targets.base}/ok" }
  - { name: fail, url: "${targets.base}/fail" }
  - { name: tls, url: "https://127.0.0.1:${targets.tlsPort}/ok", module: tls }
`);
  let families: Family[];
  try {
    families = await eventually(async () => {
      const f = pythonParse(await scrape(`${poller.url}/metrics`));
      return f.some((x) => x.name === 'promotel_probe_tls_cert_expiry_timestamp_seconds') && f.some((x) => x.name === 'promotel_poll_errors') ? f : undefined;
    }, 10_000, 50);
  } finally {
    await poller.stop();
    await targets.close();
  }
  const name = (f: Family): string => f.name + (f.type === 'counter' ? '_total' : '');
  const own = families.filter((f) => !shared.has(name(f))).map(name).sort();
  assert.deepEqual(own, sidecar.map((r) => r.name).sort(), 'families served by promotel poll (other than runtime, host, resource) vs sidecar rows');
  for (const row of sidecar) {
    const family = families.find((f) => name(f) === row.name)!;
    assert.equal(family.type, row.type, `${row.name}: type`);
    const seen = new Set(family.samples.flatMap((s) => Object.keys(s.labels)).filter((l) => !INTERNAL_LABELS.has(l)));
    for (const label of seen) assert.ok(row.labels.includes(label), `${row.name}: label ${label} is served but not in the README`);
  }
});

test('the README shows `promotel --help` verbatim', () => {
  const block = /This is `promotel --help`, verbatim[^\n]*\n\n```text\n([\s\S]*?)```/.exec(README);
  assert.ok(block, 'no --help block in the README');
  assert.equal(block[1], HELP);
});
