// What /probe?target=URL and redirects may fetch. A URL is checked after the
// WHATWG parser has normalised it (dot segments resolved, default port
// dropped, host lower-cased), and the request is then made for exactly that
// normalised URL, so `..`, `%2e%2e`, `user@host` and case tricks cannot make a
// matching string fetch something else.
//
// Pattern syntax: a URL in which `*` matches one host label (or the port after
// `:`) in the host, one segment in the path, and a trailing `**` matches
// anything after it (further path segments and a query). Examples:
//   http://127.0.0.1:8080/health          exactly that URL (no query)
//   http://*.svc.cluster.local:8080/q     one host label, any service
//   https://api.internal/status/**        anything under /status/

export interface UrlPattern {
  source: string;
  regex: RegExp;
}

export function compilePattern(source: string): UrlPattern {
  const s = source.trim();
  const m = /^(https?):\/\/([^/?#]+)(.*)$/.exec(s);
  if (!m) throw new Error('is not an http(s) URL pattern: write it like http://host:port/path, with * for one segment and a trailing ** for the rest');
  if (m[2]!.includes('@')) throw new Error('has credentials (@): patterns match URLs without them');
  if (s.indexOf('**') !== -1 && s.indexOf('**') !== s.length - 2) throw new Error('has ** before its end: ** is only allowed at the end');
  // The host as the URL parser would spell it: lower case, default port dropped.
  const host = m[2]!.toLowerCase().replace(m[1] === 'http' ? /:80$/ : /:443$/, '');
  let path = m[3] === '' ? '/' : m[3]!;
  const rest = path.endsWith('**');
  if (rest) path = path.slice(0, -2);
  // In the host, * is one label (or the port after :), never a dot or a colon: `http://10.0.0.*/`
  // must not match `10.0.0.1:6379` nor `10.0.0.1.attacker.example`. In the path, * is one segment.
  const hostPart = host.split('*').map(escape).join('[^./:?#@\\[\\]]*');
  const pathPart = path.split('*').map(escape).join('[^/?#@]*');
  const body = `${m[1]}://${hostPart}${pathPart}`;
  return { source: s, regex: new RegExp(`^${body}${rest ? '.*' : ''}$`) };
}

function escape(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

/** The URL as it will be fetched, or undefined when it may not be (bad syntax, scheme, credentials). */
export function normalise(raw: string): URL | undefined {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  if (u.username !== '' || u.password !== '') return undefined;
  u.hash = '';
  return u;
}

export function allowed(url: URL, patterns: readonly UrlPattern[]): boolean {
  return matching(url, patterns) !== undefined;
}

/** The first pattern that allows the URL. */
export function matching(url: URL, patterns: readonly UrlPattern[]): UrlPattern | undefined {
  const text = `${url.protocol}//${url.host}${url.pathname}${url.search}`;
  return patterns.find((p) => p.regex.test(text));
}
