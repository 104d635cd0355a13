// A gRPC service on @grpc/grpc-js, as promotel measures it: HTTP/2 POSTs on
// both sides, by the HTTP/2 server and client hooks. gRPC puts its own status
// in trailers, so a failed call is an HTTP success with status 200; a call
// the client cancels is `aborted` on both sides. No rpc.* metrics.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, freePort, get, pythonParse, samplesOf, startApp } from './helpers';

for (const [entry, preload] of [
  ['grpc-app.js', 'require'],
  ['grpc-app.mjs', 'import'],
] as const) {
  test(`grpc-js (${entry}, --${preload}): three answered calls (one INTERNAL) are 200s, a cancelled call is aborted, on the server and the client`, async () => {
    const metrics = await freePort();
    const app = startApp(join(FIXTURES, entry), { preload, env: { OTEL_EXPORTER_PROMETHEUS_PORT: String(metrics), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
    try {
      await app.waitFor(/done/, 15_000);
      assert.match(app.stdout(), /^OK OK INTERNAL CANCELLED$/m);
      const families = pythonParse((await get(`http://127.0.0.1:${metrics}/metrics`)).body);
      const series = (name: string): string[] =>
        samplesOf(families, name)
          .map((s) => `${s.labels.http_request_method} ${s.labels.network_protocol_version} ${s.labels.http_response_status_code ?? '-'} ${s.labels.error_type ?? '-'} ${s.value}`)
          .sort();
      assert.deepEqual(series('http_server_request_duration_seconds_count'), ['POST 2 - aborted 1', 'POST 2 200 - 3']);
      assert.deepEqual(series('http_client_request_duration_seconds_count'), ['POST 2 - aborted 1', 'POST 2 200 - 3']);
      assert.deepEqual(samplesOf(families, 'http_server_active_requests').map((s) => `${s.labels.http_request_method} ${s.value}`), ['POST 0']);
      assert.equal(app.stderr(), '');
    } finally {
      app.kill();
    }
  });
}
