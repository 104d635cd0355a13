// Outgoing HTTP/2 requests: streams opened with session.request() on a
// session from node:http2's connect(), which is what @grpc/grpc-js uses.
// instrumentation-http does not see them, and Node 20 publishes nothing for
// them. fetch() over HTTP/2 (undici's allowH2, the default on Node 26) is
// fetch's: http-fetch.ts measures it, so its sessions are skipped here.
//
// node:http2 is not loaded for this. builtin-load.ts says when the app has
// loaded it: at its require(); for an app whose entry is an ES module, as an
// import resolves it (Node 22.15+); otherwise after an ES module's import, at
// the app's next listen(). Then `connect` on the module object is wrapped: the first
// session it returns shows the session class, whose `request` is wrapped for
// good, so every session is measured from then on, whichever `connect` made
// it. Not syncBuiltinESMExports(), which would hand ES modules every change
// made to any builtin's CommonJS exports: so without the resolve hook an ES module's
// named import of `connect` is not the wrapper, and its sessions are measured
// only once some session came through the module object (the default import,
// require()).
//
// Metric table (OTel stable HTTP semantic conventions, the instrument of http-fetch.ts):
// | OTel name                      | type      | unit | attributes |
// | http.client.request.duration   | histogram | s    | http.request.method, server.address, server.port, url.scheme, network.protocol.version ("2"), http.response.status_code, error.type |
//
// A request runs from request() to the stream's 'close', which comes once its
// response has been read whole, or when it was cut off.
import { promisify } from 'node:util';
import type { Attributes, Histogram, Meter } from '@opentelemetry/api';
import { watchListen } from '../app-listen';
import { entryIsModule, hasResolveHooks, onBuiltinLoad } from '../builtin-load';
import { describeError, warnOnce, warnSkipped } from '../log';
import { clientDuration, clientErrorType, configureKnownMethods, normalizeMethod } from './http-semconv';

const START = Symbol('promotel.start');
const STATUS = Symbol('promotel.status');
const ENDED = Symbol('promotel.ended');
/** On a session undici made for fetch(). */
const FETCH = Symbol('promotel.fetch');
// Where undici runs: Node's bundled copy, or the npm package.
const UNDICI_FRAME = /node:internal\/deps\/undici\/|[\\/]node_modules[\\/]undici[\\/]/;

type Fn = (this: unknown, ...args: unknown[]) => unknown;
interface Http2Module {
  connect: Fn;
}
/** The parts of a ClientHttp2Stream read here (node:http2 is not loaded to get its types). */
interface Stream {
  sentHeaders?: Record<string, unknown>;
  errored?: unknown;
  rstCode?: number;
  destroyed?: boolean;
  on(event: string, listener: (this: Stream, ...args: never[]) => void): unknown;
  [START]?: number;
  [STATUS]?: number;
  /** True when the response's end came from the server, false when Node ended it as it destroyed the stream. */
  [ENDED]?: boolean;
}
interface Session {
  [FETCH]?: true;
}

