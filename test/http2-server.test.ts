// HTTP/2 servers are measured like HTTP/1 ones: the same two metrics and
// attributes, with network_protocol_version="2", for h2c and TLS, the core
// 'stream' API and the compatibility API, and a stream the client cancels
// ends as aborted. The app is an ES module loaded with --import, so the
// servers come from `import ... from 'node:http2'`.
import assert from 'node:assert/strict';
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { before, test } from 'node:test';
import type { MetricProducer } from '@opentelemetry/sdk-metrics';
import { enableHttpServerMetrics } from '../src/instrumentations/http-server';
import { FIXTURES, captureStderr, eventually, freePort, get, promtoolCheck, pythonParse, samplesOf, selfSignedCert, startApp, type App, type Family } from './helpers';

let files = { KEY_FILE: '', CERT_FILE: '' };

before(() => {
  files = selfSignedCert();
});

interface Started {
  app: App;
  ports: { h2c: number; tls: number; h1: number };
  scrape: () => Promise<{ text: string; families: Family[] }>;
}

async function start(env: Record<string, string> = {}): Promise<Started> {
  const [h2c, tls, h1, metrics] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'http2-app.mjs'), {
    preload: 'import',
    env: { ...env, ...files, PORT: String(h2c), TLS_PORT: String(tls), H1_PORT: String(h1), OTEL_EXPORTER_PROMETHEUS_PORT: String(metrics), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
  });
  await app.waitFor(/listening/);
  const scrape = async (): Promise<{ text: string; families: Family[] }> => {
    const { body } = await get(`http://127.0.0.1:${metrics}/metrics`);
    return { text: body, families: pythonParse(body) };
  };
  return { app, ports: { h2c, tls, h1 }, scrape };
}

/** One request on an open session; resolves with the status once the stream has closed. */
function h2Request(session: ClientHttp2Session, path: string, method = 'GET'): Promise<number> {
  return new Promise((resolve, reject) => {
    let status = 0;
    const stream = session.request({ ':path': path, ':method': method }, { endStream: true });
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('error', reject).resume();
    stream.on('close', () => resolve(status));
  });
}

/** One HTTP/1.1 GET over TLS; resolves with the status. */
function httpsGet(port: number): Promise<number> {
  return new Promise<number>((resolve, reject) =>
    httpsRequest({ host: '127.0.0.1', port, path: '/ok', rejectUnauthorized: false }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode!));
    })
      .on('error', reject)
      .end(),
  );
}

/** `scheme method status version error_type count` per duration series (scope promotel), and `scheme method value` per active series. */
function summary(families: Family[], scope = 'promotel'): { durations: string[]; active: string[] } {
  const durations = samplesOf(families, 'http_server_request_duration_seconds_count')
    .filter((s) => s.labels.otel_scope_name === scope)
    .map((s) => `${s.labels.url_scheme} ${s.labels.http_request_method} ${s.labels.http_response_status_code ?? '-'} ${s.labels.network_protocol_version} ${s.labels.error_type ?? '-'} ${s.value}`);
  const active = samplesOf(families, 'http_server_active_requests').map((s) => `${s.labels.url_scheme} ${s.labels.http_request_method} ${s.value}`);
  return { durations: durations.sort(), active: active.sort() };
}

test('h2c and TLS, core and compatibility API: each request once, with its status, version 2 and the aborted ones', async () => {
  const { app, ports, scrape } = await start();
  const h2c = connect(`http://127.0.0.1:${ports.h2c}`);
  const tls = connect(`https://127.0.0.1:${ports.tls}`, { rejectUnauthorized: false });
  try {
    for (let i = 0; i < 3; i++) assert.equal(await h2Request(h2c, '/ok'), 200);
    assert.equal(await h2Request(h2c, '/fail', 'POST'), 503);
    assert.equal(await h2Request(tls, '/ok'), 200);
    assert.equal(await h2Request(tls, '/ok', 'PUT'), 200);
    assert.equal(await h2Request(tls, '/boom'), 500);
    // HTTP/1.1 on the same TLS server (allowHTTP1) is the HTTP/1 hook's, and counted once.
    assert.equal(await httpsGet(ports.tls), 200);

    // Two streams the server never finishes: active while open, aborted once the client cancels them.
    const partial = h2c.request({ ':path': '/partial' }, { endStream: true });
    const never = h2c.request({ ':path': '/never' }, { endStream: true });
    for (const s of [partial, never]) s.on('error', () => {}).resume();
    await app.waitFor(/got GET \/never/);
    await new Promise((r) => partial.once('response', r));
    assert.deepEqual(summary((await scrape()).families).active, ['http GET 2', 'http POST 0', 'https GET 0', 'https PUT 0']);
    partial.close(constants.NGHTTP2_CANCEL);
    never.close(constants.NGHTTP2_CANCEL);

    const done = await eventually(async () => {
      const s = await scrape();
      return summary(s.families).active.includes('http GET 0') ? s : undefined;
    });
    assert.deepEqual(summary(done.families), {
      durations: [
        'http GET - 2 aborted 1',
        'http GET 200 2 - 3',
        'http GET 200 2 aborted 1',
        'http POST 503 2 503 1',
        'https GET 200 1.1 - 1',
        'https GET 200 2 - 1',
        'https GET 500 2 500 1',
        'https PUT 200 2 - 1',
      ],
      active: ['http GET 0', 'http POST 0', 'https GET 0', 'https PUT 0'],
    });
    // No route label from HTTP/2, and buckets that add up.
    for (const s of samplesOf(done.families, 'http_server_request_duration_seconds_bucket')) assert.equal(s.labels.http_route, undefined);
    assert.equal(promtoolCheck(done.text), '');
    assert.equal(app.stderr(), '');
  } finally {
    h2c.destroy();
    tls.destroy();
    app.kill();
  }
});

