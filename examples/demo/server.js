// The demo service: GET /q answers 200 with an x-correlation-id header and
// counts its own requests with nothing but @opentelemetry/api. Run it with the
// agent preloaded (`npm start`) and its counter shows up on :9000 beside the
// HTTP, runtime and host metrics the agent measures by itself.
'use strict';
const http = require('node:http');
const { randomUUID } = require('node:crypto');
const { hostname } = require('node:os');
const { metrics } = require('@opentelemetry/api');

const port = Number(process.env.PORT || 8080);
const instance = process.env.INSTANCE || `${hostname()}:${port}`;

const requests = metrics.getMeter('promotel-demo').createCounter('http_requests', {
  description: 'Requests the demo service answered, counted by the service itself.',
});

const server = http.createServer((req, res) => {
  const url = new URL(req.url || '/', 'http://localhost');
  let status = 404;
  if (url.pathname === '/q' && (req.method === 'GET' || req.method === 'HEAD')) {
    status = 200;
    res.setHeader('x-correlation-id', randomUUID());
  } else if (url.pathname === '/q') {
    status = 405;
    res.setHeader('Allow', 'GET, HEAD');
  }
  requests.add(1, { instance, status_code: String(status) });
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end(status === 200 ? 'ok\n' : http.STATUS_CODES[status] + '\n');
});

server.listen(port, process.env.HOST || '0.0.0.0', () => {
  console.log(`demo listening on http://localhost:${port}/q`);
});
