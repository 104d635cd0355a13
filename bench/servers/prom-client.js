// Peer: prom-client 15 with a manual histogram timed in the handler, and its own /metrics server.
'use strict';
const http = require('node:http');
const client = require('prom-client');
const hist = new client.Histogram({
  name: 'http_server_request_duration_seconds',
  help: 'Duration of HTTP server requests.',
  labelNames: ['method', 'status_code'],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
});
exports.handle = (req, res) => {
  const end = hist.startTimer({ method: req.method });
  res.on('finish', () => end({ status_code: res.statusCode }));
};
http.createServer(async (_req, res) => res.end(await client.register.metrics())).listen(Number(process.env.METRICS_PORT), '127.0.0.1').unref();
