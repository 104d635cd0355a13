// HTTP server metrics from node:diagnostics_channel. Node publishes
// `http.server.request.start` for every request of every node:http and
// node:https server; subscribing costs nothing per request when unused and
// needs no monkey-patching, so it works the same for CommonJS and ES modules.
//
// Metric table (OTel stable HTTP semantic conventions):
// | OTel name                      | type          | unit | attributes |
// | http.server.request.duration   | histogram     | s    | http.request.method, url.scheme, http.response.status_code, http.route, network.protocol.version, error.type |
// | http.server.active_requests    | updowncounter | {request} | http.request.method, url.scheme |
//
// Per request this does two Map lookups and a few property writes; the
// aggregation lives in HttpServerStore (see there for why not sdk-metrics).
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { context, trace, type Attributes } from '@opentelemetry/api';
import type { MetricProducer } from '@opentelemetry/sdk-metrics';
import { describeError, warnOnce } from '../log';
import type { Exemplar } from '../exposition/serialize';
import { exemplarFilter } from './exemplar-filter';
import { isOwnServer } from '../server';
import { expressRoute } from './express-route';
import { configureKnownMethods } from './http-semconv';
import { HttpServerStore, recordDuration, type ActiveCell } from './http-server-store';

// Not performance.now(), which checks its receiver's brand with a hasOwnProperty call on each read.
// The pair process.hrtime() returns is read at once into one double (seconds since boot, in steps of
// a few ns even after a year up), so that the optimizer drops the array; kept on the response, it would not.
const hrtime = process.hrtime;
function clockSeconds(): number {
  const t = hrtime();
  return t[0] + t[1] / 1e9;
}

const START = 'http.server.request.start';
// Per-request state rides on the response itself: cheaper than a WeakMap entry.
const STARTED = Symbol('promotel.started');
const CELL = Symbol('promotel.cell');
// On a connection: the pipelined responses that were queued behind another when they started.
const QUEUED = Symbol('promotel.queued');

interface StartMessage {
  request: IncomingMessage;
  response: ServerResponse;
  server: object;
}

type Tracked = ServerResponse & { [STARTED]?: number; [CELL]?: ActiveCell };
// `_httpMessage`: the response node:http is writing on the connection (an internal since Node 0.x).
type Connection = NonNullable<IncomingMessage['socket']> & { [QUEUED]?: Tracked[]; _httpMessage?: unknown; encrypted?: boolean };

export interface HttpServerOptions {
  /** False when instrumentation-http records the duration: then only active requests are counted here. */
  duration: boolean;
  /** Series per metric, overflow series included (PROMOTEL_CARDINALITY_LIMIT). */
  cardinalityLimit: number;
  scope: { name: string; version: string };
}

