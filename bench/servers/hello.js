// The hello-world server every HTTP row measures: the same handler under each peer's instrumentation.
'use strict';
const http = require('node:http');
const setup = process.env.BENCH_SETUP ? require(process.env.BENCH_SETUP) : undefined;
const server = http.createServer((req, res) => {
  if (setup && setup.handle) setup.handle(req, res);
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('hello world\n');
});
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0));
