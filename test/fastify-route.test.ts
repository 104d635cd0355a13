// http.route from Fastify 5 without patching it: the template Fastify names
// on its `tracing:fastify.request.handler` channel, plugin prefixes included.
// A request answered before its handler ran has no label, never a raw path.
import assert from 'node:assert/strict';
import { tracingChannel } from 'node:diagnostics_channel';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, freePort, get, pythonParse, samplesOf, startApp } from './helpers';

// Fastify publishes only where TracingChannel has hasSubscribers (Node 20.13 and later); before, never.
const publishes = typeof tracingChannel('promotel.probe').hasSubscribers === 'boolean';

test('Fastify 5: each request counted under its route template; a refusal before the handler and a 404 have none', { skip: !publishes && 'Node before 20.13: Fastify publishes no route channel' }, async () => {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'fastify-app.js'), { env: { PORT: String(port), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  try {
    await app.waitFor(/listening/);
    const base = `http://127.0.0.1:${port}`;
    for (const path of ['/users/1', '/users/2', '/api/items/7', '/boom', '/files/a/b.txt', '/private', '/nowhere/42']) await get(`${base}${path}`);
    assert.equal((await get(`${base}/users`, { method: 'POST' })).status, 201);
    const families = pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
    const seen = samplesOf(families, 'http_server_request_duration_seconds_count').map((s) => `${s.labels.http_request_method} ${s.labels.http_route ?? '-'} ${s.labels.http_response_status_code} ${s.value}`);
    assert.deepEqual(seen.sort(), [
      'GET - 401 1', // refused by the route's onRequest hook, before its handler
      'GET - 404 1',
      'GET /api/items/:itemId 200 1',
      'GET /boom 500 1',
      'GET /files/* 200 1',
      'GET /users/:id 200 2',
      'POST /users 201 1',
    ]);
    assert.equal(app.stderr(), '');
  } finally {
    app.kill();
  }
});
