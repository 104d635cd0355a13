// HTTP server metrics from node:diagnostics_channel. Node publishes
// `http.server.request.start` for every request of every node:http and
// node:https server; subscribing costs nothing per request when unused and
// needs no monkey-patching, so it works the same for CommonJS and ES modules.
//
// Metric table (OTel stable HTTP semantic conventions):
// | OTel name                      | type          | unit | attributes |
// | http.server.request.duration   | histogram     | s    | http.request.method, url.scheme, http.response.status_code, http.route, network.protocol.version, error.type |
// | http.server.active_requests    | updowncounter | {request} | http.request.method, url.scheme |
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Attributes, Histogram, Meter, UpDownCounter } from '@opentelemetry/api';
import { describeError, warnOnce } from '../log';
import { ownServers } from '../server';
import { DURATION_BUCKETS, expressRoute, normalizeMethod } from './http-semconv';

const START = 'http.server.request.start';

interface StartMessage {
  request: IncomingMessage;
  response: ServerResponse;
  server: object;
}

interface Tracked {
  start: number;
  method: string;
  scheme: string;
  active: Attributes;
}

export interface HttpServerOptions {
  /** False when instrumentation-http records the duration: then only active requests are counted here. */
  duration: boolean;
}

// Attribute objects are interned: sdk-metrics hashes attributes on every
// record, and reusing one frozen object per label set spares an allocation.
const MAX_INTERNED = 4096;

export function enableHttpServerMetrics(meter: Meter, options: HttpServerOptions): () => void {
  const active: UpDownCounter = meter.createUpDownCounter('http.server.active_requests', {
    description: 'Number of active HTTP server requests.',
    unit: '{request}',
  });
  const duration: Histogram | undefined = options.duration
    ? meter.createHistogram('http.server.request.duration', {
        description: 'Duration of HTTP server requests.',
        unit: 's',
        advice: { explicitBucketBoundaries: DURATION_BUCKETS },
      })
    : undefined;

  const tracked = new WeakMap<ServerResponse, Tracked>();
  const activeAttrs = new Map<string, Attributes>();
  const durationAttrs = new Map<string, Attributes>();

  function onClose(this: ServerResponse): void {
    try {
      const t = tracked.get(this);
      if (t === undefined) return;
      tracked.delete(this);
      active.add(-1, t.active);
      if (duration === undefined) return;
      const seconds = (performance.now() - t.start) / 1000;
      const aborted = !this.writableFinished;
      const status = this.headersSent ? this.statusCode : 0;
      const route = expressRoute(this.req);
      const version = this.req?.httpVersion ?? '';
      const errorType = aborted ? 'aborted' : status >= 500 ? String(status) : '';
      const key = `${t.method}\u0000${t.scheme}\u0000${status}\u0000${route ?? ''}\u0000${version}\u0000${errorType}`;
      let attrs = durationAttrs.get(key);
      if (attrs === undefined) {
        attrs = { 'http.request.method': t.method, 'url.scheme': t.scheme };
        if (status) attrs['http.response.status_code'] = status;
        if (route !== undefined) attrs['http.route'] = route;
        if (version) attrs['network.protocol.version'] = version;
        if (errorType) attrs['error.type'] = errorType;
        Object.freeze(attrs);
        if (durationAttrs.size < MAX_INTERNED) durationAttrs.set(key, attrs);
      }
      duration.record(seconds, attrs);
    } catch (err) {
      warnOnce(`http-server:${describeError(err)}`, `HTTP server metrics skipped a request: ${describeError(err)}; the request itself was served`);
    }
  }

  // A throw inside a diagnostics_channel subscriber is rethrown on the next
  // tick as an uncaught exception, so nothing may escape this function.
  function onStart(message: unknown): void {
    try {
      const { request, response, server } = message as StartMessage;
      if (ownServers.has(server)) return;
      const method = normalizeMethod(request.method);
      const scheme = (request.socket as { encrypted?: boolean } | undefined)?.encrypted ? 'https' : 'http';
      const key = `${method} ${scheme}`;
      let attrs = activeAttrs.get(key);
      if (attrs === undefined) {
        attrs = Object.freeze({ 'http.request.method': method, 'url.scheme': scheme });
        activeAttrs.set(key, attrs);
      }
      tracked.set(response, { start: performance.now(), method, scheme, active: attrs });
      active.add(1, attrs);
      // 'close' comes after 'finish', and also when the client goes away first, so active_requests never leaks.
      response.on('close', onClose);
    } catch (err) {
      warnOnce(`http-server:${describeError(err)}`, `HTTP server metrics skipped a request: ${describeError(err)}; the request itself was served`);
    }
  }

  subscribe(START, onStart);
  return () => unsubscribe(START, onStart);
}
