// HTTP server metrics. A request starts at node:diagnostics_channel's
// `http.server.request.start`, which Node publishes for every request of every
// node:http and node:https server, CommonJS and ES modules alike. It ends where
// node:http detaches its response from the connection (one prototype method
// wrapped, see `detach`), or where that connection closes first. HTTP/2
// servers, which publish nothing there, are http2-server.ts's.
//
// Metric table (OTel stable HTTP semantic conventions):
// | OTel name                      | type          | unit | attributes |
// | http.server.request.duration   | histogram     | s    | http.request.method, url.scheme, http.response.status_code, http.route, network.protocol.version, error.type |
// | http.server.active_requests    | updowncounter | {request} | http.request.method, url.scheme |
//
// Per request this does one Map lookup, two property writes on the response
// and no allocation once its series exist; the aggregation lives in
// HttpServerStore (see there for why not sdk-metrics).
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { EventEmitter } from 'node:events';
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { MetricProducer } from '@opentelemetry/sdk-metrics';
import { warnSkipped } from '../log';
import { exemplar } from './exemplar-filter';
import { isOwnServer } from '../server';
import { expressRoute } from './express-route';
import { fastifyRoute, watchFastifyRoutes } from './fastify-route';
import { watchHttp2Servers } from './http2-server';
import { configureKnownMethods } from './http-semconv';
import { clockSeconds, HttpServerStore, recordDuration, type ActiveCell } from './http-server-store';

const START = 'http.server.request.start';
// Per-request state rides on the response itself: cheaper than a WeakMap entry.
const STARTED = Symbol('promotel.started');
const CELL = Symbol('promotel.cell');
// On a connection: set once its 'close' is watched, then holding the pipelined responses queued behind another until each finishes.
const QUEUED = Symbol('promotel.queued');
// On a pipelined response queued behind another: its connection's QUEUED.
const IN_QUEUE = Symbol('promotel.inQueue');
// On a response of an HTTP/1 request to a node:http2 server (allowHTTP1), which instrumentation-http does not see.
const OURS = Symbol('promotel.ours');

interface StartMessage {
  request: IncomingMessage;
  response: ServerResponse;
  server: object;
}

type Tracked = ServerResponse & { [STARTED]?: number; [CELL]?: ActiveCell; [OURS]?: boolean; [IN_QUEUE]?: Tracked[] };
type Detach = (this: ServerResponse, socket: unknown) => void;
// `_httpMessage`: the response node:http is writing on the connection (an internal since Node 0.x).
type Connection = NonNullable<IncomingMessage['socket']> & { [QUEUED]?: Tracked[]; _httpMessage?: unknown; encrypted?: boolean };

export interface HttpServerOptions {
  /** False when instrumentation-http records HTTP/1 durations: then only their active requests are counted here. */
  duration: boolean;
  /** Series per metric, overflow series included (PROMOTEL_CARDINALITY_LIMIT). */
  cardinalityLimit: number;
  scope: { name: string; version: string };
}

