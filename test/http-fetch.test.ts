// fetch() metrics beyond the happy path (the basic ones are in http-hooks.test.ts).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, eventually, freePort, get, pythonParse, samplesOf, startApp } from './helpers';

/** `method address status error_type count` per fetch() series. */
async function fetchSeries(requests: number, env: Record<string, string> = {}): Promise<{ series: string[]; server: string[]; stderr: string }> {
  const [appPort, port6, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'fetch-edge-app.js'), {
    env: { ...env, PORT: String(appPort), PORT6: String(port6), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
  });
  try {
    await app.waitFor(/fetched/);
    // undici may publish a request's error after the app has seen the rejection.
    const [samples, families] = await eventually(async () => {
      const families = pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
      const ours = samplesOf(families, 'http_client_request_duration_seconds_count').filter((s) => s.labels.otel_scope_name === 'promotel');
      return ours.reduce((n, s) => n + s.value, 0) >= requests ? ([ours, families] as const) : undefined;
    });
    // The same requests as the app's server saw them (the answered ones).
    const server = samplesOf(families, 'http_server_request_duration_seconds_count')
      .filter((s) => s.labels.http_response_status_code === '200')
      .map((s) => `${s.labels.http_request_method} ${s.value}`);
    const series = samples
      .map((s) => {
        const port = s.labels.server_port === String(appPort) ? '' : `:${s.labels.server_port === String(port6) ? 'v6' : s.labels.server_port}`;
        return `${s.labels.http_request_method} ${s.labels.server_address}${port} ${s.labels.http_response_status_code ?? '-'} ${s.labels.error_type ?? '-'} ${s.value}`;
      });
    return { series: series.sort(), server: server.sort(), stderr: app.stderr() };
  } finally {
    app.kill();
  }
}

test('fetch(): a timeout is TimeoutError, an abort by the app is AbortError, an IPv6 address has no brackets', async () => {
  const { series, stderr } = await fetchSeries(3);
  assert.deepEqual(series, ['GET 127.0.0.1 - AbortError 1', 'GET 127.0.0.1 - TimeoutError 1', 'GET ::1:v6 200 - 1']);
  assert.equal(stderr, '');
});

test('fetch(): methods match the known list case-sensitively; fetch\'s own upper-casing of get/post still counts', async () => {
  const { series } = await fetchSeries(8, { METHODS: 'get post patch PATCH Delete' });
  // Node's server answers a lower-case method with 400 (its parser knows only upper case).
  assert.deepEqual(
    series.filter((s) => !/Error|::1/.test(s)),
    ['DELETE 127.0.0.1 200 - 1', 'GET 127.0.0.1 200 - 1', 'POST 127.0.0.1 200 - 1', 'PATCH 127.0.0.1 200 - 1', '_OTHER 127.0.0.1 400 400 1'].sort(),
  );
});

test('OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS replaces the known methods, for the server hook and fetch()', async () => {
  const { series, server, stderr } = await fetchSeries(7, { OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS: 'GET, PROPFIND,PURGE', METHODS: 'PROPFIND MKCOL PURGE POST' });
  const answered = series.filter((s) => / 200 /.test(s) && !s.includes('::1'));
  assert.deepEqual(answered, ['PROPFIND 127.0.0.1 200 - 1', 'PURGE 127.0.0.1 200 - 1', '_OTHER 127.0.0.1 200 - 2']);
  assert.deepEqual(server, ['GET 1', 'PROPFIND 1', 'PURGE 1', '_OTHER 2']);
  assert.equal(stderr, '');
});

test('OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS without a valid method: one warning, and the default list', async () => {
  for (const value of [' , ', 'GET,P OST']) {
    const { server, stderr } = await fetchSeries(5, { OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS: value, METHODS: 'PROPFIND POST' });
    assert.deepEqual(server, ['GET 1', 'POST 1', '_OTHER 1']);
    const why = value === ' , ' ? 'it names no method' : '"P OST" is not an HTTP method token';
    assert.equal(
      stderr,
      `promotel warn: OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS=${JSON.stringify(value)} is invalid: ${why}; give comma-separated methods as sent, such as GET,POST,PROPFIND; using GET,HEAD,POST,PUT,DELETE,CONNECT,OPTIONS,TRACE,PATCH,QUERY\n`,
    );
  }
});

// NODE_USE_ENV_PROXY arrived in Node 24.5 (and 22.21): there, fetch() honours HTTP_PROXY through a CONNECT tunnel.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const envProxy = major > 24 || (major === 24 && minor >= 5) || (major === 22 && minor >= 21);

test('fetch() through a proxy: the app\'s requests are counted, with the server behind the proxy, not the CONNECT tunnels undici opens for them', { skip: !envProxy && 'no NODE_USE_ENV_PROXY on this Node' }, async () => {
  const { createServer, request } = await import('node:http');
  const net = await import('node:net');
  const target = createServer((_req, res) => res.end('ok'));
  // A forward proxy both ways: CONNECT tunnels (Node 24), and absolute-form requests (Node 26, for http: URLs).
  const proxy = createServer((req, res) => {
    const upstream = request(String(req.url), { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  proxy.on('connect', (req, socket, head) => {
    const [host, port] = String(req.url).split(':');
    const upstream = net.connect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(socket).pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await Promise.all([target, proxy].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  const port = (s: typeof target): number => (s.address() as { port: number }).port;
  const metricsPort = await freePort();
  const script = `(async () => { for (let i = 0; i < 2; i++) await (await fetch('http://127.0.0.1:${port(target)}/')).text(); console.log('done'); setTimeout(() => {}, 5000); })();`;
  const app = startApp('-e', { args: [script], env: { NODE_USE_ENV_PROXY: '1', HTTP_PROXY: `http://127.0.0.1:${port(proxy)}`, OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  try {
    await app.waitFor(/done/);
    // The scrape itself goes around the proxy: node:http does not read HTTP_PROXY.
    const body = await new Promise<string>((resolve, reject) =>
      request({ host: '127.0.0.1', port: metricsPort, path: '/metrics' }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d)).on('end', () => resolve(text));
      }).on('error', reject).end(),
    );
    const series = samplesOf(pythonParse(body), 'http_client_request_duration_seconds_count').map((s) => `${s.labels.http_request_method} ${s.labels.server_port} ${s.value}`);
    assert.deepEqual(series, [`GET ${port(target)} 2`]);
  } finally {
    app.kill();
    target.close();
    proxy.close();
  }
});
