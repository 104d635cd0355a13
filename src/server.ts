// The pull endpoint. It must never keep the host process alive (the listening
// socket and every accepted connection are unref'd) and never take it down
// (every failure becomes a warning and an HTTP error for the scraper only).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';
import { isIP, type AddressInfo } from 'node:net';
import { gzip } from 'node:zlib';
import { publishesListen, watchListen, type ListenMessage } from './app-listen';
import { describeError, info, warn, warnOnce } from './log';
import type { ScrapeResult } from './exposition/reader';

export const TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

// Marks the agent's own servers, which HTTP server metrics must not count. A property rather than
// a WeakSet: the hook asks about every request's server, and a missing property is the cheaper answer.
const OWN_SERVER = Symbol('promotel.ownServer');

/** Whether `server` is one of the agent's own (the metrics endpoint), which HTTP server metrics must not count. */
export function isOwnServer(server: object | undefined): boolean {
  return (server as { [OWN_SERVER]?: true } | undefined)?.[OWN_SERVER] === true;
}

export interface MetricsServer {
  server: Server;
  /** Resolves with the bound address, or undefined when the port could not be had. */
  listening: Promise<AddressInfo | undefined>;
  close(): Promise<void>;
}

export interface ServeOptions {
  host: string;
  port: number;
  /** `timeoutMs`: how long the metric callbacks may take, so that the answer comes before the scraper gives up. */
  scrape: (openMetrics: boolean, timeoutMs: number) => Promise<ScrapeResult>;
  /** Names the variables that move the endpoint, for the warning when the port is taken. */
  portVariable?: string;
  /** The same for the address, for the warning when it cannot be bound. */
  hostVariable?: string;
  /** Bind a port of our own even in a cluster worker, where listen() would otherwise share the primary's. */
  exclusive?: boolean;
  /** Said after the port-taken warning, when the situation has a better fix than another port. */
  hint?: string;
  /** The parent process whose promotel holds the port, when this process inherited the preload from it. */
  holderPid?: number;
  /** When the port is taken, try again this often (silently after the first warning) until it is free. */
  retryMs?: number;
  /** What the warning says happens next, when it is not the host application going on without an endpoint. */
  consequence?: string;
}

function failure(err: NodeJS.ErrnoException, options: ServeOptions, retrying: boolean): string {
  const where = `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`;
  const variable = options.portVariable ?? 'OTEL_EXPORTER_PROMETHEUS_PORT';
  const without = options.consequence
    ? `(${options.consequence})`
    : retrying
    ? `(the application keeps running without a metrics endpoint; promotel tries the port again every ${options.retryMs! / 1000} s)`
    : '(the application keeps running without a metrics endpoint)';
  if (err.code === 'EADDRINUSE') return `cannot serve metrics on ${where}: port ${options.port} is already in use; set ${variable} to a free port${options.hint ? ` ${options.hint}` : ''} ${without}`;
  if (err.code === 'EACCES') return `cannot serve metrics on ${where}: permission denied for port ${options.port}; set ${variable} to a port above 1023 ${without}`;
  return `cannot serve metrics on ${where}: ${describeError(err)}; check ${options.hostVariable ?? 'OTEL_EXPORTER_PROMETHEUS_HOST'} and ${variable} ${without}`;
}

/** How long the endpoint waits before it binds a host name (see serveMetrics). */
const NAME_LOOKUP_DELAY_MS = 1000;