/** Starts counting; the metrics reach a reader through `addProducer`. Returns the function that stops it. */
export function enableHttpServerMetrics(addProducer: (p: MetricProducer) => void, options: HttpServerOptions): () => void {
  configureKnownMethods();
  const store = new HttpServerStore(options.scope, options.cardinalityLimit);
  addProducer(store);
  const withDuration = options.duration;

  /**
   * Records a response once: as Node detaches it from its finished connection, or as the connection
   * closes first. `sent`: a status Node wrote on the connection itself, bypassing the response.
   */
  function end(response: Tracked, aborted: boolean, sent?: number): void {
    const cell = response[CELL];
    if (cell === undefined) return;
    response[CELL] = undefined;
    cell.value--;
    if (!withDuration && response[OURS] !== true) return;
    const seconds = clockSeconds() - response[STARTED]!;
    const status = sent ?? (response.headersSent ? response.statusCode : 0);
    const req = response.req;
    const route = expressRoute(req) ?? fastifyRoute(req);
    const errorType = aborted ? 'aborted' : status >= 500 ? String(status) : '';
    // HTTP/1.1 told by the parser's numbers: httpVersion is a string built anew for every request.
    const plain = route === undefined && errorType === '' && req?.httpVersionMajor === 1 && req.httpVersionMinor === 1;
    const version = plain ? '1.1' : req?.httpVersion ?? '';
    let target = plain ? cell.plain[status] : undefined;
    if (target === undefined) {
      target = store.outcomeCell(cell, status, version, errorType, route);
      if (plain) cell.plain[status] = target;
    }
    recordDuration(target, seconds, exemplar(seconds));
  }

  // A throw inside a diagnostics_channel subscriber is rethrown on the next
  // tick as an uncaught exception, so nothing may escape this function.
  function onStart(message: unknown): void {
    try {
      const { request, response, server } = message as StartMessage;
      if (isOwnServer(server)) return;
      const socket = request.socket as Connection;
      const cell = store.activeCell(request.method, socket.encrypted === true);
      cell.value++;
      const tracked = response as Tracked;
      tracked[STARTED] = clockSeconds();
      tracked[CELL] = cell;
      // instrumentation-http wraps the emit of http.Server and https.Server only: not node:http2's servers.
      if (!withDuration && typeof (server as { updateSettings?: unknown }).updateSettings === 'function') tracked[OURS] = true;
      const queued = socket[QUEUED] ?? watch(socket);
      // node:http publishes before it hands any response the connection (20 to 24), so a response
      // queued behind an unfinished one (pipelining, rare) is one whose connection is busy with another.
      const current = socket._httpMessage;
      if (current != null && current !== response) {
        queued.push(tracked);
        tracked[IN_QUEUE] = queued;
      }
    } catch (err) {
      warnSkipped('HTTP server metrics', err, 'was served');
    }
  }

  /**
   * One 'close' listener per connection, however many requests it carries: when the connection closes
   * before a response finished (the client went away, a timeout, the app destroyed it), it ends the
   * response being written and the pipelined ones queued behind it, on which Node emits nothing.
   * Not the request's 'close': that comes as soon as the app has read the body, with the connection alive.
   */
  function watch(socket: Connection): Tracked[] {
    const queued: Tracked[] = (socket[QUEUED] = []);
    socket.on('close', onConnectionClose);
    return queued;
  }

  function onConnectionClose(this: Connection): void {
    try {
      const current = this._httpMessage as Tracked | null | undefined;
      // A request the server gave up on (its requestTimeout, a body that does not parse): Node writes its
      // own 408 or 400 straight onto the connection and destroys it. That was the server's answer, not a
      // client that went away; but only when nothing of the response was on the wire yet and no
      // 'clientError' listener of the app took the case (socketOnError in node:http).
      const answer = current?.headersSent === false && (this as { server?: EventEmitter }).server?.listenerCount('clientError') === 0 ? nodeAnswer(this.errored) : undefined;
      if (current != null) end(current, answer === undefined, answer);
      for (const r of this[QUEUED]!) end(r, true);
      this[QUEUED] = [];
    } catch (err) {
      warnSkipped('HTTP server metrics', err, 'was served');
    }
  }

  // The end of a response: node:http detaches it from its connection once it is sent whole, in the
  // 'finish' listener it adds to every response (Node 20 to 24 alike), or when it hands the connection
  // to another process. Not a 'close' listener per response: adding one is a dictionary store on the
  // response's _events and emitting it a call through EventEmitter, two thirds of what the hook cost
  // per request (bench/instructions.mjs: 1,280 instructions over bare with it, 415 without). Nor
  // diagnostics_channel's 'http.server.response.finish': its message object and publish cost more still.
  const proto = ServerResponse.prototype as ServerResponse & { detachSocket: Detach };
  const detachSocket = proto.detachSocket;
  const detach: Detach = function (this: Tracked, socket) {
    try {
      // Node emits 'finish' (and so detaches) also when the client reset the connection under the last
      // write: its pending write callbacks run with the error. Not `destroyed` alone: an app that ends the
      // response and destroys the socket at once has sent it whole, and its socket is destroyed too.
      if (this[CELL] !== undefined) end(this, !this.writableEnded || (socket as { errored?: unknown } | null)?.errored != null);
      // Pipelined responses finish in the order they were queued: let go of each as it does, not at the connection's close.
      const queued = this[IN_QUEUE];
      if (queued !== undefined) {
        while (queued.length !== 0 && queued[0]![CELL] === undefined) queued.shift();
        this[IN_QUEUE] = undefined;
      }
    } catch (err) {
      warnSkipped('HTTP server metrics', err, 'was served');
    }
    return detachSocket.call(this, socket);
  };
  proto.detachSocket = detach;

  subscribe(START, onStart);
  const stopHttp2 = watchHttp2Servers(store);
  const stopFastify = watchFastifyRoutes();
  return () => {
    stopFastify();
    stopHttp2();
    unsubscribe(START, onStart);
    // Only if nothing wrapped it since; otherwise ours stays, ending only responses that had started.
    if (proto.detachSocket === detach) proto.detachSocket = detachSocket;
  };
}

/** The status node:http answers a connection error with itself, when it does (its socketOnError). */
function nodeAnswer(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  // The parser's error at the end of the input (the client closed mid-request): Node still writes its 400, but to a client that went away.
  if (typeof code !== 'string' || !code.startsWith('HPE_') || code === 'HPE_INVALID_EOF_STATE') return undefined;
  return code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW' ? 413 : 400;
}
