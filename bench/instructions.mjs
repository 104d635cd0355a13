// Target 1 (issue 3) without the noise: CPU instructions each peer's server
// executes per request, counted by valgrind (cachegrind, Ir). On a shared
// 2-core VM the wall-clock rows of bench/run.mjs spread by ±40% from round to
// round; an instruction count does not depend on what the host's other tenants
// do, so it shows a difference of 1% that wall clocks cannot.
//
//   node bench/instructions.mjs [--warm 3000] [--measured 20000] [--only promotel,...] [--functions] [--semi-space MB] [--cache-sim] [--branch-sim]
//                               [--concurrency 8] [--env NAME=VAR=value[,VAR=value]] [--build NAME=path/to/dist/src] [--multi-threaded]
//
// Per peer, two servers start at once under valgrind: A gets `--warm`
// requests, B gets `--warm` + `--measured`; both are stopped at the same
// moment once B is done. Startup, JIT warm-up and everything paid per second
// (timers such as the event-loop delay monitor, which valgrind's ~50×
// slowdown would otherwise inflate 50×) are in both counts, so
// (B − A) ÷ measured is what one more request costs. Only user space is
// counted: the kernel's share (loopback TCP, the same bytes for every peer)
// is not, so the ratios here are upper bounds of the whole-CPU ratios.
// `--functions` adds, for every peer but bare, the functions whose per-request
// count differs most from bare's (JIT-compiled JavaScript is `???`).
// `--semi-space MB` fixes V8's young generation at that size for every peer:
// by default V8 grows it after a burst of allocation such as loading an agent,
// and the fewer scavenges that follow hide part of the agent's own work.
// `--cache-sim` also simulates this machine's caches (a slower run) and
// adds L1 instruction and data misses per request: whether the agent's extra
// cost is its instructions, or cache lines it makes the server fetch again.
// `--branch-sim` adds the branches the simulated predictor mispredicts per
// request: whether the agent makes the server's own branches harder to predict.
// Every server runs with a fixed hash seed and V8's --single-threaded (see
// nodeFlags); `--multi-threaded` leaves V8's background threads on.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { HELLO, PEERS, ROOT, envVariant, option, serverEnv } from './peers.mjs';

const CONCURRENCY = Number(option('concurrency', '8'));
const valgrindArgs = (cacheSim, branchSim) => ['--tool=cachegrind', `--cache-sim=${cacheSim ? 'yes' : 'no'}`, ...(branchSim ? ['--branch-sim=yes'] : []), '--smc-check=all-non-file'];

function startUnderValgrind(peer, outFile, nodeFlags, cacheSim, branchSim) {
  return serverEnv(peer).then(
    (env) =>
      new Promise((resolve, reject) => {
        const child = spawn('valgrind', [...valgrindArgs(cacheSim, branchSim), `--cachegrind-out-file=${outFile}`, process.execPath, ...nodeFlags, ...peer.args, HELLO], {
          cwd: ROOT,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        const exited = new Promise((r) => child.on('exit', () => r(stderr)));
        const timer = setTimeout(() => reject(new Error(`${peer.name} did not listen under valgrind within 300 s`)), 300_000);
        child.on('error', (err) => reject(new Error(`valgrind could not start (${err.message}); install it: apt-get install valgrind`)));
        child.on('exit', (code) => reject(new Error(`${peer.name} exited with ${code} under valgrind: ${stderr.slice(-500)}`)));
        child.stdout.on('data', (d) => {
          if (!String(d).includes('listening')) return;
          clearTimeout(timer);
          resolve({ child, exited, port: Number(env.PORT) });
        });
      }),
  );
}

/** `n` GET / requests on keep-alive connections, CONCURRENCY at a time. */
function drive(port, n) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  let sent = 0;
  let done = 0;
  return new Promise((resolve, reject) => {
    if (n === 0) return resolve();
    const one = () => {
      if (sent >= n) return;
      sent++;
      http
        .get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          res.resume();
          res.on('end', () => (++done === n ? resolve() : one()));
        })
        .on('error', reject);
    };
    for (let i = 0; i < CONCURRENCY; i++) one();
  }).finally(() => agent.destroy());
}

