// `key=value,key2=value2` lists, the W3C Baggage-like format of
// OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS: keys and values are
// percent-decoded, surrounding spaces trimmed.

export interface Pair {
  /** The entry as written, for the warning. */
  entry: string;
  key: string;
  value: string;
}

export interface BadEntry {
  entry: string;
  /** The decoded key when there is one, so that a warning can name a header without showing its value. */
  key: string | undefined;
  why: string;
}

export function parsePairs(raw: string, options: { secondEquals: boolean }): { pairs: Pair[]; bad: BadEntry[] } {
  const pairs: Pair[] = [];
  const bad: BadEntry[] = [];
  for (const entry of raw.split(',')) {
    if (entry.trim() === '') continue;
    const eq = entry.indexOf('=');
    const rawKey = eq === -1 ? entry.trim() : entry.slice(0, eq).trim();
    const key = decode(rawKey);
    if (eq === -1) {
      bad.push({ entry, key, why: 'has no "=": write each entry as key=value, entries separated by commas' });
      continue;
    }
    if (rawKey === '') {
      bad.push({ entry, key: undefined, why: 'has no key before "=": write each entry as key=value' });
      continue;
    }
    const rawValue = entry.slice(eq + 1).trim();
    // Base64 credentials end in "=", so a header value may hold one; an attribute value may not (the specification asks for %3D).
    if (!options.secondEquals && rawValue.includes('=')) {
      bad.push({ entry, key, why: 'has a second "=": write = inside a value as %3D' });
      continue;
    }
    const value = decode(rawValue);
    if (key === undefined || value === undefined) {
      bad.push({ entry, key, why: 'has a bad percent escape: write % as %25' });
      continue;
    }
    pairs.push({ entry, key, value });
  }
  return { pairs, bad };
}

function decode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/**
 * OTEL_RESOURCE_ATTRIBUTES: on any error the specification says the entire
 * value SHOULD be discarded, so a half-applied set of labels never reaches
 * target_info. One warning names the first bad entry.
 */
export function parseResourceAttributes(raw: string): { attributes: Record<string, string>; error?: string } {
  const { pairs, bad } = parsePairs(raw, { secondEquals: false });
  const first = bad[0];
  if (first) {
    const more = bad.length > 1 ? ` (and ${bad.length - 1} more bad ${bad.length > 2 ? 'entries' : 'entry'})` : '';
    return {
      attributes: {},
      error: `OTEL_RESOURCE_ATTRIBUTES=${JSON.stringify(raw)} is invalid: the entry ${JSON.stringify(first.entry.trim())} ${first.why}${more}; the whole variable is ignored, as the OpenTelemetry specification asks`,
    };
  }
  const attributes: Record<string, string> = {};
  for (const p of pairs) attributes[p.key] = p.value;
  return { attributes };
}

// RFC 9110 token: what node:http accepts as a header name.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// What node:http accepts in a header value; anything else would make every export throw.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

// After percent-decoding, a value node:http refuses holds either a control character or a character
// beyond Latin-1 (any non-ASCII text decodes to one): each has its own fix.
function fieldValueProblem(value: string): string {
  return /[\x00-\x08\x0a-\x1f\x7f]/.test(value)
    ? 'has a control character in its value: percent-encode only printable characters'
    : 'has a character beyond Latin-1 in its value, which HTTP headers cannot carry: use ASCII, or the encoding the collector expects (base64, say)';
}

/**
 * OTEL_EXPORTER_OTLP_HEADERS and its *_METRICS_* variant. A bad entry drops
 * that header only (the others may be what the collector needs), and the
 * warning names the header but never shows a value: values are credentials.
 */
export function parseHeaders(variable: string, raw: string): { headers: Record<string, string>; error?: string } {
  const { pairs, bad } = parsePairs(raw, { secondEquals: true });
  const headers: Record<string, string> = {};
  for (const p of pairs) {
    if (!TOKEN.test(p.key)) bad.push({ entry: p.entry, key: p.key, why: 'is not a valid header name: use letters, digits and - only' });
    else if (!FIELD_VALUE.test(p.value)) bad.push({ entry: p.entry, key: p.key, why: fieldValueProblem(p.value) });
    else headers[p.key] = p.value;
  }
  if (bad.length === 0) return { headers };
  const named = bad.map((b) => `${b.key === undefined ? 'an entry without a name' : `header ${JSON.stringify(b.key)}`} ${b.why}`).join('; ');
  return { headers, error: `${variable} is invalid in part: ${named}; ${bad.length > 1 ? 'those headers are' : 'that header is'} not sent, the others are (values are not shown: they may be credentials)` };
}
