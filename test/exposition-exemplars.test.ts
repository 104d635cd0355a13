// Exemplars: when the application traces (here a real sdk-trace-base tracer
// with the async-hooks context manager), the HTTP server duration histogram
// carries the trace and span of the request in OpenMetrics, on the bucket the
// duration fell in; the text format, which has no exemplars, stays plain.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { AlwaysOffSampler, BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { start } from '../src/agent';
import { get } from './helpers';

const PARSE = `
import sys, json
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        if s.exemplar:
            out.append([s.name, s.labels, s.exemplar.labels, s.exemplar.value])
json.dump(out, sys.stdout)
`;

/** The exemplars of an OpenMetrics scrape, as prometheus_client parses them. */
function exemplarsOf(om: string): Array<[string, Record<string, string>, Record<string, string>, number]> {
  const res = spawnSync('/usr/bin/python3', ['-c', PARSE], { input: om, encoding: 'utf8', timeout: 30_000 });
  assert.equal(res.status, 0, res.stderr);
  return JSON.parse(res.stdout) as Array<[string, Record<string, string>, Record<string, string>, number]>;
}

// The hook skips the span lookup while no context manager is registered, so
// one that the app registers after the preload must still be noticed.
test('a context manager registered after the agent started is noticed', { timeout: 30_000 }, async () => {
  const agent = start({ port: 0, host: '127.0.0.1', runtimeMetrics: false, hostMetrics: false }, {})!;
  const address = (await agent.listening)!;
  const tracer = new BasicTracerProvider().getTracer('exemplar-test');
  const ids: string[] = [];
  const app: Server = createServer((_req, res) => {
    tracer.startActiveSpan('handle', (span) => {
      ids.push(`${span.spanContext().traceId}/${span.spanContext().spanId}`);
      res.end('traced');
      span.end();
    });
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  try {
    const port = (app.address() as AddressInfo).port;
    const send = (): Promise<void> =>
      new Promise((resolve, reject) => request({ host: '127.0.0.1', port, agent: false }, (res) => res.resume().on('end', resolve)).on('error', reject).end());
    const scrape = async (): Promise<string> => (await get(`http://127.0.0.1:${address.port}/metrics`, { headers: { Accept: 'application/openmetrics-text; version=1.0.0' } })).body;
    await send(); // no context manager yet: the span is not active while the response ends
    assert.deepEqual(exemplarsOf(await scrape()), []);
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    await send();
    const exemplars = exemplarsOf(await scrape());
    assert.equal(exemplars.length, 1, JSON.stringify(exemplars));
    assert.equal(`${exemplars[0]![2].trace_id}/${exemplars[0]![2].span_id}`, ids[1]);
  } finally {
    app.close();
    await agent.shutdown();
    context.disable();
  }
});

test('a request served under a sampled span leaves its trace as an exemplar', { timeout: 30_000 }, async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const tracer = new BasicTracerProvider().getTracer('exemplar-test');
  trace.setGlobalTracerProvider(new BasicTracerProvider());
  const agent = start({ port: 0, host: '127.0.0.1', runtimeMetrics: false, hostMetrics: false }, {})!;
  const address = (await agent.listening)!;
  const ids: string[] = [];
  const app: Server = createServer((req, res) => {
    if (req.url === '/untraced') {
      res.end('plain');
      return;
    }
    tracer.startActiveSpan('handle', (span) => {
      ids.push(`${span.spanContext().traceId}/${span.spanContext().spanId}`);
      res.end('traced');
      span.end();
    });
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  try {
    const port = (app.address() as AddressInfo).port;
    const send = (path: string): Promise<void> =>
      new Promise((resolve, reject) => request({ host: '127.0.0.1', port, path, agent: false }, (res) => res.resume().on('end', resolve)).on('error', reject).end());
    await send('/untraced');
    await send('/traced');
    const url = `http://127.0.0.1:${address.port}/metrics`;
    const om = (await get(url, { headers: { Accept: 'application/openmetrics-text; version=1.0.0' } })).body;
    const exemplars = exemplarsOf(om);
    assert.equal(exemplars.length, 1, JSON.stringify(exemplars));
    const [name, labels, ex, value] = exemplars[0]!;
    assert.equal(name, 'http_server_request_duration_seconds_bucket');
    assert.equal(`${ex.trace_id}/${ex.span_id}`, ids[0]);
    assert.ok(value > 0 && value <= Number(labels.le), `exemplar ${value} outside its bucket le=${labels.le}`);
    assert.equal(labels.http_response_status_code, '200');

    const text = (await get(url)).body;
    assert.doesNotMatch(text, /trace_id/);
  } finally {
    app.close();
    await agent.shutdown();
  }
});

// OTEL_METRICS_EXEMPLAR_FILTER: one request under a sampled span, one under an
// unsampled span, one under none (each with a status of its own, so a series
// of its own); which of them leave an exemplar.
for (const [filter, expected] of [
  ['trace_based', ['sampled']],
  ['always_on', ['sampled', 'unsampled']],
  ['always_off', []],
] as const) {
  test(`OTEL_METRICS_EXEMPLAR_FILTER=${filter}: exemplars from ${expected.length ? expected.join(' and ') + ' spans' : 'nothing'}`, { timeout: 30_000 }, async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const sampled = new BasicTracerProvider().getTracer('sampled');
    const unsampled = new BasicTracerProvider({ sampler: new AlwaysOffSampler() }).getTracer('unsampled');
    const agent = start({ port: 0, host: '127.0.0.1', runtimeMetrics: false, hostMetrics: false }, { OTEL_METRICS_EXEMPLAR_FILTER: filter })!;
    const address = (await agent.listening)!;
    const traces = new Map<string, string>();
    const app: Server = createServer((req, res) => {
      const kind = req.url!.slice(1);
      // One status per kind, so that each lands in a series of its own (an exemplar is kept per bucket).
      res.statusCode = kind === 'sampled' ? 200 : kind === 'unsampled' ? 201 : 202;
      if (kind === 'none') return void res.end();
      (kind === 'sampled' ? sampled : unsampled).startActiveSpan('handle', (span) => {
        traces.set(span.spanContext().traceId, kind);
        res.end();
        span.end();
      });
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    try {
      const port = (app.address() as AddressInfo).port;
      for (const path of ['/sampled', '/unsampled', '/none']) {
        await new Promise<void>((resolve, reject) => request({ host: '127.0.0.1', port, path, agent: false }, (res) => res.resume().on('end', resolve)).on('error', reject).end());
      }
      const om = (await get(`http://127.0.0.1:${address.port}/metrics`, { headers: { Accept: 'application/openmetrics-text; version=1.0.0' } })).body;
      const kinds = exemplarsOf(om).map(([, , ex]) => traces.get(ex.trace_id!)).sort();
      assert.deepEqual(kinds, [...expected]);
    } finally {
      app.close();
      await agent.shutdown();
      context.disable();
    }
  });
}
