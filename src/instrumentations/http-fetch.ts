// Outgoing requests made with fetch() (Node's bundled undici), which
// instrumentation-http does not see. undici publishes its lifecycle on
// node:diagnostics_channel, so no patching is needed here either.
//
// Metric table (OTel stable HTTP semantic conventions, same instrument name as instrumentation-http's):
// | OTel name                      | type      | unit | attributes |
// | http.client.request.duration   | histogram | s    | http.request.method, server.address, server.port, url.scheme, http.response.status_code, error.type |
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Attributes, Histogram, Meter } from '@opentelemetry/api';
import { warnSkipped } from '../log';
import { clientDuration, clientErrorType, configureKnownMethods, normalizeMethod } from './http-semconv';

interface UndiciRequest {
  origin?: string | URL;
  method?: string;
  path?: string;
  headers?: unknown;
}

interface Pending {
  start: number;
  attributes: Attributes;
}

/** `meter` is called at the first finished request, so that subscribing does not load the SDK. */
export function enableFetchMetrics(meter: () => Meter): () => void {
  configureKnownMethods();
  let duration: Histogram | undefined;
  const histogram = (): Histogram => (duration ??= clientDuration(meter()));
  const pending = new WeakMap<object, Pending>();

  const guarded =
    <T>(fn: (message: T) => void) =>
    (message: unknown): void => {
      // A throw in a diagnostics_channel subscriber would surface in the app as an uncaught exception.
      try {
        fn(message as T);
      } catch (err) {
        warnSkipped('fetch() metrics', err, 'went on');
      }
    };

  const finish = (request: object, extra: Attributes): void => {
    const p = pending.get(request);
    if (!p) return;
    pending.delete(request);
    histogram().record((performance.now() - p.start) / 1000, { ...p.attributes, ...extra });
  };

  const onCreate = guarded<{ request: UndiciRequest }>(({ request }) => {
    // fetch() refuses CONNECT: one here is undici opening a tunnel through a proxy (NODE_USE_ENV_PROXY,
    // a ProxyAgent) for the app's request, which is counted itself.
    if (request.method === 'CONNECT') return;
    // Through a forward proxy (Node 26's NODE_USE_ENV_PROXY for http: URLs) undici sends the whole URL as
    // the path to the proxy's origin: server.address is the server behind the proxy, as the conventions ask.
    const path = request.path;
    const origin = new URL(typeof path === 'string' && /^https?:\/\//i.test(path) ? path : String(request.origin));
    const scheme = origin.protocol.replace(':', '');
    const port = origin.port ? Number(origin.port) : scheme === 'https' ? 443 : 80;
    // URL keeps an IPv6 literal's brackets; server.address is the address itself.
    const address = origin.hostname.startsWith('[') ? origin.hostname.slice(1, -1) : origin.hostname;
    pending.set(request, {
      start: performance.now(),
      attributes: { 'http.request.method': normalizeMethod(request.method), 'server.address': address, 'server.port': port, 'url.scheme': scheme },
    });
  });
  const onHeaders = guarded<{ request: UndiciRequest; response: { statusCode: number } }>(({ request, response }) => {
    const p = pending.get(request);
    if (!p) return;
    const status = response.statusCode;
    p.attributes = { ...p.attributes, 'http.response.status_code': status, ...(status >= 400 ? { 'error.type': String(status) } : {}) };
  });
  const onDone = guarded<{ request: UndiciRequest }>(({ request }) => finish(request, {}));
  // Cancelled by the app or not, a fetch that rejects has failed (semantic conventions, recording errors).
  // A body cancelled with a reason that is not an error (the app's res.body.cancel('…'), or undici's own
  // when the app dropped a Response unread and it was garbage-collected) is a cancel all the same: undici
  // reports body.cancel() without a reason as an AbortError, and so is this, never the catch-all `Error`.
  const onError = guarded<{ request: UndiciRequest; error: unknown }>(({ request, error }) =>
    finish(request, { 'error.type': typeof error === 'object' && error !== null ? clientErrorType(error) : 'AbortError' }),
  );

  const subscriptions: Array<[string, (m: unknown) => void]> = [
    ['undici:request:create', onCreate],
    ['undici:request:headers', onHeaders],
    ['undici:request:trailers', onDone],
    ['undici:request:error', onError],
  ];
  for (const [channel, fn] of subscriptions) subscribe(channel, fn);
  return () => {
    for (const [channel, fn] of subscriptions) unsubscribe(channel, fn);
  };
}
