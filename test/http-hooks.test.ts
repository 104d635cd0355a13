// HTTP metrics, as the stable semantic conventions name them. The fast
// diagnostics_channel hook and the stock instrumentation-http must yield the
// same series for the same traffic; Express route templates, never raw paths.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, freePort, get, pythonParse, sampleValue, startApp, type Family } from './helpers';

function send(port: number, method: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    })
      .on('error', reject)
      .end();
  });
}

const TRAFFIC: Array<[string, string, number]> = [
  ['GET', '/users/1', 200],
  ['GET', '/users/2', 200],
  ['GET', '/users/42', 200],
  ['POST', '/users', 201],
  ['GET', '/api/items/a', 200],
  ['GET', '/api/items/b', 200],
  ['GET', '/shops/7/orders/1', 200],
  ['GET', '/shops/8/orders/2', 200],
  ['GET', '/shops/7/reports/sales/2025', 200],
  ['GET', '/shops/x%2Fy/reports/7/7', 200],
  ['GET', '/admin/stats', 200],
  ['GET', '/admin/tenants/t1/settings/a', 200],
  ['GET', '/admin/tenants/t2/settings/b', 200],
  ['GET', '/boom', 503],
  ['GET', '/no/such/page', 404],
  ['DELETE', '/users/1', 404],
  ['PROPFIND', '/users/1', 404],
];

/** `method status route error` -> count, from the server duration histogram. */
function serverSeries(families: Family[]): Record<string, number> {
  const family = families.find((f) => f.name === 'http_server_request_duration_seconds');
  assert.ok(family, 'no http_server_request_duration_seconds family');
  const out: Record<string, number> = {};
  for (const s of family.samples) {
    if (!s.name.endsWith('_count')) continue;
    const { otel_scope_name: _scope, otel_scope_version: _version, ...labels } = s.labels;
    out[JSON.stringify(Object.entries(labels).sort())] = s.value;
  }
  return out;
}

async function runExpress(hook: string, expressModule = 'express'): Promise<Record<string, number>> {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'express-app.js'), {
    env: { PORT: String(appPort), EXPRESS_MODULE: expressModule, PROMOTEL_HTTP_SERVER_HOOK: hook, OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
  });
  try {
    await app.waitFor(/listening/);
    for (const [method, path, status] of TRAFFIC) assert.equal(await send(appPort, method, path), status, `${method} ${path}`);
    const families = pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
    assert.equal(app.stderr(), '');
    return serverSeries(families);
  } finally {
    app.kill();
  }
}

const key = (labels: Record<string, string>): string => JSON.stringify(Object.entries({ network_protocol_version: '1.1', url_scheme: 'http', ...labels }).sort());

const EXPRESS_SERIES = {
  [key({ http_request_method: 'GET', http_response_status_code: '200', http_route: '/users/:id' })]: 3,
  [key({ http_request_method: 'POST', http_response_status_code: '201', http_route: '/users' })]: 1,
  [key({ http_request_method: 'GET', http_response_status_code: '200', http_route: '/api/items/:itemId' })]: 2,
  [key({ http_request_method: 'GET', http_response_status_code: '200', http_route: '/shops/:shop/orders/:orderId' })]: 2,
  [key({ http_request_method: 'GET', http_response_status_code: '200', http_route: '/shops/:shop/reports/:kind/:year' })]: 2,
  [key({ http_request_method: 'GET', http_response_status_code: '200', http_route: '/admin/stats' })]: 1,
  [key({ http_request_method: 'GET', http_response_status_code: '200', http_route: '/admin/tenants/:tenant/settings/:key' })]: 2,
  [key({ http_request_method: 'GET', http_response_status_code: '503', http_route: '/boom', error_type: '503' })]: 1,
  [key({ http_request_method: 'GET', http_response_status_code: '404' })]: 1,
  [key({ http_request_method: 'DELETE', http_response_status_code: '404' })]: 1,
  [key({ http_request_method: '_OTHER', http_response_status_code: '404' })]: 1,
};

test('Express: route templates, _OTHER for unknown methods, error.type for 5xx, same series from both hooks', async () => {
  const fast = await runExpress('diagnostics_channel');
  const stock = await runExpress('instrumentation-http');
  assert.deepEqual(stock, EXPRESS_SERIES);
  assert.deepEqual(fast, EXPRESS_SERIES);
});

