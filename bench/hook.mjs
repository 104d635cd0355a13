// Per-request cost of promotel's HTTP server hook alone, without sockets:
// synthetic requests are published on node:diagnostics_channel's
// `http.server.request.start` and `http.server.response.finish` (as
// node:http does) and their responses closed, so the time measured is the
// hook's. Two builds can be compared in one process, alternated:
// `node bench/hook.mjs dist/src /other/tree/dist/src`.
// Machine noise hits both alike, which the socket benchmarks cannot promise.
import { channel } from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

const require = createRequire(import.meta.url);
const trees = process.argv.slice(2).map((t) => resolve(t));
if (trees.length === 0) trees.push(resolve('dist/src'));
const start = channel('http.server.request.start');
const finish = channel('http.server.response.finish');
const N = 200_000;
const ROUNDS = 10;

class FakeResponse extends EventEmitter {
  statusCode = 200;
  headersSent = true;
  writableFinished = true;
  constructor(req) {
    super();
    this.req = req;
    // node:http publishes before it assigns the connection (20.x to 24.x at least).
    this.socket = null;
  }
}
// A keep-alive connection, one response at a time on it, as node:http keeps it.
const socket = Object.assign(new EventEmitter(), { encrypted: false, _httpMessage: null });
const server = {};

function run() {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const request = { method: 'GET', httpVersion: '1.1', httpVersionMajor: 1, httpVersionMinor: 1, socket };
    const response = new FakeResponse(request);
    response.statusCode = i % 10 === 0 ? 404 : 200;
    start.publish({ request, response, socket, server });
    response.socket = socket;
    socket._httpMessage = response;
    // As node:http does: the message is built only for a subscriber.
    if (finish.hasSubscribers) finish.publish({ request, response, socket, server });
    socket._httpMessage = null;
    response.emit('close');
  }
  return Number(process.hrtime.bigint() - t0) / N;
}

const hooks = trees.map((tree) => {
  const { enableHttpServerMetrics } = require(`${tree}/instrumentations/http-server.js`);
  return { tree, enable: () => enableHttpServerMetrics(() => undefined, { duration: true, cardinalityLimit: 2000, scope: { name: 'bench', version: '0' } }) };
});
const none = run(); // warm the loop itself; also the cost with no subscriber
const results = new Map(hooks.map((h) => [h.tree, []]));
const bare = [];
for (let r = 0; r < ROUNDS; r++) {
  bare.push(run());
  for (const h of r % 2 ? [...hooks].reverse() : hooks) {
    const stop = h.enable();
    results.get(h.tree).push(run());
    stop();
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`loop without a subscriber: ${median(bare).toFixed(0)} ns per request (first pass ${none.toFixed(0)})`);
for (const [tree, xs] of results) console.log(`${tree}: ${(median(xs) - median(bare)).toFixed(0)} ns per request for the hook (median of ${ROUNDS}, ${N} requests each)`);
