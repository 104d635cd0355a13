// Outgoing HTTP/2 requests land in http_client_request_duration_seconds with
// network_protocol_version="2": statuses, the stream's own errors, requests
// the app cancels, a refused connection, h2c and TLS, whether the app took
// `connect` out of node:http2 with require() or with an ES-module import.
// The servers here are the test's; the apps are real processes with the agent.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as http2 from 'node:http2';
import { join } from 'node:path';
import { before, test } from 'node:test';
import type { Attributes, Meter } from '@opentelemetry/api';
import { entryIsModule, hasResolveHooks, onBuiltinLoad } from '../src/builtin-load';
import { enableHttp2ClientMetrics, splitAuthority } from '../src/instrumentations/http2-client';
import { FIXTURES, captureStderr, freePort, get, promtoolCheck, pythonParse, samplesOf, selfSignedCert, startApp } from './helpers';

/** The test's servers: /ok 200, /missing 404, /reset RST_STREAM with INTERNAL_ERROR, /hang never answers, /half answers a part. */
function serve(server: http2.Http2Server | http2.Http2SecureServer): void {
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const path = headers[':path'];
    if (path === '/reset') return stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    if (path === '/hang') return;
    stream.respond({ ':status': path === '/missing' ? 404 : 200 });
    if (path === '/half') stream.write('part of it\n');
    else stream.end('ok\n');
  });
}

async function listen(server: http2.Http2Server | http2.Http2SecureServer): Promise<number> {
  serve(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  server.unref();
  return (server.address() as { port: number }).port;
}

let h2cPort = 0;
let tlsPort = 0;
let fetchPort = 0;
let caFile = '';
before(async () => {
  const { KEY_FILE, CERT_FILE } = selfSignedCert();
  caFile = CERT_FILE;
  const tls = { key: readFileSync(KEY_FILE), cert: readFileSync(CERT_FILE) };
  h2cPort = await listen(http2.createServer());
  tlsPort = await listen(http2.createSecureServer(tls));
  // For fetch(): HTTP/2 where undici offers it (Node 26), HTTP/1.1 elsewhere.
  const both = http2.createSecureServer({ ...tls, allowHTTP1: true }, (_req, res) => res.end('ok\n'));
  both.listen(0, '127.0.0.1');
  await once(both, 'listening');
  both.unref();
  fetchPort = (both.address() as { port: number }).port;
});

/** `scheme method address:port status error_type count` per HTTP/2 client series, once `requests` are counted. */
async function clientSeries(script: string, preload: 'require' | 'import', requests: number, env: Record<string, string> = {}) {
  const [metrics, dead] = [await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, script), {
    preload,
    env: {
      ...env,
      H2C_URL: `http://127.0.0.1:${h2cPort}`,
      TLS_URL: `https://127.0.0.1:${tlsPort}`,
      DEAD_URL: `http://127.0.0.1:${dead}`,
      FETCH_URL: `https://127.0.0.1:${fetchPort}/`,
      NODE_EXTRA_CA_CERTS: caFile,
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metrics),
      OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
    },
  });
  try {
    await app.waitFor(/done|failed/, 15_000);
    const ports: Record<string, string> = { [h2cPort]: 'h2c', [tlsPort]: 'tls', [dead]: 'dead' };
    const text = (await get(`http://127.0.0.1:${metrics}/metrics`)).body;
    const counts = samplesOf(pythonParse(text), 'http_client_request_duration_seconds_count');
    const series = counts
      .filter((s) => s.labels.network_protocol_version === '2')
      .map((s) => `${s.labels.url_scheme} ${s.labels.http_request_method} ${s.labels.server_address}:${ports[s.labels.server_port!] ?? s.labels.server_port} ${s.labels.http_response_status_code ?? '-'} ${s.labels.error_type ?? '-'} ${s.value}`)
      .sort();
    assert.equal(series.reduce((n, s) => n + Number(s.split(' ').pop()), 0), requests, `${requests} requests in ${series.join('\n')}\n${app.stdout()}`);
    const fetched = counts
      .filter((s) => s.labels.server_port === String(fetchPort))
      .map((s) => `${s.labels.http_response_status_code} ${s.labels.error_type ?? '-'} ${s.labels.network_protocol_version ?? '-'} ${s.value}`);
    return { series, fetched, text, stdout: app.stdout(), stderr: app.stderr() };
  } finally {
    app.kill();
  }
}

