// Focused A/B for target 1 (issue 3): which part of promotel costs the
// hello-world server its throughput. bench/run.mjs measures promotel against
// its peers once per round; this script instead alternates variants of
// promotel itself (each switch off in turn, or another build), many short
// rounds with the order rotated, so that the noise of a shared 2-core machine
// hits every variant alike and the median of per-round ratios survives it.
//
//   node bench/ab.mjs [--rounds 24] [--sec 2] [--per-server 4] [--rate-sec 0] [--no-pin]
//                     [--only bare,default,...] [--build NAME=path/to/dist/src] [--env NAME=VAR=value] ...
//                     [--tree path/to/dist/src] [--quiet 0.03] [--retries 20]
//
// Variants (default: all of these):
//   bare         node bench/servers/hello.js
//   bare-control the same again: what the method reads when nothing differs
//   default      promotel preloaded, default configuration
//   http-off     PROMOTEL_HTTP_METRICS=false
//   runtime-off  PROMOTEL_RUNTIME_METRICS=false
//   host-off     PROMOTEL_HOST_METRICS=false
//   all-off      all three false (what is left: the SDK, the endpoint, the stand-ins)
//   (these five use --tree, by default this checkout's dist/src)
//   --build NAME=DIR adds a variant NAME: promotel's default configuration from
//   another build (DIR holds register.js), e.g. the tree before a change.
//   --env NAME=VAR=value[,VAR=value] adds a variant NAME: the --tree build with
//   these variables, e.g. --env eld20=PROMOTEL_EVENTLOOP_DELAY_RESOLUTION=20.
//
// One server per variant runs for `--per-server` rounds (then all are
// replaced, so that one lucky or unlucky process cannot decide the result),
// warmed up for 1 s. Per variant and round: `--sec` s (0: none) of `wrk -t1 -c50` at
// saturation (req/s, and server CPU µs per request from /proc/<pid>/stat
// utime+stime; idle servers wait meanwhile); then with --rate-sec > 0, each
// variant side by side with bare for that many seconds at the fixed offered
// rate bench/run.mjs uses (each connection waits 10 ms), for the ratio of CPU
// per request below saturation within the pair. Ratios vs bare are taken within each
// round, then the median; min–max across rounds is the spread. Servers run
// on CPU 0 and wrk on CPU 1, as in run.mjs (peers.mjs PINNED); --no-pin
// leaves the servers and the saturation bursts' wrk unpinned. Results go to
// stdout as a Markdown table, one line per round to stderr (AB_DEBUG=1 adds
// one per burst, retried ones included).
//
// Even so, on a shared VM the per-round ratios spread by ±40% (the host's
// other tenants are invisible in /proc/stat), so a median over 16 rounds
// moves by ±4%: differences below that need many more rounds, or a CPU
// profile (what share of the server's samples lies in promotel's frames).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PINNED, RATE_SCRIPT, cpuUs, envVariant, median as medianOf, option, port, wrk as wrkAsync } from './peers.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const HELLO = join(ROOT, 'bench', 'servers', 'hello.js');

const ROUNDS = Number(option('rounds', '24'));
const SEC = Number(option('sec', '2'));
const PER_SERVER = Number(option('per-server', '4'));
const RATE_SEC = Number(option('rate-sec', '0'));
const PIN = PINNED && !process.argv.includes('--no-pin');
const QUIET = Number(option('quiet', '0.03'));
const RETRIES = Number(option('retries', '20'));