// cachegrind's summary on stderr: `I refs:`, and with the cache simulation `I1 misses:` and `D1 misses:`.
const counter = (stderr, label) => Number(new RegExp(`${label}:\\s+([\\d,]+)`).exec(stderr)?.[1].replaceAll(',', '') ?? NaN);

/** Instructions per request of one peer, and the cachegrind files of its two runs. */
/**
 * The node flags of every server. Without the first two, the A and B servers of a peer differ by
 * chance: V8 draws its hash seed at random and searches a prime from it at start-up, and its
 * background threads compile and mark whenever the OS runs them, so a compile job or a major GC lands
 * in B's window or not (a 7% spread over three runs of one build). With them, runs of one build
 * agree within 0.3%, and a GC the peer causes is counted where its allocations cause it.
 */
export function nodeFlags({ semiSpace, multiThreaded }) {
  return [
    '--hash-seed=1',
    ...(multiThreaded ? [] : ['--single-threaded']),
    ...(semiSpace ? [`--min-semi-space-size=${semiSpace}`, `--max-semi-space-size=${semiSpace}`] : []),
  ];
}

export async function measure(peer, { warm, measured, semiSpace, cacheSim, branchSim, multiThreaded }, dir, index) {
  const flags = nodeFlags({ semiSpace, multiThreaded });
  // By position in the run, not in PEERS: --env and --build variants are not there, and shared one name.
  const files = [join(dir, `${index}.a.out`), join(dir, `${index}.b.out`)];
  const [a, b] = await Promise.all(files.map((f) => startUnderValgrind(peer, f, flags, cacheSim, branchSim)));
  try {
    await Promise.all([drive(a.port, warm), drive(b.port, warm + measured)]);
  } finally {
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
  }
  const [sa, sb] = await Promise.all([a.exited, b.exited]);
  const perRequest = (label) => (counter(sb, label) - counter(sa, label)) / measured;
  const [ia, ib] = [counter(sa, 'I\\s+refs'), counter(sb, 'I\\s+refs')];
  return { perRequest: (ib - ia) / measured, a: ia, b: ib, files, ...(cacheSim && { i1Misses: perRequest('I1\\s+misses'), d1Misses: perRequest('D1\\s+misses') }), ...(branchSim && { mispredicts: perRequest('Mispredicts') }) };
}

/** Instructions per function in a cachegrind output file. */
function byFunction(file) {
  const counts = new Map();
  let fn = '';
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('fn=')) fn = line.slice(3);
    else if (line >= '0' && line <= '9~') counts.set(fn, (counts.get(fn) ?? 0) + Number(line.split(' ')[1] ?? 0));
  }
  return counts;
}

/** The functions whose per-request count differs most between a peer and bare. */
export function functionDiff(peerResult, bareResult, measured, top = 15) {
  const perRequest = ({ files: [a, b] }) => {
    const [ca, cb] = [byFunction(a), byFunction(b)];
    return new Map([...new Set([...ca.keys(), ...cb.keys()])].map((k) => [k, ((cb.get(k) ?? 0) - (ca.get(k) ?? 0)) / measured]));
  };
  const [p, q] = [perRequest(peerResult), perRequest(bareResult)];
  return [...new Set([...p.keys(), ...q.keys()])]
    .map((fn) => ({ fn, extra: (p.get(fn) ?? 0) - (q.get(fn) ?? 0) }))
    .sort((x, y) => Math.abs(y.extra) - Math.abs(x.extra))
    .slice(0, top);
}