export function serveMetrics(options: ServeOptions): MetricsServer {
  const server = createServer((req, res) => {
    try {
      route(req, res, options);
    } catch (err) {
      fail(res, err);
    }
  });
  (server as { [OWN_SERVER]?: true })[OWN_SERVER] = true;
  // Tracing agents (instrumentation-http, set up by an app's own SDK; others alike) wrap
  // http.Server.prototype.emit and would make every scrape a SERVER span of the app's traces. node:http
  // emits 'request' through the instance's emit, so an own one is the plain EventEmitter's, whoever wraps later.
  server.emit = EventEmitter.prototype.emit;
  server.keepAliveTimeout = 65_000; // longer than a typical scrape interval, so scrapers reuse connections
  server.on('connection', (socket) => socket.unref());
  server.on('clientError', (_err, socket) => socket.destroy());
  let retry: NodeJS.Timeout | undefined;
  let closed = false;
  // A warning has said the port is taken: when the retry gets it, that is said too.
  let down = false;
  let settle: (address: AddressInfo | undefined) => void = () => {};
  const listening = new Promise<AddressInfo | undefined>((resolve) => (settle = resolve));
  let pending: { onError: (err: NodeJS.ErrnoException) => void; onListening: () => void } | undefined;

  const scheduleRetry = (): void => {
    if (options.retryMs === undefined || closed) return;
    clearTimeout(retry);
    retry = setTimeout(attempt, options.retryMs);
    retry.unref();
  };
  const stopAttempt = (): void => {
    if (pending === undefined) return;
    server.removeListener('error', pending.onError);
    server.removeListener('listening', pending.onListening);
    pending = undefined;
  };
  // For good, whether the agent closes or gives its port to the app.
  const stopTrying = (): void => {
    closed = true;
    clearTimeout(retry);
    stopAttempt();
    unwatch();
  };
  function attempt(): void {
    stopAttempt();
    const onError = (err: NodeJS.ErrnoException): void => {
      stopAttempt();
      const retrying = err.code === 'EADDRINUSE' && options.retryMs !== undefined && !closed;
      if (!down) {
        down = true;
        warn(failure(err, options, retrying));
      }
      settle(undefined);
      // The holder may be gone soon: a process being replaced, a launcher that preloaded
      // promotel too (pm2's CLI before its daemon), the cluster worker that served until it died.
      if (retrying) scheduleRetry();
    };
    const onListening = (): void => {
      stopAttempt();
      const address = server.address() as AddressInfo;
      const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}/metrics`;
      if (down) warn(`the metrics endpoint is up after all: port ${options.port} is free now, serving metrics on ${url}`);
      else info(`serving metrics on ${url}`);
      down = false;
      settle(address);
    };
    pending = { onError, onListening };
    server.once('error', onError);
    server.once('listening', onListening);
    // listen() throws, rather than emitting 'error', for what it refuses outright (a port out of range).
    try {
      server.listen({ port: options.port, host: options.host, exclusive: options.exclusive ?? false });
    } catch (err) {
      onError(err as NodeJS.ErrnoException);
    }
  }
  // listen() looks a host name up first, and a lookup in flight holds the process until the DNS server
  // answers (seconds when it is slow or unreachable): a script that is done at once must not wait for
  // it. So a name is bound a moment later, on an unref'd timer that such a script never waits for.
  if (isIP(options.host) === 0) {
    retry = setTimeout(attempt, NAME_LOOKUP_DELAY_MS);
    retry.unref();
  } else attempt();
  server.unref();

  // The app listening on our port would otherwise die of EADDRINUSE once the
  // agent has bound it. The app wins. Closing a listening socket releases the
  // port at once, so the app's own bind then succeeds.
  const giveWay = (message: ListenMessage): void => {
    try {
      const { server: other, options: wanted } = message;
      if (closed || other === undefined || isOwnServer(other) || wanted === undefined) return;
      const port = wanted.port;
      if ((typeof port !== 'number' && typeof port !== 'string') || port === '' || Number(port) !== options.port) return;
      if (!overlaps(options.host, wanted.host, wanted.ipv6Only === true)) return;
      // For good: taking the port back when the app's server closes would race an app that
      // hands the port on (get-port for a child) or whose listen() still waits for DNS.
      stopTrying();
      // Also when not bound yet: close() cancels a listen() still resolving its host. Not before
      // Node 20.12 and 21.x (a CommonJS app listening as its main module runs comes just then), so on
      // the released versions that need the listen() wrapper the bind that ends the lookup, an
      // internal of node:net, is made a no-op on this server.
      if (!server.listening && !publishesListen()) (server as { _listen2?: () => void })._listen2 = () => {};
      server.close();
      server.closeAllConnections?.();
      settle(undefined);
      const variable = options.portVariable ?? 'OTEL_EXPORTER_PROMETHEUS_PORT';
      // Found in use when promotel tried it, or served by the parent this process inherited the
      // preload from (same variables, same port): another process holds it, and closing ours frees nothing.
      if (down || options.holderPid !== undefined) {
        const holder = options.holderPid !== undefined ? `its parent process (pid ${options.holderPid}), whose promotel serves metrics there` : 'another process';
        warn(`the application listens on port ${options.port}, the metrics port, which is held by ${holder}: the application's listen() fails with EADDRINUSE unless that process lets the port go; give the application another port, or set ${variable} to another port for that process`);
      } else {
        warn(`the application listens on port ${options.port}, the metrics port: promotel closed its endpoint there so that the application gets the port (metrics are still recorded); set ${variable} to a free port to serve them`);
      }
    } catch (err) {
      warnOnce('server:give-way', `promotel could not check the application's listen() against its metrics port: ${describeError(err)}`);
    }
  };
  // Port 0 asks for any free port: no app can ask for the same one.
  const unwatch = options.port !== 0 ? watchListen(giveWay) : () => {};

  return {
    server,
    listening,
    close: () =>
      new Promise<void>((resolve) => {
        stopTrying();
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}

const WILDCARDS = new Set(['', '0.0.0.0', '::']);

/** One spelling per address: IPv6 compressed (`0:0::1` is `::1`), and an IPv4-mapped one as the IPv4 address it is. */
function canonical(host: string): string {
  if (isIP(host) !== 6) return host;
  const c = new URL(`http://[${host}]`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(c);
  if (!mapped) return c;
  const [hi, lo] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/**
 * Whether a server on `theirs` would collide with ours on the same port. Only
 * two IP addresses that differ, or an IPv4 and an IPv6 address of which at
 * most one is the family's wildcard (and not a dual-stack ::), are apart. A
 * host name may resolve to anything, so it collides.
 */
export function overlaps(oursRaw: string, theirs: unknown, theirsIpv6Only = false): boolean {
  const ours = canonical(oursRaw);
  const their = canonical(typeof theirs === 'string' ? theirs : '');
  if ((ours !== '' && isIP(ours) === 0) || (their !== '' && isIP(their) === 0)) return true;
  const family = (h: string, v6only: boolean): 4 | 6 | 0 => (h === '' || (h === '::' && !v6only) ? 0 : isIP(h) === 6 ? 6 : 4);
  const [a, b] = [family(ours, false), family(their, theirsIpv6Only)];
  if (a !== 0 && b !== 0 && a !== b) return false;
  if (WILDCARDS.has(ours) || WILDCARDS.has(their)) return true;
  return ours === their;
}

function route(req: IncomingMessage, res: ServerResponse, options: ServeOptions): void {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const known = path === '/' || path === '/metrics' || path === '/healthz';
  if (!known) return plain(res, 404, 'not found: metrics are served on /metrics (and /)\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return plain(res, 405, `method ${req.method} not allowed: use GET or HEAD\n`);
  }
  if (path === '/healthz') return plain(res, 200, 'ok\n');
  const openMetrics = wantsOpenMetrics(req.headers.accept);
  options.scrape(openMetrics, scrapeTimeoutMs(req.headers['x-prometheus-scrape-timeout-seconds'])).then(
    (result) => send(req, res, result),
    (err) => fail(res, err),
  );
}

/**
 * A callback that hangs is given up on after 10 s, as the SDK's own exporters do; but Prometheus gives
 * up on a scrape at its scrape_timeout (10 s by default, often less) and marks the whole target down.
 * So the scraper's timeout, which Prometheus sends in this header, is honoured with half a second of
 * margin, as blackbox_exporter does (`promotel poll`'s probes too, within their own timeout: `atMostMs`).
 */
export function scrapeTimeoutMs(header: string | string[] | undefined, atMostMs = 10_000): number {
  const seconds = Number(Array.isArray(header) ? header[0] : header);
  return Number.isFinite(seconds) && seconds > 0 ? Math.max(100, Math.min(atMostMs, seconds * 1000 - 500)) : atMostMs;
}

function send(req: IncomingMessage, res: ServerResponse, result: ScrapeResult): void {
  res.setHeader('Content-Type', result.openMetrics ? OPENMETRICS_CONTENT_TYPE : TEXT_CONTENT_TYPE);
  res.setHeader('Vary', 'Accept, Accept-Encoding');
  if (!acceptsGzip(req.headers['accept-encoding'])) {
    res.setHeader('Content-Length', result.body.length);
    // 'close' comes after the socket is done with the bytes: written, or the connection gone.
    res.once('close', result.release);
    res.end(result.body);
    return;
  }
  gzip(result.body, { level: 1 }, (err, zipped) => {
    result.release();
    if (err) return fail(res, err);
    res.setHeader('Content-Encoding', 'gzip');
    res.setHeader('Content-Length', zipped.length);
    res.end(zipped);
  });
}

function plain(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

function fail(res: ServerResponse, err: unknown): void {
  warnOnce(`scrape:${describeError(err)}`, `a scrape failed: ${describeError(err)}; the scraper got HTTP 500 and the application is unaffected`);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  plain(res, 500, `scrape failed: ${describeError(err)}\n`);
}

/**
 * Content negotiation as the Prometheus server expects it (client_golang's
 * expfmt.Negotiate): the highest q wins, an explicit type beats a wildcard,
 * and on a tie the earlier entry wins. Prometheus lists what it prefers first
 * and, since 2.49, ranks its `scrape_protocols` by q, so a scraper set to text
 * first gets text. Anything not asking for OpenMetrics 1.0.0 gets text 0.0.4.
 */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  if (!accept) return false;
  let om: Rank | undefined;
  let text: Rank | undefined;
  const parts = accept.split(',');
  for (let i = 0; i < parts.length; i++) {
    const [rawType = '', ...params] = parts[i]!.split(';');
    const type = rawType.trim().toLowerCase();
    let q = 1;
    let version: string | undefined;
    for (const param of params) {
      const eq = param.indexOf('=');
      if (eq === -1) continue;
      const key = param.slice(0, eq).trim().toLowerCase();
      const value = param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
      if (key === 'q') q = /^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(value) ? Number(value) : 1;
      else if (key === 'version') version = value;
    }
    if (q <= 0) continue;
    if (type === 'application/openmetrics-text') {
      if (version === undefined || version === '1.0.0') om = better(om, { q, specific: 2, order: i });
    } else if (type === 'text/plain' || type === 'text/*' || type === '*/*') {
      text = better(text, { q, specific: type === 'text/plain' ? 2 : type === 'text/*' ? 1 : 0, order: i });
    }
  }
  return om !== undefined && (text === undefined || better(text, om) === om);
}

interface Rank {
  q: number;
  // 2 for a full type such as text/plain, 1 for text/*, 0 for */*.
  specific: number;
  order: number;
}

function better(a: Rank | undefined, b: Rank): Rank {
  if (a === undefined) return b;
  if (a.q !== b.q) return a.q > b.q ? a : b;
  if (a.specific !== b.specific) return a.specific > b.specific ? a : b;
  return a.order <= b.order ? a : b;
}

export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  for (const part of header.split(',')) {
    const [coding, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    if (coding !== 'gzip' && coding !== 'x-gzip') continue;
    return !params.some((p) => /^q=0(\.0*)?$/.test(p.replace(/\s/g, '')));
  }
  return false;
}
