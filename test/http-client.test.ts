// node:http client metrics (instrumentation-http) beyond status codes: the
// error.type of each kind of failure, and the two cases README's "HTTP
// details" documents as upstream behaviour, held here so that a change is seen.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, eventually, freePort, get, pythonParse, samplesOf, startApp } from './helpers';

test('node:http client: error.type is the error code (ECONNREFUSED, ECONNRESET) or AbortError, as for fetch()', async () => {
  const [appPort, deadPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'http-client-edge-app.js'), {
    env: { PORT: String(appPort), DEAD_PORT: String(deadPort), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
  });
  try {
    await app.waitFor(/requested/);
    const samples = await eventually(async () => {
      const families = pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
      const client = samplesOf(families, 'http_client_request_duration_seconds_count');
      return client.reduce((n, s) => n + s.value, 0) >= 5 ? client : undefined;
    });
    const seen = samples.map((s) => `${s.labels.server_port === String(deadPort) ? 'dead' : 'app'} ${s.labels.http_response_status_code ?? '-'} ${s.labels.error_type ?? '-'} ${s.value}`);
    assert.deepEqual(seen.sort(), [
      'dead - ECONNREFUSED 1', // refused
      'app - ECONNRESET 1', // the server closed the connection before answering
      'app - AbortError 1', // AbortSignal.timeout(): Node's AbortError (code ABORT_ERR)
      // Upstream, documented: the response the app destroyed after its headers is a success,
      'app 200 - 1',
      // and the upgrade answered with 101 has no status code.
      'app - - 1',
    ].sort());
    assert.equal(app.stderr(), '');
  } finally {
    app.kill();
  }
});

test('node:http client: an IPv6 literal in options.host is the server_address, as with hostname or a URL', async () => {
  const metricsPort = await freePort();
  const app = startApp(join(FIXTURES, 'http-client-ipv6-app.js'), { env: { OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  try {
    const port = (await app.waitFor(/requested (\d+)/)).match(/requested (\d+)/)![1];
    const samples = await eventually(async () => {
      const client = samplesOf(pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body), 'http_client_request_duration_seconds_count');
      return client.reduce((n, s) => n + s.value, 0) >= 3 ? client : undefined;
    });
    assert.deepEqual(samples.map((s) => `${s.labels.server_address} ${s.labels.server_port} ${s.value}`), [`::1 ${port} 3`]);
    assert.equal(app.stderr(), '');
  } finally {
    app.kill();
  }
});

test('node:http client: headers given as a raw list go out as the app gave them, and the request is counted', async () => {
  const metricsPort = await freePort();
  const app = startApp(join(FIXTURES, 'http-client-raw-headers-app.js'), { env: { OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  try {
    await app.waitFor(/requested/);
    // What node:http sends for these lists without the agent: the list, and the Connection of agent: false.
    assert.deepEqual(app.stdout().trim().split('\n'), [
      '["X-Raw","a","x-raw","b","Host","raw.test","Connection","close"]',
      '["X-Pair","c","Host","raw.test","Connection","close"]',
      'requested',
    ]);
    const samples = await eventually(async () => {
      const client = samplesOf(pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body), 'http_client_request_duration_seconds_count');
      return client.reduce((n, s) => n + s.value, 0) >= 2 ? client : undefined;
    });
    assert.deepEqual(samples.map((s) => `${s.labels.http_request_method} ${s.labels.server_address} ${s.labels.http_response_status_code} ${s.labels.error_type ?? '-'} ${s.value}`), ['GET 127.0.0.1 200 - 2']);
    assert.equal(app.stderr(), '');
  } finally {
    app.kill();
  }
});