// instrumentation-express hooks the module named `express`, so the stock hook
// cannot see the `express5` alias; the fast hook must give the same series.
test('Express 5: the same app gives the same series through the fast hook', async () => {
  assert.deepEqual(await runExpress('diagnostics_channel', 'express5'), EXPRESS_SERIES);
});

test('ES modules: --import works, the app\'s own counter and a named-import http.get are measured', async () => {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'esm-app.mjs'), {
    preload: 'import',
    env: { PORT: String(appPort), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
  });
  try {
    await app.waitFor(/ready/);
    const families = pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
    assert.equal(sampleValue(families, 'orders_total', { channel: 'web', otel_scope_name: 'shop' }), 1);
    assert.equal(sampleValue(families, 'http_server_request_duration_seconds_count', { http_request_method: 'GET', http_response_status_code: '200' }), 1);
    assert.equal(
      sampleValue(families, 'http_client_request_duration_seconds_count', { http_request_method: 'GET', server_address: '127.0.0.1', server_port: String(appPort), http_response_status_code: '200' }),
      1,
    );
    assert.equal(app.stderr(), '');
  } finally {
    app.kill();
  }
});

test('a client that hangs up before the response: active_requests returns to 0 and error.type=aborted', async () => {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'slow-server.js'), {
    env: { PORT: String(appPort), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
  });
  try {
    await app.waitFor(/listening/);
    const req = request({ host: '127.0.0.1', port: appPort, path: '/slow', agent: false });
    req.on('error', () => {});
    req.end();
    await app.waitFor(/got request/);
    const during = pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
    assert.equal(sampleValue(during, 'http_server_active_requests', { http_request_method: 'GET' }), 1);
    req.destroy();
    await app.waitFor(/closed early/);
    const afterwards = pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
    assert.equal(sampleValue(afterwards, 'http_server_active_requests', { http_request_method: 'GET' }), 0);
    const aborted = afterwards.flatMap((f) => f.samples).filter((s) => s.name === 'http_server_request_duration_seconds_count');
    assert.deepEqual(
      aborted.map((s) => [s.labels.http_request_method, s.labels.error_type, s.labels.http_response_status_code, s.value]),
      [['GET', 'aborted', undefined, 1]],
    );
  } finally {
    app.kill();
  }
});

test('fetch(): outgoing requests are measured with status, error.type, the refused one by its error code, a cancelled body as AbortError', async () => {
  const [appPort, metricsPort, deadPort] = [await freePort(), await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'fetch-app.js'), {
    env: { PORT: String(appPort), DEAD_PORT: String(deadPort), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
  });
  try {
    await app.waitFor(/fetched/);
    const families = pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
    const client = families.flatMap((f) => f.samples).filter((s) => s.name === 'http_client_request_duration_seconds_count');
    const seen = client.map((s) => `${s.labels.server_port} ${s.labels.http_response_status_code ?? '-'} ${s.labels.error_type ?? '-'} ${s.labels.url_scheme} ${s.value}`).sort();
    assert.deepEqual(seen, [`${appPort} 200 - http 1`, `${appPort} 200 AbortError http 1`, `${appPort} 404 404 http 1`, `${deadPort} - ECONNREFUSED http 1`].sort());
    assert.equal(app.stderr(), '');
  } finally {
    app.kill();
  }
});

for (const [when, env, wrappers] of [
  ['at start-up', {}, '2 0'],
  ['later, around functions it kept from start-up', { WRAP_LATER: '1' }, '1 1'],
] as const) {
  test(`an app that wraps http.request ${when} (nock, an SDK set up in code) is measured once per request, without recursion`, async () => {
    const [appPort, metricsPort] = [await freePort(), await freePort()];
    const app = startApp(join(FIXTURES, 'wrapped-client-app.js'), {
      env: { ...env, PORT: String(appPort), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
    });
    try {
      await app.waitFor(/done/);
      // Each request went through the app's wrappers once. Wrapped at start-up, http.get's own is
      // skipped: instrumentation-http, enabled after it, makes get call the (wrapped) request.
      assert.match(app.stdout(), new RegExp(`^done ${wrappers}$`, 'm'));
      const families = pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
      assert.equal(sampleValue(families, 'http_client_request_duration_seconds_count', { http_response_status_code: '200' }), 2, 'two requests, each measured once');
      assert.equal(app.stderr(), '');
    } finally {
      app.kill();
    }
  });
}
