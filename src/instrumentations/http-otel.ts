// HTTP metrics through the stock @opentelemetry/instrumentation-http: always
// for outgoing requests (http.client.request.duration), and for incoming ones
// too when PROMOTEL_HTTP_SERVER_HOOK=instrumentation-http. In that mode the
// route comes from @opentelemetry/instrumentation-express, which needs an
// async context manager, so both are loaded only then.
//
// Metric table (OTel stable HTTP semantic conventions):
// | OTel name                      | type      | unit | attributes |
// | http.client.request.duration   | histogram | s    | http.request.method, server.address, server.port, http.response.status_code, network.protocol.version, error.type |
// | http.server.request.duration   | histogram | s    | (only in instrumentation-http mode; same attributes as the diagnostics_channel hook) |
import { syncBuiltinESMExports } from 'node:module';
import { isIPv6 } from 'node:net';
import { SpanKind, SpanStatusCode, context, type Attributes, type HrTime, type MeterProvider, type Span } from '@opentelemetry/api';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import { isOwnServer } from '../server';
import { clientErrorType } from './http-semconv';

export function enableOtelHttp(meterProvider: MeterProvider, options: { server: boolean }): () => void {
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http') as typeof import('@opentelemetry/instrumentation-http');
  const http = new HttpInstrumentation({
      disableIncomingRequestInstrumentation: !options.server,
      ignoreIncomingRequestHook: (req) => isOwnServer((req.socket as unknown as { server?: object }).server),
      // Telemetry about telemetry: the OTLP exporters' own pushes are not the app's traffic.
      ignoreOutgoingRequestHook: (options) => /OTel-OTLP-Exporter-JavaScript/.test(String((options.headers as Record<string, unknown> | undefined)?.['User-Agent'] ?? '')),
      startOutgoingSpanHook: (options) => {
        keepRawHeaders(options);
        return ipv6Host(options);
      },
  });
  errorTypeFromCode(http);
  const instrumentations: Instrumentation[] = [http];
  if (options.server) {
    const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks') as typeof import('@opentelemetry/context-async-hooks');
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const { ExpressInstrumentation } = require('@opentelemetry/instrumentation-express') as typeof import('@opentelemetry/instrumentation-express');
    instrumentations.push(new ExpressInstrumentation());
  }
  for (const i of instrumentations) {
    i.setMeterProvider(meterProvider);
    i.enable();
  }
  // Patch now rather than at the app's first require, then copy the patched
  // functions into the ES-module view of the builtins, so that
  // `import { request } from 'node:http'` is measured as well.
  require('node:http');
  require('node:https');
  syncBuiltinESMExports();
  return () => {
    for (const i of instrumentations) i.disable();
  };
}

/**
 * node:http takes an IPv6 literal in `host` as it is (`{ host: '::1' }`), and instrumentation-http 0.223
 * reads `host` up to the first colon: `server.address` became "localhost" for `::1` and "2001" for
 * `2001:db8::1`. The attributes this hook returns are laid over the request's, and the metric's
 * `server.address` is read from them after, so the literal is put back there (and on the span).
 */
function ipv6Host(options: unknown): Attributes {
  const { host, hostname } = options as { host?: unknown; hostname?: unknown };
  return typeof host === 'string' && hostname == null && isIPv6(host) ? { 'server.address': host } : NO_ATTRIBUTES;
}

const NO_ATTRIBUTES: Attributes = Object.freeze({});

/**
 * node:http takes `headers` as a raw list too (`['X-A', '1', 'Host', 'h']`, or pairs), sent as given, without
 * the Host and Authorization it would add to an object. instrumentation-http 0.223 copies `headers` with
 * Object.assign before the request, which turns the list into `{ 0: 'X-A', 1: '1', ... }`: the server got
 * headers named `0`, `1`, ... and none of the app's. This hook runs on the options instrumentation-http made
 * (a copy of the app's) before that copy, so the list is kept there, copied, through the assignment. Trace
 * context (an app's own propagator) is not added to such a request.
 */
function keepRawHeaders(options: unknown): void {
  const headers = (options as { headers?: unknown }).headers;
  if (!Array.isArray(headers)) return;
  const kept = headers.slice();
  Object.defineProperty(options, 'headers', { configurable: true, enumerable: true, get: () => kept, set: () => {} });
}

interface ClientErrorPath {
  _onOutgoingRequestError?: (span: Span, metricAttributes: Attributes, startTime: HrTime, error: Error) => void;
  _closeHttpSpan?: (span: Span, kind: SpanKind, startTime: HrTime, metricAttributes: Attributes) => void;
}

/**
 * instrumentation-http's error.type is the error's name: "Error" for every refused, reset, DNS or
 * TLS failure alike. Its one method that sets it on a failed client request is replaced by the same
 * steps with fetch()'s rule (the string code: ECONNREFUSED). The method is private in 0.223.0, which
 * package.json pins: should a release rename it, upstream's behaviour stays and
 * test/http-client.test.ts fails.
 */
function errorTypeFromCode(instrumentation: object): void {
  const target = instrumentation as ClientErrorPath;
  if (typeof target._onOutgoingRequestError !== 'function' || typeof target._closeHttpSpan !== 'function') return;
  target._onOutgoingRequestError = function (this: ClientErrorPath, span, metricAttributes, startTime, error) {
    // The span as upstream's setSpanWithError leaves it: only the metric attribute changes.
    span.setAttribute('error.type', error.name);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    span.recordException(error);
    metricAttributes['error.type'] = clientErrorType(error);
    this._closeHttpSpan!(span, SpanKind.CLIENT, startTime, metricAttributes);
  };
}