/** Starts counting; the metrics reach a reader through `addProducer`. Returns the function that stops it. */
export function enableHttpServerMetrics(addProducer: (p: MetricProducer) => void, options: HttpServerOptions): () => void {
  configureKnownMethods();
  const store = new HttpServerStore(options.scope, options.cardinalityLimit, options.duration);
  addProducer(store);
  const withDuration = options.duration;

  function onClose(this: Tracked): void {
    try {
      const cell = this[CELL];
      if (cell === undefined) return;
      this[CELL] = undefined;
      cell.value--;
      if (!withDuration) return;
      const seconds = clockSeconds() - this[STARTED]!;
      const aborted = !this.writableFinished;
      const status = this.headersSent ? this.statusCode : 0;
      const req = this.req;
      const route = expressRoute(req);
      const errorType = aborted ? 'aborted' : status >= 500 ? String(status) : '';
      // HTTP/1.1 told by the parser's numbers: httpVersion is a string built anew for every request.
      const plain = route === undefined && errorType === '' && req?.httpVersionMajor === 1 && req.httpVersionMinor === 1;
      const version = plain ? '1.1' : req?.httpVersion ?? '';
      const key = plain ? '' : `${status} ${version} ${errorType} ${route ?? ''}`;
      let target = plain ? cell.plain[status] : cell.outcomes.get(key);
      if (target === undefined) {
        const method = cell.attributes['http.request.method'] as string;
        const scheme = cell.attributes['url.scheme'] as string;
        const attrs: Attributes = { 'http.request.method': method, 'url.scheme': scheme };
        if (status) attrs['http.response.status_code'] = status;
        if (route !== undefined) attrs['http.route'] = route;
        if (version) attrs['network.protocol.version'] = version;
        if (errorType) attrs['error.type'] = errorType;
        target = store.newDurationCell(Object.freeze(attrs));
        if (plain) cell.plain[status] = target;
        else cell.outcomes.set(key, target);
      }
      recordDuration(target, seconds, exemplar(seconds));
    } catch (err) {
      warnOnce(`http-server:${describeError(err)}`, `HTTP server metrics skipped a request: ${describeError(err)}; the request itself was served`);
    }
  }

  // A throw inside a diagnostics_channel subscriber is rethrown on the next
  // tick as an uncaught exception, so nothing may escape this function.
  function onStart(message: unknown): void {
    try {
      const { request, response, server } = message as StartMessage;
      if (isOwnServer(server)) return;
      const socket = request.socket as Connection;
      const cell = store.activeCell(request.method, socket?.encrypted === true);
      cell.value++;
      const tracked = response as Tracked;
      tracked[STARTED] = clockSeconds();
      tracked[CELL] = cell;
      // 'close' comes after 'finish', and also when the client goes away first, so active_requests never leaks.
      response.on('close', onClose);
      // ...except for a pipelined response queued behind an unfinished one: if the client hangs up, Node
      // emits nothing on it. node:http publishes before it hands any response the connection (20 to 24),
      // so a queued response is one whose connection is busy with another, not one without a socket.
      // Rare (pipelining), so the check is all the common path pays.
      const current = socket._httpMessage;
      if (current != null && current !== response) watchQueued(socket, tracked);
    } catch (err) {
      warnOnce(`http-server:${describeError(err)}`, `HTTP server metrics skipped a request: ${describeError(err)}; the request itself was served`);
    }
  }

  /**
   * Ends a queued response (as aborted, unless it finished) when its connection closes. One listener
   * per connection, not per request: a deep pipeline would otherwise trip MaxListenersExceededWarning.
   * Not the request's 'close': that comes as soon as the app has read the body, with the connection alive.
   */
  function watchQueued(socket: Connection, response: Tracked): void {
    let queued = socket[QUEUED];
    if (queued === undefined) {
      queued = socket[QUEUED] = [];
      socket.once('close', () => {
        for (const r of socket[QUEUED]!) onClose.call(r);
        socket[QUEUED] = [];
      });
    } else if (queued.length >= 16) {
      // A long keep-alive connection must not hold every response it ever queued.
      queued = socket[QUEUED] = queued.filter((r) => r[CELL] !== undefined);
    }
    queued.push(response);
  }

  subscribe(START, onStart);
  return () => unsubscribe(START, onStart);
}

// Where every @opentelemetry/api 1.x copy keeps what the app registers. With
// no context manager there, context.active() can only be the empty root
// context, so no request runs under a span and the lookup below, about 30%
// of this hook's time in bench/hook.mjs, is skipped. A context manager
// registered later is seen from the next request on.
const API_GLOBAL: unique symbol = Symbol.for('opentelemetry.js.api.1');
const apiGlobal = globalThis as { [API_GLOBAL]?: { context?: unknown } };

/**
 * The span the response was ended under, if the application traces and
 * OTEL_METRICS_EXEMPLAR_FILTER lets it through: trace_based wants the span
 * sampled, always_on takes any span. 'close' runs in the async context of
 * `res.end()`, so the app's active span is visible here. With no span there
 * is no trace id to link to, so even always_on records nothing.
 */
function exemplar(seconds: number): Exemplar | undefined {
  const filter = exemplarFilter;
  if (filter === 'always_off' || apiGlobal[API_GLOBAL]?.context === undefined) return undefined;
  const span = trace.getSpan(context.active());
  if (span === undefined) return undefined;
  const sc = span.spanContext();
  if ((filter === 'trace_based' && (sc.traceFlags & 1) === 0) || !/^[0-9a-f]{32}$/.test(sc.traceId) || sc.traceId === '00000000000000000000000000000000') return undefined;
  return { value: seconds, traceId: sc.traceId, spanId: sc.spanId, timeSeconds: Date.now() / 1000 };
}
