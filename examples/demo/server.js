// The demo service: GET /q answers 200 with an x-correlation-id header and
// counts its own requests with nothing but @opentelemetry/api. GET /upstream
// calls /q over HTTP, so outgoing-request metrics show up too. Run it with the
// agent preloaded (`npm start`) and its counter appears on :9000 beside the
// HTTP, runtime and host metrics the agent measures by itself.
'use strict';
const http = require('node:http');
const { randomUUID } = require('node:crypto');
const { hostname } = require('node:os');
const { metrics } = require('@opentelemetry/api');

const port = Number(process.env.PORT || 8080);
const host = process.env.HOST || '0.0.0.0';
const instance = process.env.INSTANCE || `${hostname()}:${port}`;

const requests = metrics.getMeter('promotel-demo').createCounter('http_requests', {
  description: 'Requests the demo service answered, counted by the service itself.',
});

function answer(res, status, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end(body);
}

const server = http.createServer((req, res) => {
  const path = (req.url || '/').split('?')[0];
  const readable = req.method === 'GET' || req.method === 'HEAD';
  let status;
  if (path === '/q' && readable) {
    status = 200;
    res.setHeader('x-correlation-id', randomUUID());
    answer(res, status, 'ok\n');
  } else if (path === '/upstream' && readable) {
    status = 200;
    http
      .get({ host: '127.0.0.1', port, path: '/q' }, (up) => {
        up.resume();
        up.on('end', () => answer(res, up.statusCode === 200 ? 200 : 502, `upstream said ${up.statusCode}\n`));
      })
      .on('error', () => answer(res, 502, 'upstream failed\n'));
  } else if (path === '/q' || path === '/upstream') {
    status = 405;
    res.setHeader('Allow', 'GET, HEAD');
    answer(res, status, 'Method Not Allowed\n');
  } else {
    status = 404;
    answer(res, status, 'Not Found\n');
  }
  requests.add(1, { instance, status_code: String(status) });
});

server.listen(port, host, () => {
  console.log(`demo listening on http://localhost:${port}/q`);
});
