// OTel-to-Prometheus name translation, following the OpenTelemetry
// "Prometheus and OpenMetrics compatibility" specification: invalid characters
// become `_`, the UCUM unit becomes a word suffix (`s` -> `_seconds`), gauges of
// unit `1` get `_ratio`, and counters get `_total`. Results are memoized: the
// same few hundred names are translated on every scrape.

const UNIT_WORDS: Record<string, string> = {
  d: 'days', h: 'hours', min: 'minutes', s: 'seconds', ms: 'milliseconds', us: 'microseconds', ns: 'nanoseconds',
  By: 'bytes', KiBy: 'kibibytes', MiBy: 'mebibytes', GiBy: 'gibibytes', TiBy: 'tibibytes',
  KBy: 'kilobytes', MBy: 'megabytes', GBy: 'gigabytes', TBy: 'terabytes',
  m: 'meters', V: 'volts', A: 'amperes', J: 'joules', W: 'watts', g: 'grams',
  Cel: 'celsius', Hz: 'hertz', '%': 'percent',
};
const PER_WORDS: Record<string, string> = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', mo: 'month', y: 'year' };

/** The unit as Prometheus suffix words, or '' when it has none (`{request}`, `1` on non-gauges, unknown annotations). */
export function unitSuffix(unit: string, isGauge: boolean): string {
  const u = unit.replace(/\{[^}]*\}/g, '').trim();
  if (u === '') return '';
  if (u === '1') return isGauge ? 'ratio' : '';
  const slash = u.indexOf('/');
  if (slash === -1) return cleanWord(UNIT_WORDS[u] ?? u);
  const main = u.slice(0, slash).trim();
  const per = u.slice(slash + 1).trim();
  const mainWord = main === '' || main === '1' ? '' : cleanWord(UNIT_WORDS[main] ?? main);
  const perWord = per === '' ? '' : cleanWord(PER_WORDS[per] ?? UNIT_WORDS[per] ?? per);
  if (!perWord) return mainWord;
  return mainWord ? `${mainWord}_per_${perWord}` : `per_${perWord}`;
}

function cleanWord(word: string): string {
  return word.replace(/[^a-zA-Z0-9_]+/g, '_').replace(/_+/g, '_').replace(/^_|_$/g, '');
}

const VALID_METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * Metric names may hold [a-zA-Z0-9_:]; anything else becomes `_`, runs of `_` fold to one, and a leading
 * digit gets a `_` prefix. A valid name is kept as it is, as label names are: the sidecar re-exposes
 * Prometheus names, and `a__b` renamed `a_b` would break its queries and meet a series `a_b` of its own.
 */
export function sanitizeMetricName(name: string): string {
  if (VALID_METRIC.test(name)) return name;
  let out = name.replace(/[^a-zA-Z0-9_:]+/g, '_').replace(/_{2,}/g, '_');
  if (/^[0-9]/.test(out)) out = `_${out}`;
  return out === '' ? '_' : out;
}

const labelCache = new Map<string, string>();
const VALID_LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * A valid Prometheus label name (one that does not start with `__`, which
 * Prometheus reserves) is kept as it is: labels the sidecar re-exposes must
 * not change. Otherwise anything but [a-zA-Z0-9_] becomes `_`, runs of `_`
 * fold to one as the spec asks, and a leading digit gets `key_`.
 */
export function sanitizeLabelName(key: string): string {
  let out = labelCache.get(key);
  if (out !== undefined) return out;
  out = VALID_LABEL.test(key) && !key.startsWith('__') ? key : key.replace(/[^a-zA-Z0-9_]/g, '_').replace(/_{2,}/g, '_');
  if (out === '') out = 'key_empty';
  else if (/^[0-9]/.test(out)) out = `key_${out}`;
  if (labelCache.size < 10_000) labelCache.set(key, out);
  return out;
}

export type FamilyKind = 'counter' | 'gauge' | 'histogram' | 'summary' | 'info';

export interface FamilyName {
  /** Family name as in `# TYPE` of the text format, with `_total` for counters. */
  text: string;
  /** Family name for OpenMetrics, without `_total` (samples add it). */
  openmetrics: string;
  /** The unit word, for OpenMetrics `# UNIT`; '' when the name carries none. */
  unit: string;
}

const familyCache = new Map<string, FamilyName>();

export function familyName(name: string, unit: string, kind: FamilyKind): FamilyName {
  const key = `${kind}\u0000${unit}\u0000${name}`;
  let out = familyCache.get(key);
  if (out !== undefined) return out;
  // A trailing `_` that sanitizing made (`name!`) would meet the suffixes' own (`name__total`), where the
  // rules fold runs of `_`. One the name had stays: the sidecar re-exposes valid names as they are.
  let base = sanitizeMetricName(name);
  if (!name.endsWith('_')) base = base.replace(/([^_])_+$/, '$1');
  const isCounter = kind === 'counter';
  // `_total` alone keeps its name: stripped, the family would have none, which fails the whole scrape.
  if (isCounter && base !== '_total') base = base.replace(/_total$/, '');
  const word = unitSuffix(unit, kind === 'gauge');
  let unitWord = '';
  if (word) {
    // Add the unit only when the name does not already say it (`bytes_sent` + By stays `bytes_sent`).
    const tokens = base.split('_');
    const wordTokens = word.split('_');
    const present = wordTokens.every((t) => tokens.includes(t));
    // A name that sanitized to `_` must not become `__seconds`: names starting with `__` are Prometheus's own.
    if (!present) base = base.endsWith('_') ? `${base}${word}` : `${base}_${word}`;
    // OpenMetrics wants the unit as a suffix after `_`: a family named just `seconds` gets no `# UNIT`
    // line, which a scraper would reject along with the whole scrape.
    if (base.endsWith(`_${word}`)) unitWord = word;
  }
  out = { text: isCounter ? `${base}_total` : base, openmetrics: base, unit: unitWord };
  if (familyCache.size < 10_000) familyCache.set(key, out);
  return out;
}
