// The pieces of the stable HTTP semantic conventions that both server hooks
// and the client hook share, so that every path yields the same attributes.

/** Bucket boundaries the HTTP semantic conventions advise for request durations, in seconds. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'QUERY']);

/** Any method outside RFC 9110 and PATCH/QUERY becomes `_OTHER`, so a client cannot mint label values. */
export function normalizeMethod(method: string | undefined): string {
  if (method === undefined) return 'GET';
  if (KNOWN_METHODS.has(method)) return method;
  const upper = method.toUpperCase();
  return KNOWN_METHODS.has(upper) ? upper : '_OTHER';
}