const register = (dir) => ['--require', join(dir, 'register.js')];
const OWN = register(resolve(option('tree', join(ROOT, 'dist', 'src'))));
const BASE_ENV = { OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' };
const ALL = [
  { name: 'bare', args: [], env: {} },
  // A second bare server: its ratio is the method's own bias and noise floor.
  { name: 'bare-control', args: [], env: {} },
  { name: 'default', args: OWN, env: BASE_ENV },
  { name: 'http-off', args: OWN, env: { ...BASE_ENV, PROMOTEL_HTTP_METRICS: 'false' } },
  { name: 'runtime-off', args: OWN, env: { ...BASE_ENV, PROMOTEL_RUNTIME_METRICS: 'false' } },
  { name: 'host-off', args: OWN, env: { ...BASE_ENV, PROMOTEL_HOST_METRICS: 'false' } },
  { name: 'all-off', args: OWN, env: { ...BASE_ENV, PROMOTEL_HTTP_METRICS: 'false', PROMOTEL_RUNTIME_METRICS: 'false', PROMOTEL_HOST_METRICS: 'false' } },
];
process.argv.forEach((a, i) => {
  if (a === '--build') {
    const [name, dir] = process.argv[i + 1].split('=');
    ALL.push({ name, args: register(resolve(dir)), env: BASE_ENV });
  } else if (a === '--env') {
    const { name, env } = envVariant(process.argv[i + 1]);
    ALL.push({ name, args: OWN, env: { ...BASE_ENV, ...env } });
  }
});
const only = option('only', undefined)?.split(',');
const VARIANTS = only ? ALL.filter((v) => v.name === 'bare' || only.includes(v.name)) : ALL;
if (VARIANTS[0]?.name !== 'bare') throw new Error('bare must be a variant: every ratio is against it');

const TICKS_PER_S = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const TICK_US = 1e6 / TICKS_PER_S;
function cpuTicks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
}

async function startServer(v) {
  const appPort = await port();
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, PORT: String(appPort), OTEL_EXPORTER_PROMETHEUS_PORT: String(await port()), ...v.env };
  const [cmd, args] = PIN ? ['taskset', ['-c', '0', process.execPath, ...v.args, HELLO]] : [process.execPath, [...v.args, HELLO]];
  const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`${v.name} did not listen within 15 s`)), 15_000);
    child.stdout.on('data', (d) => { if (String(d).includes('listening')) { clearTimeout(timer); res(); } });
    child.on('exit', (c) => rej(new Error(`${v.name} exited with ${c}`)));
  });
  return { child, url: `http://127.0.0.1:${appPort}/` };
}
const stop = (child) => new Promise((r) => { if (child.exitCode !== null) return r(); child.once('exit', r); child.kill('SIGKILL'); });

// wrk runs under sh so that its CPU time can be read afterwards: sh's
// cutime+cstime hold it once sh has waited for it.
function wrk(url, seconds, script) {
  const args = ['-t1', '-c50', `-d${seconds}s`, '--timeout', '5s', ...(script ? ['-s', script] : []), url];
  const cmd = `${PIN ? 'taskset -c 1 ' : ''}wrk ${args.join(' ')}; echo; cat /proc/$$/stat`;
  const out = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: (seconds + 20) * 1000 }).stdout ?? '';
  const stat = out.trim().split('\n').pop().split(') ')[1]?.split(' ') ?? [];
  return {
    n: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    ticks: Number(stat[13]) + Number(stat[14]),
  };
}

// Busy clock ticks of the whole machine: user, nice, system, irq, softirq, steal.
function machineTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return f[1] + f[2] + f[3] + f[6] + f[7] + f[8];
}

// A burst during which other processes took more than --quiet of the
// machine's ticks is measured again (up to --retries times): other users of
// this machine come in episodes of seconds, and a burst inside one says
// nothing about promotel.
async function burst(s) {
  if (SEC === 0) return { rps: NaN, cpuSat: NaN, foreign: 0 }; // --sec 0: the fixed-rate pairs only
  for (let attempt = 0; ; attempt++) {
    const m0 = machineTicks();
    let t0 = cpuTicks(s.child.pid);
    const sat = wrk(s.url, SEC);
    const server = cpuTicks(s.child.pid) - t0;
    const foreign = (machineTicks() - m0 - server - sat.ticks) / (SEC * TICKS_PER_S * os.cpus().length);
    if (process.env.AB_DEBUG) log(`  burst: ${sat.rps.toFixed(0)} req/s, server ${server}, wrk ${sat.ticks}, foreign ${(foreign * 100).toFixed(1)}%`);
    if (foreign > QUIET && attempt < RETRIES) { retried++; continue; }
    return { rps: sat.rps, cpuSat: (server * TICK_US) / sat.n, foreign };
  }
}
let retried = 0;

