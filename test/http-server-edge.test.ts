// Server-hook edge cases that ordinary clients never produce: pipelining cut
// off by the client, Expect: 100-continue. Raw sockets, so that the bytes on
// the wire are exactly the ones under test.
import assert from 'node:assert/strict';
import { createServer, ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import type { MetricProducer } from '@opentelemetry/sdk-metrics';
import { enableHttpServerMetrics } from '../src/instrumentations/http-server';
import { FIXTURES, captureStderr, eventually, exposedGc, freePort, get, pythonParse, samplesOf, startApp, type App, type Family } from './helpers';

async function startServer(fixture: string, env: Record<string, string> = {}): Promise<{ app: App; appPort: number; scrape: () => Promise<Family[]> }> {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, fixture), {
    env: { ...env, PORT: String(appPort), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' },
  });
  await app.waitFor(/listening/);
  return { app, appPort, scrape: async () => pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body) };
}

/** Opens a raw connection and writes `payload`; `received()` is everything read so far. */
function rawClient(port: number, payload: string): Promise<{ socket: Socket; received: () => string }> {
  return new Promise((resolve, reject) => {
    let data = '';
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(payload);
      resolve({ socket, received: () => data });
    });
    socket.setEncoding('utf8').on('data', (d: string) => (data += d));
    socket.on('error', reject);
  });
}

/** Resolves once `n` responses with status 200 have come back on a raw connection. */
function untilOk(client: { received: () => string }, n: number): Promise<unknown> {
  return eventually(async () => (client.received().match(/HTTP\/1\.1 200/g) ?? []).length === n);
}

/** `method status error_type count` per duration series, and `method value` per active_requests series. */
function summary(families: Family[]): { durations: string[]; active: string[] } {
  const durations = samplesOf(families, 'http_server_request_duration_seconds_count').map(
    (s) => `${s.labels.http_request_method} ${s.labels.http_response_status_code ?? '-'} ${s.labels.error_type ?? '-'} ${s.value}`,
  );
  const active = samplesOf(families, 'http_server_active_requests').map((s) => `${s.labels.http_request_method} ${s.value}`);
  return { durations: durations.sort(), active: active.sort() };
}

const GET = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
const POST = (path: string): string => `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc`;

test('pipelined requests cut off by the client: each queued one ends as aborted, active_requests back to 0', async () => {
  const { app, appPort, scrape } = await startServer('pipeline-server.js');
  try {
    const client = await rawClient(appPort, GET('/hang') + GET('/ok') + POST('/ok'));
    await app.waitFor(/got POST \/ok/);
    assert.deepEqual(summary(await scrape()).active, ['GET 2', 'POST 1']);
    client.socket.destroy();
    // The two answered ones had their headers written (queued, never sent): they keep their status.
    const after = await eventually(async () => {
      const s = summary(await scrape());
      return s.active.join() === 'GET 0,POST 0' ? s : undefined;
    });
    assert.deepEqual(after.durations, ['GET - aborted 1', 'GET 200 aborted 1', 'POST 200 aborted 1']);
    assert.equal(app.stderr(), '');
  } finally {
    app.kill();
  }
});

test('pipelined requests that complete, then keep-alive on the same connection: each recorded exactly once', async () => {
  const { app, appPort, scrape } = await startServer('pipeline-server.js');
  try {
    const client = await rawClient(appPort, GET('/slow') + POST('/ok') + GET('/ok'));
    await untilOk(client, 3);
    client.socket.write(GET('/ok'));
    await untilOk(client, 4);
    client.socket.destroy();
    // The connection's close comes after all four responses ended: it must add nothing.
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(summary(await scrape()), { durations: ['GET 200 - 3', 'POST 200 - 1'], active: ['GET 0', 'POST 0'] });
    assert.equal(app.stderr(), '');
  } finally {
    app.kill();
  }
});

