// Server CPU per request of an HTTP/2 (h2c) hello server, with promotel
// preloaded against bare, in fresh pairs. Not one of issue 3's targets: it
// measures what the HTTP/2 hook and the agent cost a node:http2 server.
//
//   node bench/http2.mjs [--rounds 7] [--requests 40000] [--env VAR=value,...] [--node-flags="--max-semi-space-size=16 ..."]
//
// Per round a bare server and a promotel server start afresh on CPU 0 (the
// client runs in this process; pin it with `taskset -c 1`). Each gets 5,000
// warm-up requests, then both are loaded alternately in four chunks, each
// chunk one h2c session with 20 streams in flight, so that the machine's
// noise hits both alike. CPU is utime + stime of /proc/<pid>/stat (all
// threads, so V8's GC threads count). `--env` applies to the promotel server
// only, `--node-flags` to both.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:http2';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createServer } from 'node:net';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '7' }, requests: { type: 'string', default: '40000' }, env: { type: 'string', default: '' }, 'node-flags': { type: 'string', default: '' } },
});
const ROOT = new URL('..', import.meta.url).pathname;
const REGISTER = join(ROOT, 'dist', 'src', 'register.js');
const SERVER = join(ROOT, 'bench', 'servers', 'hello-h2.js');
const rounds = Number(values.rounds);
const requests = Number(values.requests);
const extraEnv = Object.fromEntries(values.env.split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
const nodeFlags = values['node-flags'].split(' ').filter(Boolean);
const TICK_MS = 1000 / 100; // USER_HZ

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer().once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

async function start(withAgent) {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const args = [...nodeFlags, ...(withAgent ? ['--require', REGISTER] : []), SERVER];
  const env = { PATH: process.env.PATH, PORT: String(port), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), ...(withAgent ? extraEnv : {}) };
  const child = spawn('taskset', ['-c', '0', process.execPath, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('listening') && resolve());
    child.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { child, port };
}

async function load(port, n, inFlight = 20) {
  const session = connect(`http://127.0.0.1:${port}`);
  let sent = 0;
  const one = () =>
    new Promise((resolve, reject) => {
      const stream = session.request({ ':path': '/' }, { endStream: true });
      stream.on('error', reject).resume();
      stream.on('close', resolve);
    });
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (sent++ < n) await one();
  }));
  session.close();
}

const ratios = [];
for (let r = 0; r < rounds; r++) {
  const bare = await start(false);
  const agent = await start(true);
  try {
    await load(bare.port, 5000);
    await load(agent.port, 5000);
    const before = [cpuMs(bare.child.pid), cpuMs(agent.child.pid)];
    for (let i = 0; i < 4; i++) {
      await load(bare.port, requests / 4);
      await load(agent.port, requests / 4);
    }
    const [b, a] = [cpuMs(bare.child.pid) - before[0], cpuMs(agent.child.pid) - before[1]];
    ratios.push(a / b);
    console.log(`round ${r + 1}: bare ${((b * 1000) / requests).toFixed(1)} µs/request, promotel ${((a * 1000) / requests).toFixed(1)} µs/request, ${(a / b).toFixed(3)}×`);
  } finally {
    bare.child.kill();
    agent.child.kill();
  }
}
const sorted = [...ratios].sort((x, y) => x - y);
console.log(`median ${sorted[Math.floor(sorted.length / 2)].toFixed(3)}× bare CPU per request (min ${sorted[0].toFixed(3)}, max ${sorted.at(-1).toFixed(3)}), ${rounds} rounds of ${requests} requests, node ${process.version}`);