const log = (m) => process.stderr.write(`${m}\n`);
const rows = new Map(VARIANTS.map((v) => [v.name, { rps: [], rRps: [], rCpuSat: [], cpuSat: [], rCpuRate: [] }]));
log(`ab: ${VARIANTS.map((v) => v.name).join(', ')}; ${ROUNDS} rounds × ${SEC} s${RATE_SEC ? ` + ${RATE_SEC} s at a fixed rate beside bare` : ''}, fresh servers every ${PER_SERVER} rounds${PIN ? ', pinned' : ''}; load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
let servers;
for (let round = 0; round < ROUNDS; round++) {
  if (round % PER_SERVER === 0) {
    if (servers) for (const s of servers.values()) await stop(s.child);
    servers = new Map();
    for (const v of VARIANTS) servers.set(v.name, await startServer(v));
    for (const s of servers.values()) wrk(s.url, 1); // JIT and connection warm-up
  }
  // Rotated, and reversed every other round, so that no variant always follows the same one.
  let order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]);
  if (round % 2) order = order.reverse();
  const got = {};
  for (const v of order) got[v.name] = await burst(servers.get(v.name));
  const bare = got.bare;
  // At the fixed rate each variant runs side by side with bare, both loaded at
  // once: the host's noise then slows both alike, and the ratio within the
  // pair spreads by a few percent instead of tens.
  bare.cpuRateRatio = 1;
  for (const v of RATE_SEC > 0 ? order.filter((x) => x.name !== 'bare') : []) {
    const [b, s] = [servers.get('bare'), servers.get(v.name)];
    await Promise.all([wrkAsync(b.url, 2, RATE_SCRIPT), wrkAsync(s.url, 2, RATE_SCRIPT)]); // the same recent past for both
    const [b0, s0] = [cpuUs(b.child.pid), cpuUs(s.child.pid)];
    const [rb, rs] = await Promise.all([wrkAsync(b.url, RATE_SEC, RATE_SCRIPT), wrkAsync(s.url, RATE_SEC, RATE_SCRIPT)]);
    got[v.name].cpuRateRatio = (cpuUs(s.child.pid) - s0) / rs.n / ((cpuUs(b.child.pid) - b0) / rb.n);
  }
  for (const v of VARIANTS) {
    const r = got[v.name], acc = rows.get(v.name);
    acc.rps.push(r.rps); acc.cpuSat.push(r.cpuSat);
    acc.rRps.push(r.rps / bare.rps); acc.rCpuSat.push(r.cpuSat / bare.cpuSat); acc.rCpuRate.push(r.cpuRateRatio ?? NaN);
  }
  const show = (r) => [SEC ? `${r.rps.toFixed(0)} req/s (${(r.rps / bare.rps).toFixed(2)}${r.foreign > QUIET ? ', noisy' : ''})` : '', RATE_SEC ? `CPU/req ${r.cpuRateRatio.toFixed(3)}` : ''].filter(Boolean).join(', ');
  log(`round ${round + 1}: ${order.map((v) => `${v.name} ${show(got[v.name])}`).join('; ')}`);
}
for (const s of servers.values()) await stop(s.child);

const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const finite = (xs) => xs.filter(Number.isFinite);
// Rounds without a fixed-rate part (--rate-sec 0) leave NaN ratios, which the medians skip.
const median = (xs) => medianOf(finite(xs));
const geomean = (xs) => Math.exp(finite(xs).reduce((a, x) => a + Math.log(x), 0) / finite(xs).length);
const range = (xs, d = 2) => `${f(Math.min(...finite(xs)), d)}–${f(Math.max(...finite(xs)), d)}`;
let md = `${ROUNDS} rounds × ${SEC} s, wrk -t1 -c50${PIN ? ', server on CPU 0 and wrk on CPU 1' : ''}; ${retried} bursts measured again because other processes used > ${QUIET * 100}% of the machine; load at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}\n\n`;
md += `| variant | req/s (median) | × bare req/s (median, min–max) | × bare req/s (geometric mean) | CPU µs/req at saturation | × bare CPU/req${RATE_SEC ? ' | × bare CPU/req at fixed rate, side by side' : ''} |\n|---|---|---|---|---|---|${RATE_SEC ? '---|' : ''}\n`;
for (const [name, r] of rows) {
  md += `| ${name} | ${f(median(r.rps), 0)} | ${f(median(r.rRps))} (${range(r.rRps)}) | ${f(geomean(r.rRps), 3)} | ${f(median(r.cpuSat), 1)} | ${f(median(r.rCpuSat))} (${range(r.rCpuSat)})${RATE_SEC ? ` | ${f(median(r.rCpuRate))} (${range(r.rCpuRate)})` : ''} |\n`;
}
process.stdout.write(md);