test('require(): every request once, with its status, its stream error, cancels and a refused connection', async () => {
  const { series, fetched, text, stdout, stderr } = await clientSeries('http2-client-app.js', 'require', 12);
  // What the app itself saw, so that the series below can be read against it.
  assert.match(stdout, /GET \/reset 0 ERR_HTTP2_STREAM_ERROR\nGET \/hang 0 -\nGET \/half 200 -\nGET \/hang 0 ABORT_ERR\nGET \/half 200 -\nGET \/ 0 ERR_HTTP2_STREAM_CANCEL\n/);
  assert.match(stdout, /fetch 200\nfetch 200\n/);
  assert.deepEqual(series, [
    'http GET 127.0.0.1:dead - ECONNREFUSED 1',
    'http GET 127.0.0.1:h2c - AbortError 1',
    'http GET 127.0.0.1:h2c - ERR_HTTP2_STREAM_ERROR 1',
    'http GET 127.0.0.1:h2c - aborted 1',
    'http GET 127.0.0.1:h2c 200 - 3',
    'http GET 127.0.0.1:h2c 200 aborted 2',
    'http POST 127.0.0.1:h2c 404 404 1',
    'https GET 127.0.0.1:tls 200 - 1',
    'https GET localhost:tls 200 - 1',
  ]);
  // fetch()'s two requests, once each, by the fetch hook (no error, no protocol version), whatever protocol undici chose.
  assert.deepEqual(fetched, ['200 - - 2']);
  assert.match(text, /# TYPE http_client_request_duration_seconds histogram/);
  assert.equal(promtoolCheck(text), '');
  assert.equal(stderr, '');
});

// Without module.registerHooks (Node 22.15+, 23.5+), an ES module's import passes no hook.
test('an ES module importing node:http2: from its import where Node has resolve hooks, else from when it listens', async () => {
  const { series, stderr } = await clientSeries('http2-client-app.mjs', 'import', hasResolveHooks ? 3 : 2);
  // The named import's request before listen(), then the default import's two after.
  const early = hasResolveHooks ? ['http GET 127.0.0.1:h2c 404 404 1'] : [];
  assert.deepEqual(series, ['http GET 127.0.0.1:h2c 200 - 2', ...early]);
  assert.equal(stderr, '');
});

test('PROMOTEL_HTTP_METRICS=false: no HTTP/2 client series, and the app runs the same', async () => {
  const { text, stdout } = await clientSeries('http2-client-app.js', 'require', 0, { PROMOTEL_HTTP_METRICS: 'false' });
  assert.match(stdout, /GET \/ok 200 -\nGET \/ok 200 -\nGET \/ok 200 -\nPOST \/missing 404 -/);
  assert.doesNotMatch(text, /http_client_request_duration/);
});

test('in process: attributes as recorded, a broken meter costs one warning and no request, stop() unwraps', async () => {
  const records: Array<[number, Attributes]> = [];
  let broken = false;
  const meter = { createHistogram: () => ({ record: (v: number, a: Attributes) => (broken ? assert.fail('meter is broken') : records.push([v, a])) }) } as unknown as Meter;
  const connect = http2.connect;
  // node:http2 is loaded in this process already: connect is wrapped at once.
  const stop = enableHttp2ClientMetrics(() => meter);
  const session = http2.connect(`http://127.0.0.1:${h2cPort}`);
  const get1 = (): Promise<void> => new Promise((resolve) => session.request({ ':path': '/ok' }).resume().on('close', resolve));
  const stderr = captureStderr();
  try {
    assert.notEqual(http2.connect, connect);
    // What libraries may read off the function is the original's.
    assert.deepEqual([http2.connect.name, http2.connect.length], [connect.name, connect.length]);
    await get1();
    assert.equal(records.length, 1);
    assert.ok(records[0]![0] > 0 && records[0]![0] < 5);
    assert.deepEqual(records[0]![1], { 'http.request.method': 'GET', 'server.address': '127.0.0.1', 'server.port': h2cPort, 'url.scheme': 'http', 'network.protocol.version': '2', 'http.response.status_code': 200 });
    broken = true;
    await get1();
    await get1();
    assert.equal(stderr.lines.filter((l) => l.includes('HTTP/2 client metrics skipped a request')).length, 1, stderr.lines.join(''));
    broken = false;
    stop();
    assert.equal(http2.connect, connect);
    await get1();
    assert.equal(records.length, 1, 'nothing recorded after stop()');
  } finally {
    stderr.restore();
    stop();
    session.close();
  }
});

test('in process: a connect that cannot be replaced costs one warning, and node:http2 stays as it was', async () => {
  const connect = http2.connect;
  const exports = require('node:http2') as typeof http2;
  Object.defineProperty(exports, 'connect', { value: connect, writable: false, configurable: true, enumerable: true });
  const stderr = captureStderr();
  const stop = enableHttp2ClientMetrics(() => assert.fail('no request is made'));
  try {
    assert.equal(exports.connect, connect);
    assert.deepEqual(stderr.lines.filter((l) => l.includes('HTTP/2 client metrics could not start')).length, 1, stderr.lines.join(''));
  } finally {
    stop();
    stderr.restore();
    Object.defineProperty(exports, 'connect', { value: connect, writable: true, configurable: true, enumerable: true });
  }
});

test('onBuiltinLoad, Node 20 route: seen at require() before the caller gets the module, or by check() after an import', async () => {
  const seen: string[] = [];
  const proto = (require('node:module') as { prototype: { require: unknown } }).prototype;
  const load = proto.require;
  const required = onBuiltinLoad('trace_events', (exports) => seen.push(`require ${typeof (exports as { createTracing?: unknown }).createTracing}`), { resolveHooks: false });
  assert.notEqual(proto.require, load);
  require('node:trace_events');
  assert.deepEqual(seen, ['require function']);
  assert.equal(proto.require, load, 'the wrapper is gone once the module is seen');
  required.stop();

  const imported = onBuiltinLoad('domain', () => seen.push('import'), { resolveHooks: false });
  await import('node:domain');
  assert.deepEqual(seen, ['require function'], 'an import passes no hook');
  imported.check();
  assert.deepEqual(seen, ['require function', 'import']);
  imported.stop();
  assert.equal(proto.require, load);
});

test('onBuiltinLoad, resolve-hook route: an import is seen before its named bindings exist, a require before it returns', { skip: !hasResolveHooks && 'no module.registerHooks on this Node' }, async () => {
  const loaded = (process as unknown as { moduleLoadList: string[] }).moduleLoadList;
  // Two builtins this process has not loaded (the test runner loads some, by version).
  const [forImport, forRequire, forCount] = ['dgram', 'readline', 'cluster', 'repl', 'inspector', 'tls', 'dns'].filter((m) => !loaded.includes(`NativeModule ${m}`));
  assert.ok(forImport && forRequire && forCount, 'the test needs three builtins not loaded yet');
  const proto = (require('node:module') as { prototype: { require: unknown } }).prototype;
  const load = proto.require;
  type Exports = Record<string, unknown>;
  const wrapped = (): string => 'wrapped';
  const swap = { exports: {} as Exports, key: '', original: undefined as unknown };
  const imported = onBuiltinLoad(
    forImport,
    (exports) => {
    swap.exports = exports as Exports;
    swap.key = Object.keys(swap.exports).find((k) => typeof swap.exports[k] === 'function')!;
    swap.original = swap.exports[swap.key];
      swap.exports[swap.key] = wrapped;
    },
    { resolveHooks: true },
  );
  assert.equal(proto.require, load, 'no require wrapper where resolve hooks exist');
  const namespace = (await import(`node:${forImport}`)) as Exports;
  swap.exports[swap.key] = swap.original;
  assert.equal(namespace[swap.key], wrapped, `the named export ${swap.key} of node:${forImport} is what onLoad put there`);
  imported.stop();

  const seen: string[] = [];
  const required = onBuiltinLoad(forRequire, (exports) => seen.push(typeof exports), { resolveHooks: true });
  require(`node:${forRequire}`);
  require(`node:${forRequire}`);
  assert.deepEqual(seen, ['object'], 'once, before require() returned');
  required.stop();

  // A hook registered after ours runs first: it must see the app's one resolution, not a second of ours.
  const counted = onBuiltinLoad(forCount, () => {}, { resolveHooks: true });
  let calls = 0;
  const later = (require('node:module') as { registerHooks: (h: object) => { deregister(): void } }).registerHooks({
    resolve: (specifier: string, context: object, next: (s: string, c: object) => { url?: string }) => {
      const result = next(specifier, context);
      if (result.url === `node:${forCount}`) calls++;
      return result;
    },
  });
  await import(`node:${forCount}`);
  later.deregister();
  counted.stop();
  assert.equal(calls, 1, 'the other hook saw one resolution');
});

test('entryIsModule: by extension, else by the nearest package.json, as Node decides', () => {
  const root = mkdtempSync(join(tmpdir(), 'promotel-entry-'));
  try {
    mkdirSync(join(root, 'esm', 'cjs-inside'), { recursive: true });
    writeFileSync(join(root, 'esm', 'package.json'), '{"type":"module"}');
    writeFileSync(join(root, 'esm', 'cjs-inside', 'package.json'), '{"name":"no-type"}');
    assert.equal(entryIsModule(join(root, 'esm', 'app.js')), true);
    assert.equal(entryIsModule(join(root, 'esm', 'app.ts')), true);
    assert.equal(entryIsModule(join(root, 'esm', 'app.cjs')), false);
    assert.equal(entryIsModule(join(root, 'esm', 'cjs-inside', 'app.js')), false, 'the nearest package.json decides');
    assert.equal(entryIsModule(join(root, 'app.mjs')), true);
    assert.equal(entryIsModule(join(root, 'app.mts')), true);
    assert.equal(entryIsModule('/app.js'), false, 'no package.json up to the root');
    assert.equal(entryIsModule(undefined), false);
    // `node esm` (a directory: its package.json's main) and a symlink, judged where the file really is.
    writeFileSync(join(root, 'esm', 'package.json'), '{"type":"module","main":"server.js"}');
    writeFileSync(join(root, 'esm', 'server.js'), '');
    assert.equal(entryIsModule(join(root, 'esm')), true);
    writeFileSync(join(root, 'esm', 'cjs-inside', 'real.js'), '');
    symlinkSync(join(root, 'esm', 'cjs-inside', 'real.js'), join(root, 'esm', 'link.js'));
    assert.equal(entryIsModule(join(root, 'esm', 'link.js')), false, 'a link to a CommonJS file');
    writeFileSync(join(root, 'esm', 'package.json'), '{"type":');
    assert.equal(entryIsModule(join(root, 'esm', 'app.js')), false, 'a package.json that does not parse (Node refuses to run the app)');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('splitAuthority: host and port as server.address and server.port', () => {
  assert.deepEqual(splitAuthority('example.com:8443', 'https'), ['example.com', 8443]);
  assert.deepEqual(splitAuthority('example.com', 'https'), ['example.com', 443]);
  assert.deepEqual(splitAuthority('example.com', 'http'), ['example.com', 80]);
  assert.deepEqual(splitAuthority('[::1]:8080', 'http'), ['::1', 8080]);
  assert.deepEqual(splitAuthority('[::1]', 'https'), ['::1', 443]);
  // node:http2 keeps a session's IPv6 authority without brackets.
  assert.deepEqual(splitAuthority('::1:8080', 'http'), ['::1', 8080]);
  assert.deepEqual(splitAuthority('host:99999', 'http'), ['host', 80]);
  assert.deepEqual(splitAuthority(undefined, 'https'), ['', 443]);
});
