// promotel benchmarks (issue 3): HTTP overhead, scrape cost, startup and idle
// memory, each next to its peers in the same run. Real servers on 127.0.0.1,
// `wrk` as load, A/B runs alternated, medians reported. `--smoke` runs a
// minute-long version that only proves the benchmarks still work.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SMOKE = process.argv.includes('--smoke');
const P = SMOKE
  ? { rounds: 1, satSec: 1, rateSec: 1, startupRuns: 3, memRuns: 1, scrapeNs: [1000] }
  : { rounds: 5, satSec: 5, rateSec: 4, startupRuns: 25, memRuns: 3, scrapeNs: [10000, 100000] };
const REGISTER = join(ROOT, 'dist', 'src', 'register.js');
const HELLO = join(ROOT, 'bench', 'servers', 'hello.js');
const srv = (f) => join(ROOT, 'bench', 'servers', f);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN; };
const spread = (xs) => (xs.length > 1 ? `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}` : '');
const log = (m) => process.stderr.write(`${m}\n`);

// Ports the system hands out as free, rather than a counter that may run into a port in use.
const port = () =>
  new Promise((resolve, reject) => {
    const probe = net.createServer().on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address();
      probe.close(() => resolve(free));
    });
  });

const PEERS = [
  { name: 'bare node:http', args: [], env: {} },
  { name: 'promotel', args: ['--require', REGISTER], env: { OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' }, metricsEnv: 'OTEL_EXPORTER_PROMETHEUS_PORT' },
  { name: 'prom-client 15 manual histogram', args: [], env: { BENCH_SETUP: srv('prom-client.js') } },
  { name: 'diagnostics_channel + sdk-metrics record()', args: ['--require', srv('dc-sdk.js')], env: {} },
  { name: 'OTel instrumentation-http + sdk-metrics + exporter-prometheus', args: ['--require', srv('otel-http.js')], env: {} },
  {
    name: 'OTel auto-instrumentations-node/register (metrics only)',
    args: ['--require', '@opentelemetry/auto-instrumentations-node/register'],
    env: { OTEL_TRACES_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
    metricsEnv: 'OTEL_EXPORTER_PROMETHEUS_PORT',
  },
];

function cpuTicks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks
}
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

async function startServer(peer) {
  const appPort = await port();
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, PORT: String(appPort), METRICS_PORT: String(await port()), ...peer.env };
  if (peer.metricsEnv) env[peer.metricsEnv] = env.METRICS_PORT;
  const child = spawn(process.execPath, [...peer.args, HELLO], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${peer.name} did not listen within 15 s`)), 15_000);
    child.stdout.on('data', (d) => { if (String(d).includes('listening')) { clearTimeout(timer); resolve(); } });
    child.on('exit', (c) => reject(new Error(`${peer.name} exited with ${c}`)));
  });
  return { child, url: `http://127.0.0.1:${appPort}/`, metricsUrl: `http://127.0.0.1:${env.METRICS_PORT}/metrics` };
}
const stop = (child) => new Promise((r) => { if (child.exitCode !== null) return r(); child.once('exit', r); child.kill('SIGKILL'); });

function wrk(url, seconds, script) {
  const args = ['-t1', '-c50', `-d${seconds}s`, '--timeout', '5s', ...(script ? ['-s', script] : []), url];
  const out = spawnSync('wrk', args, { encoding: 'utf8', timeout: (seconds + 20) * 1000 }).stdout ?? '';
  const n = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  return { n, rps };
}

// Fixed offered rate: each of the 50 connections waits 10 ms between requests (at most ~5,000 req/s), far below saturation.
const tmp = mkdtempSync(join(os.tmpdir(), 'promotel-bench-'));
const RATE_SCRIPT = join(tmp, 'rate.lua');
writeFileSync(RATE_SCRIPT, 'function delay()\n  return 10\nend\n');

async function httpBench() {
  const res = new Map(PEERS.map((p) => [p.name, { rps: [], cpuSat: [], cpuRate: [], ratioRps: [], ratioCpu: [] }]));
  for (let round = 0; round < P.rounds; round++) {
    // Rotate the order each round so no peer always runs first or right after another.
    const order = PEERS.map((_, i) => PEERS[(i + round) % PEERS.length]);
    const roundRes = {};
    for (const peer of order) {
      const s = await startServer(peer);
      try {
        wrk(s.url, 1); // warm-up: JIT and connection pools
        let t0 = cpuTicks(s.child.pid);
        const sat = wrk(s.url, P.satSec);
        const cpuSat = ((cpuTicks(s.child.pid) - t0) * TICK_US) / sat.n;
        t0 = cpuTicks(s.child.pid);
        const rate = wrk(s.url, P.rateSec, RATE_SCRIPT);
        const cpuRate = ((cpuTicks(s.child.pid) - t0) * TICK_US) / rate.n;
        roundRes[peer.name] = { rps: sat.rps, cpuSat, cpuRate, rateRps: rate.rps };
        log(`  http round ${round + 1} ${peer.name}: ${sat.rps.toFixed(0)} req/s, ${cpuRate.toFixed(1)} µs CPU/req at ${rate.rps.toFixed(0)} req/s`);
      } finally {
        await stop(s.child);
      }
    }
    const bare = roundRes[PEERS[0].name];
    for (const peer of PEERS) {
      const r = roundRes[peer.name], acc = res.get(peer.name);
      acc.rps.push(r.rps); acc.cpuSat.push(r.cpuSat); acc.cpuRate.push(r.cpuRate);
      acc.ratioRps.push(r.rps / bare.rps); acc.ratioCpu.push(r.cpuRate / bare.cpuRate);
    }
  }
  return res;
}

function timeRun(args) {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, OTEL_EXPORTER_PROMETHEUS_PORT: '0', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', METRICS_PORT: '0', OTEL_TRACES_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'prometheus' }, timeout: 30_000 });
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

function startupBench() {
  // Peers whose exporters hold the process open end with process.exit(); the bare and promotel runs are exactly `node [-r] -e ''`.
  const rows = [
    ['node -e \'\'', ['-e', '']],
    ['node --require promotel/register -e \'\'', ['--require', REGISTER, '-e', '']],
    ['OTel instrumentation-http + sdk-metrics + exporter (-e process.exit())', ['--require', srv('otel-http.js'), '-e', 'process.exit()']],
    ['OTel auto-instrumentations-node/register (-e process.exit())', ['--require', '@opentelemetry/auto-instrumentations-node/register', '-e', 'process.exit()']],
  ];
  const times = rows.map(() => []);
  for (let i = 0; i < P.startupRuns; i++) rows.forEach(([, args], k) => times[k].push(timeRun(args)));
  return rows.map(([name], k) => ({ name, ms: median(times[k]), added: median(times[k].map((t, i) => t - times[0][i])), all: times[k] }));
}

async function memoryBench() {
  const rssOf = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
  const out = { bare: [], promotel: [] };
  for (let i = 0; i < P.memRuns; i++) {
    for (const peer of [PEERS[0], PEERS[1]]) {
      const s = await startServer(peer);
      try {
        await new Promise((r) => setTimeout(r, 1500)); // let deferred loading happen
        if (peer.metricsEnv) await fetch(s.metricsUrl).then((r) => r.text()); // an idle service still gets scraped
        await new Promise((r) => setTimeout(r, 500));
        out[peer === PEERS[0] ? 'bare' : 'promotel'].push(rssOf(s.child.pid));
      } finally {
        await stop(s.child);
      }
    }
  }
  return { bare: median(out.bare), promotel: median(out.promotel), added: median(out.promotel.map((m, i) => m - out.bare[i])) };
}

function scrapeBenchChild(n) {
  const r = spawnSync(process.execPath, ['--expose-gc', join(ROOT, 'bench', 'scrape.mjs'), String(n), '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`scrape bench N=${n} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function machine() {
  const read = (f) => { try { return readFileSync(f, 'utf8'); } catch { return ''; } };
  const cpu = /^model name\s*:\s*(.+)$/m.exec(read('/proc/cpuinfo'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown CPU';
  const distro = /^PRETTY_NAME="?([^"\n]+)/m.exec(read('/etc/os-release'))?.[1] ?? os.type();
  return `${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${distro} (kernel ${os.release()}); load average at start ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`;
}

const started = new Date();
log(`promotel bench${SMOKE ? ' (smoke)' : ''}: ${machine()}`);
const http = await httpBench();
log('startup...');
const startup = startupBench();
log('memory...');
const memory = await memoryBench();
log('scrape...');
const scrapes = P.scrapeNs.map((n) => ({ n, ...scrapeBenchChild(n) }));

const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
let md = `# promotel benchmark results\n\n`;
md += `- Date: ${started.toISOString()}${SMOKE ? ' (smoke run: numbers are not meaningful)' : ''}\n- Machine: ${machine()}\n`;
md += `- Load: \`wrk -t1 -c50\` on 127.0.0.1 against bench/servers/hello.js (wrk and the server share the 2 cores); per peer and round: 1 s warm-up, ${P.satSec} s at saturation, then ${P.rateSec} s at a fixed offered rate (each of the 50 connections waits 10 ms between requests, a Lua \`delay()\`: at most ~5,000 req/s, the achieved rate is logged) for the CPU-per-request column (utime+stime of the server from /proc/<pid>/stat ÷ requests); ${P.rounds} rounds, peer order rotated each round, medians shown (min–max across rounds in brackets); ratios are taken within each round, then the median.\n`;
md += `- Other processes may have loaded the 2 cores during the run; the spread columns show the noise.\n\n`;
md += `## Target 1: HTTP server overhead\n\n| peer | req/s at saturation | × bare | server CPU µs/req at fixed rate | × bare | CPU µs/req at saturation |\n|---|---|---|---|---|---|\n`;
for (const [name, r] of http) md += `| ${name} | ${f(median(r.rps), 0)} (${spread(r.rps)}) | ${f(median(r.ratioRps))} | ${f(median(r.cpuRate), 1)} | ${f(median(r.ratioCpu))} | ${f(median(r.cpuSat), 1)} |\n`;
const ours1 = http.get('promotel');
const rpsRatio = median(ours1.ratioRps), cpuRatio = median(ours1.ratioCpu);
md += `\nTargets: promotel ≥ 0.95× bare req/s (**${rpsRatio >= 0.95 ? 'met' : 'missed'}**, ${f(rpsRatio)}×; per-round ratios ${ours1.ratioRps.map((x) => f(x)).join(', ')}), ≤ 1.05× bare CPU per request at the fixed rate (**${cpuRatio <= 1.05 ? 'met' : 'missed'}**, ${f(cpuRatio)}×; per-round ${ours1.ratioCpu.map((x) => f(x)).join(', ')}).\n\n`;
md += `## Target 2: scrape cost (one counter with N label sets + one 14-bucket histogram with N/10)\n\n`;
md += `In one process per N (bench/scrape.mjs), same data for every implementation; median of repeated runs (run count in the table). Every time ends with the bytes a server sends: promotel writes a Buffer, the string results of the others include \`Buffer.from(string)\`. prom-client has no separate collect step, so \`await registry.metrics()\` appears in both tables.\n\n`;
const target2 = [];
for (const kind of ['serialize', 'collect+serialize']) {
  md += `### ${kind === 'serialize' ? 'Serialize only (sdk-metrics data already collected)' : 'Collect + serialize (a whole scrape)'}\n\n| N | implementation | ms per scrape (median) | runs | µs per line | lines | peer ÷ promotel per line |\n|---|---|---|---|---|---|---|\n`;
  for (const s of scrapes) {
    const rows = s.rows.filter((r) => r.kind === kind || (kind === 'collect+serialize' && r.kind === 'collect'));
    const ours = rows.find((r) => r.ours && r.kind === kind);
    const oursPer = (ours.ms * 1000) / ours.lines;
    for (const r of rows) {
      const per = (r.ms * 1000) / r.lines;
      const peer = !r.impl.startsWith('promotel') && r.kind === kind;
      md += `| ${s.n} | ${r.impl} | ${f(r.ms)} | ${r.runs} | ${f(per, 3)} | ${r.lines} | ${peer ? f(per / oursPer, 1) + '×' : ''} |\n`;
      if (peer) target2.push({ kind, n: s.n, impl: r.impl, ratio: per / oursPer });
    }
  }
  md += '\n';
}
md += `Memory per series (JS heap after gc, \`--expose-gc\`): `;
md += scrapes.map((s) => `N=${s.n}: sdk-metrics storage ${f(s.memory.sdkBytesPerSeries, 0)} B + promotel label cache ${f(s.memory.labelCacheBytesPerSeries, 0)} B (heap + encoded bytes); prom-client ${f(s.memory.promClientBytesPerSeries, 0)} B`).join('; ') + '.\n\n';
const tenK = scrapes.find((s) => s.n === 10000)?.rows.find((r) => r.ours && r.kind === 'collect+serialize');
const serRatios = target2.filter((t) => t.kind === 'serialize');
const serMet = serRatios.length > 0 && serRatios.every((t) => t.ratio >= 5);
const fullRatios = target2.filter((t) => t.kind === 'collect+serialize');
md += `Targets: ≥ 5× faster per line than prom-client and the stock serializer at 10k and 100k; a 10k-series scrape (collect + serialize) under 10 ms.\n\n`;
md += `- Serialize only, ≥ 5× per line: **${serMet ? 'met' : 'missed'}** (lowest ratio ${f(Math.min(...serRatios.map((t) => t.ratio)), 1)}×).\n`;
md += `- Collect + serialize, for reference: lowest ratio ${f(Math.min(...fullRatios.map((t) => t.ratio)), 1)}× (${fullRatios.filter((t) => t.ratio < 5).map((t) => `${t.impl} at N=${t.n}: ${f(t.ratio, 1)}×`).join(', ') || 'all ≥ 5×'}).\n`;
md += `- 10k-series scrape incl. collect < 10 ms: **${tenK ? (tenK.ms < 10 ? 'met' : 'missed') : 'not measured'}** (${tenK ? f(tenK.ms) + ' ms' : 'smoke run'}).\n\n`;
md += `## Target 3: startup\n\n| command | wall ms (median of ${P.startupRuns}) | added vs node -e '' |\n|---|---|---|\n`;
for (const s of startup) md += `| ${s.name} | ${f(s.ms, 0)} (${spread(s.all)}) | ${f(s.added, 0)} |\n`;
md += `\nTarget: promotel adds ≤ 100 ms: **${startup[1].added <= 100 ? 'met' : 'missed'}** (median of per-pair differences ${f(startup[1].added, 0)} ms).\n\n## Target 4: resident memory of an idle service\n\n| | RSS MiB |\n|---|---|\n| hello server, bare | ${f(memory.bare, 1)} |\n| hello server + promotel (after 2 s and one scrape) | ${f(memory.promotel, 1)} |\n| added by promotel | ${f(memory.added, 1)} |\n\nTarget: ≤ 25 MB added: **${memory.added <= 25 ? 'met' : 'missed'}**.\n`;
if (SMOKE) {
  process.stdout.write(md);
  const bad = [...http.values()].some((r) => !r.rps.every(Number.isFinite)) || scrapes.some((s) => s.rows.some((r) => !Number.isFinite(r.ms)));
  if (bad) { log('smoke: a benchmark produced no number'); process.exit(1); }
} else {
  writeFileSync(join(ROOT, 'bench', 'RESULTS.md'), md);
  process.stdout.write(md);
}
