// One HTTP probe, timed phase by phase the way blackbox_exporter's http prober
// reports them (resolve, connect, tls, processing, transfer, each summed over
// redirects). node:http is used rather than fetch because only raw socket
// events tell the phases apart; every request gets a fresh socket (agent:
// false) so that every probe pays, and so measures, a full connection.
//
// A probe never rejects: every failure becomes `success: false` with a short
// machine-readable reason, and a deadline bounds the whole probe.
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket, PeerCertificate, DetailedPeerCertificate } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { brotliDecompress, unzip } from 'node:zlib';
import type { Module } from './config';
import { normalise } from './allow';
import { VERSION } from '../resource';

export const PHASES = ['resolve', 'connect', 'tls', 'processing', 'transfer'] as const;
export type Phase = (typeof PHASES)[number];

export interface ProbeResult {
  success: boolean;
  /** Why it failed: timeout, dns, connection_refused, connection_reset, tls, invalid_response, status_code, body_too_large, too_many_redirects, redirect_not_allowed, aborted, network. */
  reason: string | undefined;
  /** Seconds from the first request to the last byte (or the failure). */
  duration: number;
  phases: Record<Phase, number>;
  /** Status of the last response; 0 when none came. */
  statusCode: number;
  /** Body bytes of the last response, as received. */
  responseBytes: number;
  redirects: number;
  /** Earliest notAfter of the last TLS chain, unix seconds. */
  certExpiry: number | undefined;
  body: Buffer | undefined;
  contentType: string | undefined;
}

export interface ProbeOptions {
  module: Module;
  timeoutMs: number;
  /** Whether a redirect to this (normalised) URL may be followed: the SSRF rule. */
  mayFollow: (url: URL) => boolean;
  /** Keep the body for a converter. */
  keepBody: boolean;
  /** Aborts the probe (shutdown). */
  signal?: AbortSignal;
}

class ProbeFailure extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export async function probe(url: URL, options: ProbeOptions): Promise<ProbeResult & { message?: string }> {
  const started = performance.now();
  const result: ProbeResult = {
    success: false, reason: undefined, duration: 0, phases: { resolve: 0, connect: 0, tls: 0, processing: 0, transfer: 0 },
    statusCode: 0, responseBytes: 0, redirects: 0, certExpiry: undefined, body: undefined, contentType: undefined,
  };
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new ProbeFailure('timeout', `no complete answer within ${options.timeoutMs} ms`)), options.timeoutMs);
  const onAbort = (): void => deadline.abort(new ProbeFailure('aborted', 'promotel is shutting down'));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let message: string | undefined;
  try {
    const mod = options.module;
    let current = url;
    let method = mod.method;
    let body = mod.body;
    for (;;) {
      // The module's headers (Authorization, API keys, a Host) are meant for the target: a redirect to
      // another origin, even one allow: permits, does not get them, as Go's client (blackbox_exporter) drops
      // Authorization and cookies there.
      const res = await hop(current, method, body, current.origin === url.origin ? mod.headers : {}, options, deadline.signal, result);
      result.statusCode = res.status;
      const location = res.headers.location;
      if (mod.followRedirects && REDIRECTS.has(res.status) && location) {
        const next = normalise(new URL(location, current).href);
        if (!next) throw new ProbeFailure('redirect_not_allowed', `redirect to ${JSON.stringify(location)}, which is not an http(s) URL without credentials`);
        if (!options.mayFollow(next)) throw new ProbeFailure('redirect_not_allowed', `redirect to ${next.href}, which is neither the target's origin nor matched by allow:`);
        if (++result.redirects > mod.maxRedirects) throw new ProbeFailure('too_many_redirects', `more than ${mod.maxRedirects} redirects (max_redirects)`);
        if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
          method = 'GET';
          body = undefined;
        }
        current = next;
        continue;
      }
      result.responseBytes = res.bytes;
      result.body = res.body;
      result.contentType = res.headers['content-type'];
      const ok = mod.validStatusCodes.length === 0 ? res.status >= 200 && res.status < 300 : mod.validStatusCodes.includes(res.status);
      if (!ok) throw new ProbeFailure('status_code', `status ${res.status} is not ${mod.validStatusCodes.length ? mod.validStatusCodes.join(', ') : '2xx'} (valid_status_codes)`);
      result.success = true;
      break;
    }
  } catch (err) {
    result.success = false;
    result.reason = err instanceof ProbeFailure ? err.reason : classify(err);
    message = err instanceof Error ? err.message || result.reason : String(err);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    result.duration = (performance.now() - started) / 1000;
  }
  return message === undefined ? result : { ...result, message };
}

interface Hop {
  status: number;
  headers: IncomingHttpHeaders;
  bytes: number;
  body: Buffer | undefined;
}

