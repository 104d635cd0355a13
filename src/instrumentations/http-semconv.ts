// The pieces of the stable HTTP semantic conventions that the server hooks
// and the client hooks share, so that every path yields the same attributes.
import type { Histogram, Meter } from '@opentelemetry/api';
import { warn } from '../log';

/** Bucket boundaries the HTTP semantic conventions advise for request durations, in seconds. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** RFC 9110's methods, PATCH and QUERY: the list instrumentation-http uses too. */
const DEFAULT_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'QUERY'];

/** Read here rather than in config.ts: only the HTTP hooks use it. Its README row is checked against this. */
export const KNOWN_METHODS_VARIABLE = {
  name: 'OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS',
  default: DEFAULT_METHODS.join(','),
  meaning: 'comma-separated, case-sensitive HTTP methods that keep their name in `http_request_method`, replacing the default list; any other method is `_OTHER`. Not read by `instrumentation-http` (see [HTTP details](#http-details))',
} as const;

// An HTTP token (RFC 9110 section 5.6.2): what a method may be spelled with.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

let knownMethods: ReadonlySet<string> = new Set(DEFAULT_METHODS);
let configured = false;

/** The methods a value of OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS names, or the default list and the warning to give. */
export function parseKnownMethods(raw: string | undefined): { methods: string[]; warning?: string } {
  // An empty value means unset (OpenTelemetry's rule for every variable).
  if (raw === undefined || raw.trim() === '') return { methods: DEFAULT_METHODS };
  const methods = raw.split(',').map((m) => m.trim()).filter((m) => m !== '');
  const bad = methods.find((m) => !TOKEN.test(m));
  if (methods.length > 0 && bad === undefined) return { methods };
  const why = bad === undefined ? 'it names no method' : `${JSON.stringify(bad)} is not an HTTP method token`;
  return {
    methods: DEFAULT_METHODS,
    warning: `${KNOWN_METHODS_VARIABLE.name}=${JSON.stringify(raw)} is invalid: ${why}; give comma-separated methods as sent, such as GET,POST,PROPFIND; using ${DEFAULT_METHODS.join(',')}`,
  };
}

/**
 * Reads the variable once: the agent calls this with the environment start() was given (after the
 * log level is set, and `quiet` in a cluster worker, whose primary has warned already); a hook
 * enabled on its own reads process.env when it is enabled.
 */
export function configureKnownMethods(env: Record<string, string | undefined> = process.env, quiet = false): void {
  if (configured) return;
  configured = true;
  const { methods, warning } = parseKnownMethods(env[KNOWN_METHODS_VARIABLE.name]);
  if (warning !== undefined && !quiet) warn(warning);
  knownMethods = new Set(methods);
}

/**
 * An unknown method becomes `_OTHER`, so a client cannot mint label values. Case-sensitive, as the
 * conventions require: fetch() upper-cases only the six standard methods and sends `patch` as is.
 */
export function normalizeMethod(method: string | undefined): string {
  if (method === undefined) return 'GET';
  return knownMethods.has(method) ? method : '_OTHER';
}

/**
 * error.type of a failed client request: the error's string code (ECONNREFUSED, ENOTFOUND,
 * UND_ERR_SOCKET: the name of a system error is only "Error"), else its name (TimeoutError).
 * Not DOMException's numeric legacy code (23 for TimeoutError), and not Node's ABORT_ERR: an
 * abort is AbortError on both clients.
 */
export function clientErrorType(error: unknown): string {
  const { code, name } = (error ?? {}) as { code?: unknown; name?: unknown };
  if (typeof code === 'string' && code !== '' && name !== 'AbortError') return code;
  return typeof name === 'string' && name !== '' ? name : 'Error';
}

/** The one client duration instrument (the SDK hands every caller the same storage for the same definition). */
export function clientDuration(meter: Meter): Histogram {
  return meter.createHistogram('http.client.request.duration', {
    description: 'Duration of HTTP client requests.',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  });
}