/** `meter` is called at the first finished request, so that watching does not load the SDK. */
export function enableHttp2ClientMetrics(meter: () => Meter): () => void {
  configureKnownMethods();
  let duration: Histogram | undefined;
  let active = true;
  const undo: Array<() => void> = [];

  function onResponse(this: Stream, headers: Record<string, unknown>): void {
    const status = Number(headers?.[':status']);
    if (Number.isInteger(status)) this[STATUS] = status;
  }

  function onEnd(this: Stream): void {
    // A stream destroyed mid-body ends too (Node pushes the end as it destroys it), but destroyed by then.
    this[ENDED] = this.destroyed !== true;
  }

  function onClose(this: Stream): void {
    try {
      const start = this[START];
      if (start === undefined || !active) return;
      this[START] = undefined;
      const headers = this.sentHeaders ?? {};
      // CONNECT sends no :scheme (and an :authority with a port): no url.scheme then.
      const scheme = headers[':scheme'] === 'http' || headers[':scheme'] === 'https' ? headers[':scheme'] : undefined;
      const [address, port] = splitAuthority(headers[':authority'] ?? headers.host, scheme ?? 'https');
      const attributes: Attributes = {
        'http.request.method': normalizeMethod(typeof headers[':method'] === 'string' ? headers[':method'] : undefined),
        'server.address': address,
        'server.port': port,
      };
      if (scheme !== undefined) attributes['url.scheme'] = scheme;
      attributes['network.protocol.version'] = '2';
      const status = this[STATUS] ?? 0;
      if (status) attributes['http.response.status_code'] = status;
      const errorType = streamErrorType(this, status);
      if (errorType) attributes['error.type'] = errorType;
      (duration ??= clientDuration(meter())).record((performance.now() - start) / 1000, attributes);
    } catch (err) {
      warnSkipped('HTTP/2 client metrics', err, 'went on');
    }
  }

  function track(stream: Stream): void {
    // Listeners, never an 'error' one: that would keep an unhandled stream error from reaching the app.
    if (typeof stream?.on !== 'function') return;
    stream[START] = performance.now();
    stream.on('response', onResponse);
    stream.on('end', onEnd);
    stream.on('close', onClose);
  }

  /** Wraps `request` on the class of a session that node:http2's `connect` returned, once. */
  let classWrapped = false;
  function seeSession(session: unknown): void {
    if (classWrapped || session === null || typeof session !== 'object') return;
    const proto = Object.getPrototypeOf(session) as { request?: Fn } | null;
    if (proto === null || typeof proto.request !== 'function' || !Object.prototype.hasOwnProperty.call(proto, 'request')) return;
    const original = proto.request;
    const wrapper = sameShape(function (this: unknown) {
      // eslint-disable-next-line prefer-rest-params
      const stream = original.apply(this, arguments as unknown as unknown[]);
      if (active && (this as Session | undefined)?.[FETCH] !== true) {
        try {
          track(stream as Stream);
        } catch (err) {
          warnSkipped('HTTP/2 client metrics', err, 'went on');
        }
      }
      return stream;
    }, original);
    proto.request = wrapper;
    classWrapped = true;
    undo.push(() => {
      if (proto.request === wrapper) proto.request = original;
    });
  }

  /** Sees a session `connect` made: the session class, and whether undici made it for fetch(). */
  function onSession(session: unknown, fromUndici: boolean): void {
    try {
      if (fromUndici && session !== null && typeof session === 'object') (session as Session)[FETCH] = true;
      seeSession(session);
    } catch (err) {
      warnSkipped('HTTP/2 client metrics', err, 'went on');
    }
  }

  function wrapConnect(exports: unknown): void {
    const http2 = exports as Http2Module;
    const original = http2.connect;
    if (typeof original !== 'function') return;
    const custom = (original as unknown as Record<symbol, unknown>)[promisify.custom];
    // Stays for good, to tell undici's sessions (a stack read per session, not per request).
    const wrapper = sameShape(function (this: unknown) {
      const fromUndici = calledFromUndici();
      // eslint-disable-next-line prefer-rest-params
      const session = original.apply(this, arguments as unknown as unknown[]);
      onSession(session, fromUndici);
      return session;
    }, original);
    // util.promisify(connect) resolves with the session once it is connected.
    if (typeof custom === 'function') {
      Object.defineProperty(wrapper, promisify.custom, {
        value: (...args: unknown[]) => {
          const fromUndici = calledFromUndici();
          return (custom as (...a: unknown[]) => Promise<unknown>)(...args).then((session) => {
            onSession(session, fromUndici);
            return session;
          });
        },
      });
    }
    http2.connect = wrapper;
    undo.push(() => {
      if (http2.connect === wrapper) http2.connect = original;
    });
  }

  const watch = onBuiltinLoad(
    'http2',
    (exports) => {
      try {
        wrapConnect(exports);
      } catch (err) {
        couldNotStart(err);
      }
    },
    // entryIsModule reads files: only where there is a hook to choose.
    { resolveHooks: hasResolveHooks && entryIsModule() },
  );
  // Where an ES module's import shows: as the app starts listening. Not at the next turn of the event
  // loop, which comes before an ES-module app has even been linked.
  const stopListen = watchListen(() => {
    // On Node 20.16+ this runs as a diagnostics_channel subscriber, where a throw would crash the app.
    try {
      watch.check();
    } catch (err) {
      couldNotStart(err);
    }
  });
  return () => {
    active = false;
    stopListen();
    watch.stop();
    for (const fn of undo.splice(0)) fn();
  };
}

/**
 * error.type: the stream's error (a refused connection reaches a stream waiting for it wrapped in
 * ERR_HTTP2_STREAM_CANCEL, whose cause is told instead); `aborted` for a stream closed without a
 * response or before its body ended; the status from 400 up, as on the other clients.
 */
function streamErrorType(stream: Stream, status: number): string {
  const err = stream.errored as { code?: unknown; cause?: unknown } | null | undefined;
  if (err != null) return clientErrorType(err.code === 'ERR_HTTP2_STREAM_CANCEL' && err.cause != null ? err.cause : err);
  if (status === 0 || stream[ENDED] !== true || (stream.rstCode ?? 0) !== 0) return 'aborted';
  return status >= 400 ? String(status) : '';
}

/** server.address and server.port of `host:port`, `[v6]:port`, a bare host, or the session's own `v6:port`. */
export function splitAuthority(authority: unknown, scheme: string): [string, number] {
  const fallback = scheme === 'http' ? 80 : 443;
  const text = typeof authority === 'string' ? authority : '';
  let host = text;
  let port = '';
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    host = text.slice(1, end === -1 ? undefined : end);
    if (end !== -1 && text[end + 1] === ':') port = text.slice(end + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon !== -1) {
      host = text.slice(0, colon);
      port = text.slice(colon + 1);
    }
  }
  const n = Number(port);
  return [host, port !== '' && Number.isInteger(n) && n >= 0 && n <= 65535 ? n : fallback];
}

function couldNotStart(err: unknown): void {
  warnOnce(`http2-client:${describeError(err)}`, `HTTP/2 client metrics could not start: ${describeError(err)}; HTTP/2 requests go unmeasured, the app is unaffected`);
}

/** `wrapper` with `original`'s name and length, which libraries may read. */
function sameShape<T extends Fn>(wrapper: T, original: Fn): T {
  Object.defineProperty(wrapper, 'name', { value: original.name, configurable: true });
  Object.defineProperty(wrapper, 'length', { value: original.length, configurable: true });
  return wrapper;
}

/** Whether undici is among the callers. Read as call sites, so that an app's Error.prepareStackTrace (source maps) is not run. */
function calledFromUndici(): boolean {
  const limit = Error.stackTraceLimit;
  const prepare = Error.prepareStackTrace;
  // connect's caller is the frame that matters; a few more for a wrapper between them.
  Error.stackTraceLimit = 6;
  Error.prepareStackTrace = (_error, sites) => sites;
  try {
    const sites = new Error().stack as unknown as NodeJS.CallSite[];
    return Array.isArray(sites) && sites.some((site) => UNDICI_FRAME.test(site.getFileName() ?? ''));
  } finally {
    Error.stackTraceLimit = limit;
    Error.prepareStackTrace = prepare;
  }
}
