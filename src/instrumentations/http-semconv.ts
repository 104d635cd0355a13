// The pieces of the stable HTTP semantic conventions that both server hooks
// and the client hook share, so that every path yields the same attributes.

/** Bucket boundaries the HTTP semantic conventions advise for request durations, in seconds. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** RFC 9110's methods, PATCH and QUERY: the list instrumentation-http uses too. */
const DEFAULT_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'QUERY'];

const KNOWN_METHODS: ReadonlySet<string> = new Set(DEFAULT_METHODS);

/**
 * An unknown method becomes `_OTHER`, so a client cannot mint label values. Case-sensitive, as the
 * conventions require: fetch() upper-cases only the six standard methods and sends `patch` as is.
 */
export function normalizeMethod(method: string | undefined): string {
  if (method === undefined) return 'GET';
  return KNOWN_METHODS.has(method) ? method : '_OTHER';
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
