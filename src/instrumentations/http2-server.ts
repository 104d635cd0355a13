// HTTP/2 server metrics: node:http2 servers, TLS and h2c, for the core
// 'stream' API and the compatibility 'request' API alike (the latter is built
// on the former). Same metrics, cells and attributes as the HTTP/1 hook
// (http-server.ts), with network.protocol.version "2" and no http.route.
//
// Node 20 publishes no diagnostics_channel event for HTTP/2 streams (they came
// in 2025, on the newest lines only), so each server class's `emit` is wrapped
// once, where the server tells its 'stream' listeners about a new request.
// Nothing is loaded for it: the wrap happens when the first HTTP/2 server
// calls listen(), which is before any stream can reach it. Loading node:http2
// up front would cost every app 9 ms and 2.3 MiB (measured on Node 20.20).
//
// Metric table (the series of http-server.ts, into the same cells):
// | OTel name                      | type          | unit | attributes |
// | http.server.request.duration   | histogram     | s    | http.request.method, url.scheme, http.response.status_code, network.protocol.version ("2"), error.type |
// | http.server.active_requests    | updowncounter | {request} | http.request.method, url.scheme |
//
// A request starts at the server's 'stream' event and ends at the stream's
// 'close', which comes for a complete response and for one cut off alike.
// Cut off: `stream.aborted` (the app had not ended its side), a writable side
// not finished (a body still being sent), or a reset with an error code (a
// file sent by nghttp2 itself, respondWithFile, whose writable side finished
// at once).
import { watchListen } from '../app-listen';
import { warnSkipped } from '../log';
import { exemplar } from './exemplar-filter';
import { clockSeconds, recordDuration, type ActiveCell, type HttpServerStore } from './http-server-store';

const STARTED = Symbol('promotel.started');
const CELL = Symbol('promotel.cell');

type Emit = (this: object, event: string | symbol, ...args: unknown[]) => boolean;
interface Prototype {
  emit: Emit;
}
/** The parts of a ServerHttp2Stream read here (node:http2 is not loaded to get its types). */
interface Stream {
  session?: { encrypted?: boolean } | null;
  headersSent?: boolean;
  sentHeaders?: Record<string, unknown>;
  aborted?: boolean;
  writableFinished?: boolean;
  /** The RST_STREAM code the stream closed with: 0 (NGHTTP2_NO_ERROR) when it ended as it should. */
  rstCode?: number;
  on(event: 'close', listener: (this: Stream) => void): unknown;
  [STARTED]?: number;
  [CELL]?: ActiveCell;
}

/** An Http2Server or Http2SecureServer: node:http2's two server classes have `updateSettings`, no other server has. */
function http2Prototype(server: object | undefined): Prototype | undefined {
  let proto: object | null = server === undefined ? null : Object.getPrototypeOf(server);
  for (; proto !== null; proto = Object.getPrototypeOf(proto)) {
    if (Object.prototype.hasOwnProperty.call(proto, 'updateSettings')) return proto as Prototype;
  }
  return undefined;
}

/** Counts the requests of every node:http2 server in this thread into `store`. Returns the function that stops it. */
export function watchHttp2Servers(store: HttpServerStore): () => void {
  const wrapped = new Map<Prototype, { original: Emit; wrapper: Emit; own: boolean }>();
  let active = true;

  function onStream(stream: Stream, headers: Record<string, unknown> | undefined): void {
    // Only what node:http2 emits: a 'stream' an app emits itself with something else must not count.
    if (typeof stream?.on !== 'function') return;
    const method = headers?.[':method'];
    const cell = store.activeCell(typeof method === 'string' ? method : undefined, stream.session?.encrypted === true);
    cell.value++;
    stream[STARTED] = clockSeconds();
    stream[CELL] = cell;
    stream.on('close', onClose);
  }

  function onClose(this: Stream): void {
    try {
      const cell = this[CELL];
      if (cell === undefined) return;
      this[CELL] = undefined;
      cell.value--;
      const seconds = clockSeconds() - this[STARTED]!;
      const sent = this.headersSent === true ? Number(this.sentHeaders?.[':status']) : 0;
      const status = Number.isInteger(sent) ? sent : 0;
      const cutOff = this.aborted === true || this.writableFinished === false || (this.rstCode ?? 0) !== 0;
      const errorType = cutOff ? 'aborted' : status >= 500 ? String(status) : '';
      let target = errorType === '' ? cell.plain2[status] : undefined;
      if (target === undefined) {
        target = store.outcomeCell(cell, status, '2', errorType, undefined);
        if (errorType === '') cell.plain2[status] = target;
      }
      recordDuration(target, seconds, exemplar(seconds));
    } catch (err) {
      warnSkipped('HTTP/2 server metrics', err, 'was served');
    }
  }

  function wrap(proto: Prototype): void {
    const own = Object.prototype.hasOwnProperty.call(proto, 'emit');
    const original = proto.emit;
    const wrapper: Emit = function (this: object, event: string | symbol) {
      if (event === 'stream' && active) {
        try {
          onStream(arguments[1] as Stream, arguments[2] as Record<string, unknown> | undefined);
        } catch (err) {
          warnSkipped('HTTP/2 server metrics', err, 'was served');
        }
      }
      // eslint-disable-next-line prefer-rest-params
      return original.apply(this, arguments as unknown as [string | symbol, ...unknown[]]);
    };
    proto.emit = wrapper;
    wrapped.set(proto, { original, wrapper, own });
  }

  const stopWatching = watchListen((message) => {
    try {
      const proto = http2Prototype(message.server);
      if (proto !== undefined && !wrapped.has(proto)) wrap(proto);
    } catch (err) {
      warnSkipped('HTTP/2 server metrics', err, 'was served');
    }
  });
  return () => {
    active = false;
    stopWatching();
    // Only where nothing wrapped it since; otherwise ours stays, passing every event on.
    for (const [proto, { original, wrapper, own }] of wrapped) {
      if (proto.emit !== wrapper) continue;
      if (own) proto.emit = original;
      else delete (proto as Partial<Prototype>).emit;
    }
  };
}