test('with PROMOTEL_HTTP_SERVER_HOOK=instrumentation-http, HTTP/2 durations are still promotel\'s, beside the stock HTTP/1 ones', async () => {
  const { app, ports, scrape } = await start({ PROMOTEL_HTTP_SERVER_HOOK: 'instrumentation-http' });
  const h2c = connect(`http://127.0.0.1:${ports.h2c}`);
  try {
    assert.equal(await h2Request(h2c, '/ok'), 200);
    assert.equal(await h2Request(h2c, '/ok'), 200);
    assert.equal((await get(`http://127.0.0.1:${ports.h1}/`)).status, 200);
    // HTTP/1.1 on a node:http2 server (allowHTTP1): instrumentation-http does not see those, so promotel times them.
    assert.equal(await httpsGet(ports.tls), 200);
    const s = await eventually(async () => {
      const r = await scrape();
      return summary(r.families, '@opentelemetry/instrumentation-http').durations.length > 0 ? r : undefined;
    });
    assert.deepEqual(summary(s.families).durations, ['http GET 200 2 - 2', 'https GET 200 1.1 - 1']);
    assert.deepEqual(summary(s.families, '@opentelemetry/instrumentation-http').durations, ['http GET 200 1.1 - 1']);
    assert.equal(promtoolCheck(s.text), '');
    assert.equal(app.stderr(), '');
  } finally {
    h2c.destroy();
    app.kill();
  }
});

test('in process: the wrap waits for an HTTP/2 listen(), ignores a stream event that is not node:http2\'s, and stop() takes it off', async () => {
  const { createServer } = await import('node:http2');
  const producers: MetricProducer[] = [];
  const stop = enableHttpServerMetrics((p) => producers.push(p), { duration: true, cardinalityLimit: 2000, scope: { name: 'promotel', version: 'test' } });
  const server = createServer();
  const proto = Object.getPrototypeOf(server) as object;
  const stderr = captureStderr();
  try {
    assert.equal(Object.prototype.hasOwnProperty.call(proto, 'emit'), false, 'wrapped before any HTTP/2 server listened');
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    assert.equal(Object.prototype.hasOwnProperty.call(proto, 'emit'), true, 'not wrapped once one listened');
    let seen = 0;
    server.on('stream', () => seen++);
    server.emit('stream', {}, { ':method': 'GET' });
    assert.equal(seen, 1, 'the app\'s listener still gets the event');
    const { resourceMetrics } = await producers[0]!.collect();
    assert.deepEqual(resourceMetrics.scopeMetrics, []);
    assert.deepEqual(stderr.lines, []);
  } finally {
    stderr.restore();
    stop();
    await new Promise((resolve) => server.close(resolve));
  }
  assert.equal(Object.prototype.hasOwnProperty.call(proto, 'emit'), false, 'still wrapped after stop()');
});

test('a stream the app ended whose body the client cuts off is aborted, with the status it had', async () => {
  const { app, ports, scrape } = await start();
  const h2c = connect(`http://127.0.0.1:${ports.h2c}`);
  try {
    assert.equal(await h2Request(h2c, '/ok'), 200);
    // 32 MiB ended by the app at once; the client takes one chunk and cancels. Not respondWithFile():
    // Node itself (20.20.2 and 26.12.1, without the agent too) may crash with SIGSEGV when a client
    // cancels such a stream, from the first cancel on under load.
    const paths = ['/big'];
    // A session each: a stream opened on a session right after such a cancel may be refused.
    for (const path of paths) {
      const session = connect(`http://127.0.0.1:${ports.h2c}`);
      await new Promise<void>((resolve) => {
        const big = session.request({ ':path': path }, { endStream: true });
        big.on('error', () => {}).once('data', () => big.close(constants.NGHTTP2_CANCEL));
        big.on('close', () => resolve());
      });
      session.destroy();
    }
    const done = await eventually(async () => {
      // Thrown, not returned: a timeout then says whether the app itself went down.
      if (app.child.exitCode !== null || app.child.signalCode !== null) throw new Error(`the app exited (${app.child.exitCode ?? app.child.signalCode}): ${app.stderr()}`);
      const s = await scrape();
      return samplesOf(s.families, 'http_server_request_duration_seconds_count').reduce((a, x) => a + x.value, 0) === 1 + paths.length ? s : undefined;
    });
    assert.deepEqual(summary(done.families), { durations: ['http GET 200 2 - 1', `http GET 200 2 aborted ${paths.length}`], active: ['http GET 0'] });
  } finally {
    h2c.destroy();
    app.kill();
  }
});
