// Preloaded by `bench/http2.mjs --app-heap N` into both servers: N MB of
// objects that live as long as the process, as an app's caches, config and
// loaded framework do. A hello server's heap is a few MB; V8 sizes its young
// generation and decides what to promote by the heap it finds, so a ratio
// against a bare hello server can measure the heap's size as much as the agent.
'use strict';
const mb = Number(process.env.APP_HEAP_MB || 0);
const keep = [];
// About 80 bytes per entry: an object with a number and a short string.
for (let i = 0; i < mb * 12_500; i++) keep.push({ id: i, name: `item-${i}` });
globalThis.__appHeap = keep;
