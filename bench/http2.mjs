// Server CPU per request of an HTTP/2 (h2c) hello server, with promotel
// preloaded against bare, in fresh pairs. Not one of issue 3's targets: it
// measures what the HTTP/2 hook and the agent cost a node:http2 server.
//
//   node bench/http2.mjs [--rounds 7] [--requests 40000] [--env VAR=value,...] [--node-flags="--max-semi-space-size=16 ..."] [--app-heap MB]
//
// Per round a bare server and a promotel server start afresh on CPU 0, and
// the client, this process, runs on CPU 1 (peers.mjs PINNED). Each gets 5,000
// warm-up requests, then both are loaded alternately in four chunks, each
// chunk one h2c session with 20 streams in flight, so that the machine's
// noise hits both alike. CPU is peers.mjs cpuUs (all threads, so V8's GC
// threads count). `--env` applies to the promotel server
// only, `--node-flags` to both. `--app-heap 16` gives both servers 16 MB of
// long-lived objects of their own (servers/app-heap.js, after the agent), as a
// real app has: a bare hello server's heap is a few MB, and node:http2's GC
// cost depends on the heap's size (bench/RESULTS.md notes, 2026-12-07).
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:http2';
import { parseArgs } from 'node:util';
import { PINNED, REGISTER, ROOT, cpuUs, median, pinServer, port, srv, stop } from './peers.mjs';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '7' }, requests: { type: 'string', default: '40000' }, env: { type: 'string', default: '' }, 'node-flags': { type: 'string', default: '' }, 'app-heap': { type: 'string', default: '0' } },
});
const rounds = Number(values.rounds);
const requests = Number(values.requests);
const extraEnv = Object.fromEntries(values.env.split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
const nodeFlags = values['node-flags'].split(' ').filter(Boolean);
const appHeapMb = Number(values['app-heap']);
if (!(appHeapMb >= 0)) throw new Error(`--app-heap ${values['app-heap']}: expected a number of MB, e.g. --app-heap 16`);
const appHeap = appHeapMb > 0 ? ['--require', srv('app-heap.js')] : [];

// The client is this process: on CPU 1, as wrk is in the other benchmarks.
if (PINNED) spawnSync('taskset', ['-a', '-c', '-p', '1', String(process.pid)], { stdio: 'ignore' });

async function start(withAgent) {
  const [serverPort, metricsPort] = [await port(), await port()];
  const args = [...nodeFlags, ...(withAgent ? ['--require', REGISTER] : []), ...appHeap, srv('hello-h2.js')];
  const env = { PATH: process.env.PATH, PORT: String(serverPort), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), APP_HEAP_MB: String(appHeapMb), ...(withAgent ? extraEnv : {}) };
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('listening') && resolve());
    child.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  pinServer(child.pid);
  return { child, port: serverPort };
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
    const before = [cpuUs(bare.child.pid), cpuUs(agent.child.pid)];
    for (let i = 0; i < 4; i++) {
      await load(bare.port, requests / 4);
      await load(agent.port, requests / 4);
    }
    const [b, a] = [cpuUs(bare.child.pid) - before[0], cpuUs(agent.child.pid) - before[1]];
    ratios.push(a / b);
    console.log(`round ${r + 1}: bare ${(b / requests).toFixed(1)} µs/request, promotel ${(a / requests).toFixed(1)} µs/request, ${(a / b).toFixed(3)}×`);
  } finally {
    await Promise.all([stop(bare.child), stop(agent.child)]);
  }
}
console.log(`median ${median(ratios).toFixed(3)}× bare CPU per request (min ${Math.min(...ratios).toFixed(3)}, max ${Math.max(...ratios).toFixed(3)}), ${rounds} rounds of ${requests} requests${appHeapMb ? `, ${appHeapMb} MB app heap in both` : ''}, node ${process.version}`);
