// The hello-world server and the peers every HTTP benchmark runs it under, in
// one place so that bench/run.mjs (time) and bench/instructions.mjs
// (instruction counts) measure exactly the same setups.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const REGISTER = join(ROOT, 'dist', 'src', 'register.js');
export const HELLO = join(ROOT, 'bench', 'servers', 'hello.js');
export const srv = (f) => join(ROOT, 'bench', 'servers', f);

export const PEERS = [
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

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

// Ports the system hands out as free, rather than a counter that may run into a port in use.
export const port = () =>
  new Promise((resolve, reject) => {
    const probe = net.createServer().on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address();
      probe.close(() => resolve(free));
    });
  });

/** The environment a peer's server starts with: nothing inherited but PATH and HOME. */
export async function serverEnv(peer) {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, PORT: String(await port()), METRICS_PORT: String(await port()), ...peer.env };
  if (peer.metricsEnv) env[peer.metricsEnv] = env.METRICS_PORT;
  return env;
}

/** An --env option's value, `NAME=VAR=value[,VAR=value]` (ab.mjs, instructions.mjs): the variant's name and its variables. */
export function envVariant(arg) {
  const [name, ...rest] = arg.split('=');
  const pairs = rest.join('=').split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]);
  return { name, env: Object.fromEntries(pairs) };
}

/** `--name value` from the command line, as a string, or `fallback`. */
export function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

/** Starts the hello-world server under `peer` (node flags in `nodeArgs` go first) and waits until it listens. */
export async function startServer(peer, nodeArgs = []) {
  const env = await serverEnv(peer);
  const child = spawn(process.execPath, [...nodeArgs, ...peer.args, HELLO], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${peer.name} did not listen within 15 s`)), 15_000);
    child.stdout.on('data', (d) => { if (String(d).includes('listening')) { clearTimeout(timer); resolve(); } });
    child.on('exit', (c) => reject(new Error(`${peer.name} exited with ${c}`)));
  });
  pinServer(child.pid);
  return { child, pid: child.pid, url: `http://127.0.0.1:${env.PORT}/`, metricsUrl: `http://127.0.0.1:${env.METRICS_PORT}/metrics` };
}

/** Ends a server and resolves once it has exited (SIGTERM lets hello.js exit cleanly, e.g. to write a profile). */
export const stop = (child, signal = 'SIGKILL') =>
  new Promise((r) => { if (child.exitCode !== null) return r(); child.once('exit', r); child.kill(signal); });

// CPU time of a process, all threads, in µs: the scheduler's nanosecond
// counters, where /proc/<pid>/stat has 10 ms ticks.
export function cpuUs(pid) {
  let ns = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {} // a thread that ended in between
  }
  return ns / 1000;
}

// Servers on CPU 0, load generators on CPU 1, where taskset exists and the
// machine has two CPUs: two servers measured side by side then share one
// core's caches and scheduler, neither migrates, and wrk never takes their
// CPU: the ratios spread less (bench/RESULTS.md notes).
export const PINNED = os.cpus().length >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;

/** Puts every thread of `pid` on CPU 0 (no-op when not PINNED). */
export function pinServer(pid) {
  if (PINNED) spawnSync('taskset', ['-a', '-c', '-p', '0', String(pid)], { stdio: 'ignore' });
}

/** `wrk -t1 -c50` for `seconds` (on CPU 1 when PINNED), optionally with a Lua script; resolves to requests done and req/s. */
export function wrk(url, seconds, script) {
  const args = ['-t1', '-c50', `-d${seconds}s`, '--timeout', '5s', ...(script ? ['-s', script] : []), url];
  const [cmd, argv] = PINNED ? ['taskset', ['-c', '1', 'wrk', ...args]] : ['wrk', args];
  return new Promise((resolve) => {
    execFile(cmd, argv, { encoding: 'utf8', timeout: (seconds + 20) * 1000 }, (_err, out = '') => {
      resolve({ n: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN), rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN) });
    });
  });
}

// Fixed offered rate: each of the 50 connections waits 10 ms between requests (at most ~5,000 req/s), far below saturation.
const tmp = mkdtempSync(join(os.tmpdir(), 'promotel-bench-'));
export const RATE_SCRIPT = join(tmp, 'rate.lua');
writeFileSync(RATE_SCRIPT, 'function delay()\n  return 10\nend\n');