test('the server\'s own 408 (requestTimeout: a body that never comes whole) is recorded with its status, not as a client abort', async () => {
  const { app, appPort, scrape } = await startServer('timeout-server.js');
  try {
    const client = await rawClient(appPort, 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc');
    await eventually(async () => client.received().startsWith('HTTP/1.1 408'));
    // And one client that does go away, for contrast.
    const gone = await rawClient(appPort, 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc');
    gone.socket.destroy();
    await eventually(async () => summary(await scrape()).durations.length === 2);
    assert.deepEqual(summary(await scrape()), { durations: ['POST - aborted 1', 'POST 408 - 1'], active: ['POST 0'] });
  } finally {
    app.kill();
  }
});

test('Node\'s own answers: its 408 only when nothing of the response was sent, its 400 to a body that does not parse; with the app\'s clientError listener, neither', async () => {
  const CHUNKED_GARBAGE = 'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nZZ\r\n';
  const { app, appPort, scrape } = await startServer('timeout-server.js');
  try {
    // The 200 of /echo and a chunk of the body are on the wire when the timeout hits: no 408 from Node.
    const echo = await rawClient(appPort, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc');
    const bad = await rawClient(appPort, CHUNKED_GARBAGE);
    await eventually(async () => bad.received().startsWith('HTTP/1.1 400'));
    await eventually(async () => summary(await scrape()).durations.length === 2);
    assert.match(echo.received(), /^HTTP\/1\.1 200 OK/);
    assert.doesNotMatch(echo.received(), /408/);
    assert.deepEqual(summary(await scrape()), { durations: ['POST 200 aborted 1', 'POST 400 - 1'], active: ['POST 0'] });
  } finally {
    app.kill();
  }
  const own = await startServer('timeout-server.js', { CLIENT_ERROR: '1' });
  try {
    const bad = await rawClient(own.appPort, CHUNKED_GARBAGE);
    await eventually(async () => bad.socket.destroyed || bad.socket.readableEnded);
    await eventually(async () => summary(await own.scrape()).durations.length === 1);
    assert.equal(bad.received(), '', 'the app\'s listener answered nothing');
    assert.deepEqual(summary(await own.scrape()), { durations: ['POST - aborted 1'], active: ['POST 0'] });
  } finally {
    own.app.kill();
  }
});

test('a response the app ended whose body the client cuts off is aborted; one ended whole before the app destroys the socket is not', async () => {
  const { app, appPort, scrape } = await startServer('timeout-server.js');
  try {
    const big = await rawClient(appPort, GET('/big'));
    await eventually(async () => big.received().length > 0);
    big.socket.destroy();
    const whole = await rawClient(appPort, GET('/end-destroy'));
    await eventually(async () => whole.received().endsWith('all of it\n'));
    await eventually(async () => summary(await scrape()).durations.length === 2);
    assert.deepEqual(summary(await scrape()), { durations: ['GET 200 - 1', 'GET 200 aborted 1'], active: ['GET 0'] });
  } finally {
    app.kill();
  }
});

test('HTTP/1.0 and HTTP/1.1 requests each keep their network.protocol.version', async () => {
  const { app, appPort, scrape } = await startServer('pipeline-server.js');
  try {
    // /nope answers 200 too (the path is not a label); the POST has a body, as a 1.0 client sends it.
    const requests = ['GET /ok HTTP/1.0', 'GET /ok HTTP/1.1', 'GET /nope HTTP/1.0', 'POST /ok HTTP/1.0'];
    for (const line of requests) {
      const body = line.startsWith('POST') ? 'Content-Length: 3\r\n\r\nabc' : '\r\n';
      const client = await rawClient(appPort, `${line}\r\nHost: x\r\nConnection: close\r\n${body}`);
      await eventually(async () => client.received().endsWith('ok'));
      client.socket.destroy();
    }
    const series = await eventually(async () => {
      const s = samplesOf(await scrape(), 'http_server_request_duration_seconds_count').map((x) => `${x.labels.http_request_method} ${x.labels.network_protocol_version} ${x.value}`);
      return s.length === 3 ? s.sort() : undefined;
    });
    assert.deepEqual(series, ['GET 1.0 2', 'GET 1.1 1', 'POST 1.0 1']);
    assert.equal(app.stderr(), '');
  } finally {
    app.kill();
  }
});

for (const [hook, durations] of [
  ['diagnostics_channel', ['POST 200 - 1']],
  // Documented in README (HTTP details): the stock hook patches only the 'request' event.
  ['instrumentation-http', []],
] as const) {
  test(`Expect: 100-continue on a server with a checkContinue listener, ${hook} hook: ${durations.length ? 'timed' : 'not timed'}`, async () => {
    const { app, appPort, scrape } = await startServer('continue-server.js', { PROMOTEL_HTTP_SERVER_HOOK: hook });
    try {
      const client = await rawClient(appPort, 'POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n');
      await eventually(async () => client.received().includes('100 Continue'));
      client.socket.write('abc');
      await eventually(async () => client.received().includes('200 OK'));
      client.socket.destroy();
      const s = await eventually(async () => {
        const s = summary(await scrape());
        return s.active.length > 0 ? s : undefined;
      });
      assert.deepEqual(s, { durations: [...durations], active: ['POST 0'] });
      assert.equal(app.stderr(), '');
    } finally {
      app.kill();
    }
  });
}

test('the hook adds one close listener per connection, however many requests it carries, sequential or pipelined', async () => {
  const server = createServer((req, res) => {
    req.resume();
    setTimeout(() => res.end('ok'), req.url === '/slow' ? 30 : 0);
  });
  const connections: Socket[] = [];
  server.on('connection', (s: Socket) => connections.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  /** Close listeners on the server's side of a fresh connection after `payload`, once `responses` came back. */
  const closeListeners = async (payload: string, responses: number): Promise<number> => {
    const client = await rawClient(port, payload);
    await untilOk(client, responses);
    const count = connections.at(-1)!.listenerCount('close');
    client.socket.destroy();
    return count;
  };
  const sequential = async (): Promise<number> => {
    const client = await rawClient(port, GET('/a'));
    for (let i = 1; i <= 3; i++) {
      await untilOk(client, i);
      if (i < 3) client.socket.write(GET('/a'));
    }
    const count = connections.at(-1)!.listenerCount('close');
    client.socket.destroy();
    return count;
  };
  try {
    const bare = { sequential: await sequential(), pipelined: await closeListeners(GET('/slow') + GET('/a'), 2) };
    const stop = enableHttpServerMetrics(() => undefined, { duration: true, cardinalityLimit: 2000, scope: { name: 'test', version: '0' } });
    try {
      assert.deepEqual(
        { sequential: await sequential(), pipelined: await closeListeners(GET('/slow') + GET('/a'), 2) },
        { sequential: bare.sequential + 1, pipelined: bare.pipelined + 1 },
      );
    } finally {
      stop();
    }
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

test('a pipelined connection lets go of each queued response once it is sent, not when the connection closes', async () => {
  const gc = exposedGc();
  const responses: Array<WeakRef<ServerResponse>> = [];
  const server = createServer((req, res) => {
    responses.push(new WeakRef(res));
    setTimeout(() => res.end('ok'), req.url === '/slow' ? 30 : 0);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const stop = enableHttpServerMetrics(() => undefined, { duration: true, cardinalityLimit: 2000, scope: { name: 'test', version: '0' } });
  try {
    // Five queued behind the slow one, then the connection stays open.
    const client = await rawClient((server.address() as { port: number }).port, GET('/slow') + GET('/a').repeat(5));
    await untilOk(client, 6);
    await new Promise((r) => setImmediate(r));
    gc();
    assert.deepEqual(responses.slice(1, 5).map((r) => r.deref() === undefined), [true, true, true, true]);
    client.socket.destroy();
  } finally {
    stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

test('stopping the hook puts ServerResponse.prototype.detachSocket back', () => {
  const original = ServerResponse.prototype.detachSocket;
  const stop = enableHttpServerMetrics(() => undefined, { duration: true, cardinalityLimit: 2000, scope: { name: 'test', version: '0' } });
  assert.notEqual(ServerResponse.prototype.detachSocket, original);
  stop();
  assert.equal(ServerResponse.prototype.detachSocket, original);
});

test('a response the hook cannot read is still detached: keep-alive goes on, one warning', async () => {
  const server = createServer((req, res) => {
    req.resume();
    if (req.url === '/unreadable') Object.defineProperty(res, 'headersSent', { get: () => { throw new Error('unreadable response'); } });
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const stderr = captureStderr();
  const stop = enableHttpServerMetrics(() => undefined, { duration: true, cardinalityLimit: 2000, scope: { name: 'test', version: '0' } });
  try {
    const client = await rawClient(port, GET('/unreadable'));
    await untilOk(client, 1);
    client.socket.write(GET('/unreadable') + GET('/a'));
    await untilOk(client, 3);
    client.socket.destroy();
    assert.deepEqual(stderr.lines, ['promotel warn: HTTP server metrics skipped a request: unreadable response; the request itself was served\n']);
  } finally {
    stop();
    stderr.restore();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

test('a keep-alive connection times each request from its own start, idle gaps and pipelining included', async () => {
  const server = createServer((req, res) => {
    req.resume();
    if (req.url === '/hang') return;
    setTimeout(() => res.end('ok'), req.url === '/slow' ? 300 : 0);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  let producer: MetricProducer | undefined;
  const stop = enableHttpServerMetrics((p) => (producer = p), { duration: true, cardinalityLimit: 2000, scope: { name: 'test', version: '0' } });
  type Point = { attributes: Record<string, unknown>; value: { count: number; buckets: { boundaries: number[]; counts: number[] } } };
  const collect = async (): Promise<{ durations: Point[]; active: number }> => {
    const [durations, active] = (await producer!.collect()).resourceMetrics.scopeMetrics[0]!.metrics;
    return { durations: (durations?.dataPoints ?? []) as Point[], active: active?.dataPoints[0]?.value as number };
  };
  try {
    const client = await rawClient(port, GET('/slow'));
    await untilOk(client, 1);
    // Idle for as long as /slow took: a start time left over from it would make /a look slow.
    await new Promise((r) => setTimeout(r, 300));
    client.socket.write(GET('/a'));
    await untilOk(client, 2);
    // /a queued behind /slow waits for it: both over 0.25 s.
    client.socket.write(GET('/slow') + GET('/a'));
    await untilOk(client, 4);
    client.socket.write(GET('/hang'));
    await eventually(async () => (await collect()).active === 1);
    client.socket.destroy();
    const { durations } = await eventually(async () => {
      const c = await collect();
      return c.active === 0 ? c : undefined;
    });
    const upTo = (p: Point, le: number): number => p.value.buckets.counts.slice(0, p.value.buckets.boundaries.indexOf(le) + 1).reduce((a, b) => a + b, 0);
    const ok = durations.find((p) => p.attributes['http.response.status_code'] === 200 && p.attributes['error.type'] === undefined)!;
    assert.deepEqual({ count: ok.value.count, fast: upTo(ok, 0.25), slow: upTo(ok, 2.5) - upTo(ok, 0.25) }, { count: 4, fast: 1, slow: 3 });
    assert.deepEqual(
      durations.filter((p) => p !== ok).map((p) => [p.attributes['http.response.status_code'], p.attributes['error.type'], p.value.count]),
      [[undefined, 'aborted', 1]],
    );
  } finally {
    stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

test('a method past the limit of http_server_active_requests has its durations in the overflow series, never in one without method and scheme', async () => {
  const server = createServer((req, res) => {
    if (req.url !== '/hang') res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  let producer: MetricProducer | undefined;
  // Limit 4: three methods of their own, then the overflow series.
  const stop = enableHttpServerMetrics((p) => (producer = p), { duration: true, cardinalityLimit: 4, scope: { name: 'test', version: '0' } });
  const clients: Array<{ socket: Socket }> = [];
  try {
    for (const method of ['GET', 'POST', 'PUT']) clients.push(await rawClient(port, `${method} /hang HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`));
    const last = await rawClient(port, 'DELETE /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
    clients.push(last);
    await untilOk(last, 1);
    const { resourceMetrics } = await producer!.collect();
    const durations = resourceMetrics.scopeMetrics[0]!.metrics.find((m) => m.descriptor.name === 'http.server.request.duration')!;
    assert.deepEqual(durations.dataPoints.map((p) => p.attributes), [{ 'otel.metric.overflow': true }]);
  } finally {
    stop();
    for (const c of clients) c.socket.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