function hop(url: URL, method: string, body: string | undefined, sent: Record<string, string>, options: ProbeOptions, signal: AbortSignal, acc: ProbeResult): Promise<Hop> {
  return new Promise<Hop>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    // Several events may report one failure; the deadline's or our own reason wins over the socket's echo of it.
    let own: ProbeFailure | undefined;
    const mod = options.module;
    const https = url.protocol === 'https:';
    const t0 = performance.now();
    let tLookup = t0;
    let tConnect = t0;
    let tSecure = t0;
    let tResponse = t0;
    let connected = false;
    let secured = false;
    let counted = false;
    // The phases before the answer, added once per hop. As blackbox_exporter counts them: the
    // lookup always, connect and tls only once the connection was ready for the request.
    const countSetup = (): void => {
      if (counted) return;
      counted = true;
      acc.phases.resolve += (tLookup - t0) / 1000;
      if (!connected || (https && !secured)) return;
      acc.phases.connect += (tConnect - tLookup) / 1000;
      if (https) acc.phases.tls += (tSecure - tConnect) / 1000;
    };
    const fail = (err: unknown): void => {
      countSetup();
      reject(own ?? (signal.aborted && signal.reason instanceof ProbeFailure ? signal.reason : err));
    };
    const headers: Record<string, string> = { 'user-agent': `promotel/${VERSION}`, accept: ACCEPT[mod.format], ...sent };
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    const common = { method, headers, agent: false as const, signal };
    const req = https
      ? httpsRequest(url, { ...common, rejectUnauthorized: !mod.tls.insecureSkipVerify, ca: mod.tls.ca, servername: mod.tls.serverName ?? (isIp(url.hostname) ? undefined : url.hostname) })
      : httpRequest(url, common);
    req.once('socket', (socket) => {
      socket.once('lookup', () => (tLookup = performance.now()));
      // An IP literal has no lookup: its resolve phase stays 0, as it took no time.
      socket.once('connect', () => {
        tConnect = performance.now();
        connected = true;
      });
      if (https) {
        socket.once('secureConnect', () => {
          tSecure = performance.now();
          secured = true;
          const expiry = earliestExpiry((socket as TLSSocket).getPeerCertificate(true));
          if (expiry !== undefined) acc.certExpiry = expiry;
        });
      }
    });
    req.once('response', (res: IncomingMessage) => {
      tResponse = performance.now();
      const ready = https ? tSecure : tConnect;
      countSetup();
      acc.phases.processing += (tResponse - ready) / 1000;
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > mod.maxBodyBytes) {
          own = new ProbeFailure('body_too_large', `the body passed max_body_size (${mod.maxBodyBytes} bytes)`);
          req.destroy(own);
          return;
        }
        if (options.keepBody) chunks.push(chunk);
      });
      res.once('end', () => {
        acc.phases.transfer += (performance.now() - tResponse) / 1000;
        const raw = options.keepBody ? Buffer.concat(chunks) : undefined;
        decode(raw, res.headers['content-encoding'], mod.maxBodyBytes).then((decoded) => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, body: decoded }), fail);
      });
      res.once('error', fail);
      res.once('aborted', () => fail(new ProbeFailure('connection_reset', 'the connection closed before the body was complete')));
    });
    req.once('error', fail);
    req.end(body);
  });
}

/**
 * The body as the converters read it: a target may compress it (asked to by a module's
 * `Accept-Encoding` header, or unasked), and the text of a gzip body is not the text of the metrics.
 * max_body_size bounds the decoded size too, so that a small gzip bomb cannot take the memory.
 */
function decode(body: Buffer | undefined, encoding: string | undefined, maxBytes: number): Promise<Buffer | undefined> {
  const name = (encoding ?? '').trim().toLowerCase();
  if (body === undefined || name === '' || name === 'identity') return Promise.resolve(body);
  // unzip reads gzip and zlib's deflate alike, by their headers.
  type Decoder = (buf: Buffer, options: { maxOutputLength: number }, done: (err: Error | null, out: Buffer) => void) => void;
  const decoder: Decoder | undefined = name === 'gzip' || name === 'x-gzip' || name === 'deflate' ? unzip : name === 'br' ? brotliDecompress : undefined;
  if (decoder === undefined) return Promise.reject(new ProbeFailure('invalid_response', `the body is encoded as ${JSON.stringify(name)}, which promotel does not decode: have the target send gzip, deflate, br or no Content-Encoding`));
  return new Promise((resolve, reject) =>
    decoder(body, { maxOutputLength: maxBytes }, (err, out) => {
      if (!err) return resolve(out);
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') reject(new ProbeFailure('body_too_large', `the ${name} body decodes to more than max_body_size (${maxBytes} bytes)`));
      else reject(new ProbeFailure('invalid_response', `the body does not decode as ${name} (Content-Encoding): ${err.message}`));
    }),
  );
}

const ACCEPT: Record<Module['format'], string> = {
  none: '*/*',
  json: 'application/json, */*;q=0.5',
  prometheus: 'application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1',
};

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.startsWith('[');
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|TLS|SSL|HOSTNAME|ALTNAME/;

/** A short reason for a socket or parser error. */
export function classify(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { reason?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  if (e instanceof ProbeFailure) return e.reason;
  if (e?.name === 'AbortError' && e.cause instanceof ProbeFailure) return e.cause.reason;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL' || code === 'EAI_NODATA') return 'dns';
  if (code === 'ECONNREFUSED') return 'connection_refused';
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED') return 'connection_reset';
  if (code.startsWith('HPE_')) return 'invalid_response';
  if (TLS_CODES.test(code)) return 'tls';
  return 'network';
}

function earliestExpiry(cert: DetailedPeerCertificate | PeerCertificate): number | undefined {
  let earliest: number | undefined;
  const seen = new Set<string>();
  let c: DetailedPeerCertificate | undefined = cert as DetailedPeerCertificate;
  while (c && c.valid_to && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    const t = Date.parse(c.valid_to) / 1000;
    if (Number.isFinite(t) && (earliest === undefined || t < earliest)) earliest = t;
    c = c.issuerCertificate;
  }
  return earliest;
}