export async function instructionsBench({ warm, measured, semiSpace, cacheSim, branchSim, multiThreaded, only, functions, variants = [], log = () => {} }) {
  const peers = [...PEERS, ...variants].filter((p, i) => i === 0 || !only || only.some((o) => p.name.startsWith(o)));
  const dir = mkdtempSync(join(os.tmpdir(), 'promotel-instructions-'));
  const results = [];
  for (const [index, peer] of peers.entries()) {
    const r = await measure(peer, { warm, measured, semiSpace, cacheSim, branchSim, multiThreaded }, dir, index);
    log(`  instructions ${peer.name}: ${r.perRequest.toFixed(0)} per request`);
    results.push({ name: peer.name, ...r });
  }
  const bare = results[0];
  for (const r of results) {
    r.ratio = r.perRequest / bare.perRequest;
    if (cacheSim) [r.i1Ratio, r.d1Ratio] = [r.i1Misses / bare.i1Misses, r.d1Misses / bare.d1Misses];
    if (branchSim) r.mispredictRatio = r.mispredicts / bare.mispredicts;
    if (functions && r !== bare) r.functions = functionDiff(r, bare, measured);
  }
  return results;
}

export function instructionsTable(results, { warm, measured, semiSpace, cacheSim, branchSim, multiThreaded }) {
  const columns = ['peer', 'instructions per request (user space)', '× bare'];
  if (cacheSim) columns.push('L1i misses per request', '× bare', 'L1d misses per request', '× bare');
  if (branchSim) columns.push('branches mispredicted per request', '× bare');
  let md = `| ${columns.join(' | ')} |\n|${'---|'.repeat(columns.length)}\n`;
  for (const r of results) {
    md += `| ${r.name} | ${Math.round(r.perRequest)} | ${r.ratio.toFixed(3)} |`;
    if (cacheSim) md += ` ${Math.round(r.i1Misses)} | ${r.i1Ratio.toFixed(3)} | ${Math.round(r.d1Misses)} | ${r.d1Ratio.toFixed(3)} |`;
    if (branchSim) md += ` ${Math.round(r.mispredicts)} | ${r.mispredictRatio.toFixed(3)} |`;
    md += '\n';
  }
  md += `\nvalgrind ${valgrindArgs(cacheSim, branchSim).join(' ')}; per peer, (instructions of a server after ${warm + measured} requests − one after ${warm}, both stopped at the same moment) ÷ ${measured}; ${CONCURRENCY} keep-alive connections; node ${nodeFlags({ semiSpace, multiThreaded }).join(' ')} for every peer.\n`;
  for (const r of results.filter((x) => x.functions)) {
    md += `\n${r.name}, per request vs bare (instructions, function):\n\n${r.functions.map((f) => `    ${f.extra >= 0 ? '+' : ''}${f.extra.toFixed(0).padStart(6)}  ${f.fn.slice(0, 110)}`).join('\n')}\n`;
  }
  return md;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const params = { warm: Number(option('warm', '3000')), measured: Number(option('measured', '20000')), semiSpace: Number(option('semi-space', '0')), cacheSim: process.argv.includes('--cache-sim'), branchSim: process.argv.includes('--branch-sim'), multiThreaded: process.argv.includes('--multi-threaded') };
  const results = await instructionsBench({
    ...params,
    only: option('only', undefined)?.split(','),
    functions: process.argv.includes('--functions'),
    // Peers named NAME: promotel with the variables of --env NAME=VAR=value[,VAR=value], or from
    // the build of --build NAME=DIR (DIR holds register.js).
    variants: process.argv.flatMap((a, i) => {
      const promotel = PEERS.find((p) => p.name === 'promotel');
      if (a === '--env') {
        const { name, env } = envVariant(process.argv[i + 1]);
        return [{ ...promotel, name, env: { ...promotel.env, ...env } }];
      }
      if (a !== '--build') return [];
      const [name, dir] = process.argv[i + 1].split('=');
      return [{ ...promotel, name, args: ['--require', resolve(dir, 'register.js')] }];
    }),
    log: (m) => process.stderr.write(`${m}\n`),
  });
  process.stdout.write(instructionsTable(results, params));
}
