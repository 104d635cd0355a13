// Where promotel's CPU per request goes (target 1 of issue 3): bare and
// promotel run side by side under the fixed offered rate of bench/run.mjs,
// each with V8's sampling profiler, and every busy sample of the measured
// window is put in one of these piles, per request:
//   promotel  the sample's stack passes through promotel's or OTel's code
//             (the hook, its clock reads and listener adds included);
//   publish   diagnostics_channel's publish(), which Node runs per request
//             only while someone subscribes;
//   writev    the kernel's loopback send of the response;
//   rest      everything else: Node's own HTTP code, GC, the event loop.
// promotel + publish is what the agent costs directly. What promotel's row
// has beyond that in `rest` and `writev` is not in its code: the noise of a
// shared machine, or the caches it shares with the server.
// The profiler slows every request down (50 µs sampling): compare rows with
// each other, not with bench/run.mjs.
//
//   node bench/profile.mjs [--rounds 3] [--sec 20]
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { PEERS, RATE_SCRIPT, median, option, startServer, stop, wrk } from './peers.mjs';

const ROUNDS = Number(option('rounds', '3'));
const SEC = Number(option('sec', '20'));
const dir = mkdtempSync(join(os.tmpdir(), 'promotel-profile-'));
const SIDES = [PEERS.find((p) => p.name === 'bare node:http'), PEERS.find((p) => p.name === 'promotel')];

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** Per-request µs in each pile, over the samples taken between `from` and `to` (µs, the profile's clock). */
function piles(file, from, to, requests) {
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const ours = new Map();
  const underOurs = (id) => {
    if (ours.has(id)) return ours.get(id);
    const url = nodes.get(id).callFrame.url;
    const mine = url.includes('/dist/src/') || url.includes('/node_modules/@opentelemetry/') || (parent.has(id) && underOurs(parent.get(id)));
    ours.set(id, mine);
    return mine;
  };
  const out = { busy: 0, promotel: 0, publish: 0, writev: 0, rest: 0 };
  let t = profile.startTime;
  const times = profile.timeDeltas.map((d) => (t += d));
  for (let i = 0; i < profile.samples.length - 1; i++) {
    if (times[i] < from || times[i] > to) continue;
    const { callFrame } = nodes.get(profile.samples[i]);
    if (callFrame.functionName === '(idle)') continue;
    const dt = times[i + 1] - times[i];
    out.busy += dt;
    if (underOurs(profile.samples[i])) out.promotel += dt;
    else if (callFrame.functionName === 'publish' && callFrame.url.includes('diagnostics_channel')) out.publish += dt;
    else if (callFrame.functionName === 'writev') out.writev += dt;
    else out.rest += dt;
  }
  for (const k of Object.keys(out)) out[k] /= requests;
  return out;
}

const rows = SIDES.map(() => []);
for (let r = 0; r < ROUNDS; r++) {
  const files = SIDES.map((_, i) => `round${r}-side${i}.cpuprofile`);
  const servers = [];
  for (let i = 0; i < SIDES.length; i++) servers.push(await startServer(SIDES[i], ['--cpu-prof', '--cpu-prof-interval', '50', '--cpu-prof-dir', dir, '--cpu-prof-name', files[i]]));
  for (const s of servers) await wrk(s.url, 2); // warm-up at saturation, one at a time
  await Promise.all(servers.map((s) => wrk(s.url, 1, RATE_SCRIPT)));
  // V8 stamps samples in µs of the system's monotonic clock, the one process.hrtime reads.
  const from = monotonicUs();
  const results = await Promise.all(servers.map((s) => wrk(s.url, SEC, RATE_SCRIPT)));
  const to = monotonicUs();
  await Promise.all(servers.map((s) => stop(s.child, 'SIGTERM'))); // hello.js exits, and the profile is written
  servers.forEach((s, i) => rows[i].push(piles(files[i], from, to, results[i].n)));
  console.error(`round ${r + 1}: ` + rows.map((row, i) => `${SIDES[i].name} ${row.at(-1).busy.toFixed(1)} µs/req`).join(', '));
}

if (rows.flat().some((x) => !(x.busy > 0))) {
  console.error('profile: a round produced no busy samples (did a server fail to start, or wrk to run?)');
  process.exit(1);
}
const fmt = (x) => x.toFixed(2);
console.log(`| server | busy µs/req | promotel + OTel frames | diagnostics_channel publish | writev (kernel send) | rest |`);
console.log(`|---|---|---|---|---|---|`);
rows.forEach((row, i) => {
  const m = (k) => median(row.map((x) => x[k]));
  console.log(`| ${SIDES[i].name} | ${fmt(m('busy'))} | ${fmt(m('promotel'))} | ${fmt(m('publish'))} | ${fmt(m('writev'))} | ${fmt(m('rest'))} |`);
});
const ratio = median(rows[1].map((x, r) => x.busy / rows[0][r].busy));
const direct = median(rows[1].map((x, r) => (x.promotel + x.publish) / rows[0][r].busy));
console.log(`\npromotel ÷ bare busy time per request: ${ratio.toFixed(3)} (median of ${ROUNDS} side-by-side rounds); in promotel's and OTel's code and publish: ${(direct * 100).toFixed(1)}% of bare's.`);
