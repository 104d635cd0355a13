// Re-exposes a target's Prometheus text (0.0.4) or OpenMetrics (1.0.0) body.
// Families keep their names; each series gets the target's labels (`target`,
// `job` and the configured ones); labels of the same names the target already
// had move to `exported_target`, `exported_job`, as Prometheus does with
// honor_labels: false. Timestamps and exemplars are dropped: the values are
// served as of the poll. Counters, histograms and summaries keep their type;
// state sets, info, unknown and gauge histograms become gauges of their
// samples, under the same sample names, so queries keep working.
import type { Histogram } from '@opentelemetry/sdk-metrics';
import type { SummaryValue } from '../exposition/serialize';
import { moves, relabel, type ConvertError, type Family, type Series } from './families';
import { pace, type Pace } from './pace';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Parsed {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const SUFFIXES: Record<string, string[]> = {
  counter: ['_total', '_created'],
  histogram: ['_bucket', '_count', '_sum', '_created'],
  summary: ['_count', '_sum', '_created'],
  gaugehistogram: ['_bucket', '_gcount', '_gsum'],
  info: ['_info'],
};

/** Parses the body; `types` remembers each family's type between polls of one target, to report changes. */
export async function convertPrometheus(body: string, extra: Record<string, string>, types: Map<string, string>, deadline?: number): Promise<{ families: Family[]; errors: ConvertError[]; samples: number }> {
  const errors: ConvertError[] = [];
  const pacer = pace(deadline);
  const parsed = await parse(body, errors, pacer);
  const families: Family[] = [];
  let samples = 0;
  // Against the previous poll only: families that went away are forgotten. The
  // memory is replaced at the end, in one step: a /probe of the same target may
  // be converting at the same time.
  const previous = new Map(types);
  const seen = new Map<string, string>();
  for (const p of parsed.values()) {
    if (p.samples.length === 0) continue;
    samples += p.samples.length;
    const before = previous.get(p.name);
    if (before !== undefined && before !== p.type) errors.push({ reason: 'type_changed', message: `family ${p.name} changed type from ${before} to ${p.type}` });
    seen.set(p.name, p.type);
    if (p.name === 'target_info' || p.name === 'target') continue; // the target's resource; ours is served instead
    if (OWN.test(p.name)) {
      // Same names and labels as promotel's own series of this target: a target could fake its health.
      errors.push({ reason: 'reserved_name', message: `family ${p.name} has the name of a promotel metric` });
      continue;
    }
    p.samples = await unique(p.samples, extra, errors, pacer);
    for (const f of await toFamilies(p, extra, errors, pacer)) families.push(f);
  }
  types.clear();
  for (const [name, type] of seen) types.set(name, type);
  return { families, errors, samples };
}

const OWN = /^promotel_(probe|poll)_/;


/**
 * A sample given twice (the same name and labels: a counter's value, a
 * histogram's bucket, a summary's quantile) would be a duplicate series in the
 * output: the last one wins, and it is counted.
 */
async function unique(samples: Sample[], extra: Record<string, string>, errors: ConvertError[], pacer: Pace): Promise<Sample[]> {
  const seen = new Map<string, number>();
  for (let i = 0; i < samples.length; i++) {
    if (pacer.due()) await pacer.yield();
    const s = samples[i]!;
    // Compared as served: `job="a"` moves to `exported_job="a"` and meets a sample that had that already.
    const moved = Object.keys(s.labels).some((k) => moves(k, extra) || k.startsWith('exported_'));
    const key = `${s.name}${labelKey(moved ? relabel(s.labels, extra) : s.labels)}`;
    if (seen.has(key)) errors.push({ reason: 'duplicate_series', message: `${s.name}${JSON.stringify(s.labels)} appears more than once` });
    seen.set(key, i);
  }
  if (seen.size === samples.length) return samples;
  return [...seen.values()].sort((a, b) => a - b).map((i) => samples[i]!);
}

async function toFamilies(p: Parsed, extra: Record<string, string>, errors: ConvertError[], pacer: Pace): Promise<Family[]> {
  // A counter of text 0.0.4 may be named without _total; re-exposed as a counter it would gain
  // the suffix and break queries, so it stays a gauge of its own name.
  const isCounter = p.type === 'counter' && p.samples.every((s) => s.name.endsWith('_total') || s.name.endsWith('_created'));
  if (isCounter) {
    const base = p.name.replace(/_total$/, '');
    const series = new Map<string, Series>();
    for (const s of p.samples) {
      if (pacer.due()) await pacer.yield();
      const key = labelKey(s.labels);
      const entry = series.get(key) ?? { labels: relabel(s.labels, extra), value: 0 };
      if (s.name.endsWith('_created')) entry.created = s.value;
      else entry.value = s.value;
      series.set(key, entry);
    }
    return [{ name: base, kind: 'counter', help: p.help, unit: '', series: [...series.values()] }];
  }
  if (p.type === 'histogram') return [await histogram(p, extra, errors, pacer)];
  if (p.type === 'summary') return [await summary(p, extra, errors, pacer)];
  // Everything else: one gauge family per sample name.
  const byName = new Map<string, Family>();
  for (const s of p.samples) {
    if (pacer.due()) await pacer.yield();
    let f = byName.get(s.name);
    if (!f) byName.set(s.name, (f = { name: s.name, kind: 'gauge', help: p.help, unit: '', series: [] }));
    f.series.push({ labels: relabel(s.labels, extra), value: s.value });
  }
  return [...byName.values()];
}

async function histogram(p: Parsed, extra: Record<string, string>, errors: ConvertError[], pacer: Pace): Promise<Family> {
  const groups = new Map<string, { labels: Record<string, string>; buckets: Array<[number, number]>; count?: number; sum?: number; created?: number }>();
  for (const s of p.samples) {
    if (pacer.due()) await pacer.yield();
    const { le, ...labels } = s.labels;
    const key = labelKey(labels);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { labels, buckets: [] }));
    const suffix = s.name.slice(p.name.length);
    if (suffix === '_bucket') {
      const bound = le === undefined ? NaN : parseValue(le);
      if (Number.isNaN(bound)) errors.push({ reason: 'invalid_number', message: `${s.name} has le=${JSON.stringify(le)}, not a number` });
      else g.buckets.push([bound, s.value]);
    } else if (suffix === '_count') g.count = s.value;
    else if (suffix === '_sum') g.sum = s.value;
    else if (suffix === '_created') g.created = s.value;
  }
  const series: Series[] = [];
  for (const g of groups.values()) {
    g.buckets.sort((a, b) => a[0] - b[0]);
    const finite = g.buckets.filter(([b]) => b !== Infinity);
    const total = g.buckets.find(([b]) => b === Infinity)?.[1] ?? g.count ?? finite.at(-1)?.[1] ?? 0;
    // The exposition is cumulative; the SDK's histogram counts each bucket on its own.
    let prev = 0;
    const counts: number[] = [];
    for (const [, cumulative] of finite) {
      counts.push(Math.max(0, cumulative - prev));
      prev = cumulative;
    }
    counts.push(Math.max(0, total - prev));
    const value: Histogram = { buckets: { boundaries: finite.map(([b]) => b), counts }, count: g.count ?? total };
    if (g.sum !== undefined) value.sum = g.sum;
    const s: Series = { labels: relabel(g.labels, extra), value };
    if (g.created !== undefined) s.created = g.created;
    series.push(s);
  }
  return { name: p.name, kind: 'histogram', help: p.help, unit: '', series };
}

async function summary(p: Parsed, extra: Record<string, string>, errors: ConvertError[], pacer: Pace): Promise<Family> {
  const groups = new Map<string, { labels: Record<string, string>; value: SummaryValue; created?: number }>();
  for (const s of p.samples) {
    if (pacer.due()) await pacer.yield();
    const { quantile, ...labels } = s.labels;
    const key = labelKey(labels);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { labels, value: { quantiles: [] } }));
    const suffix = s.name.slice(p.name.length);
    if (suffix === '') {
      const q = quantile === undefined ? NaN : parseValue(quantile);
      if (Number.isNaN(q)) errors.push({ reason: 'invalid_number', message: `${s.name} has quantile=${JSON.stringify(quantile)}, not a number` });
      else g.value.quantiles.push([q, s.value]);
    } else if (suffix === '_count') g.value.count = s.value;
    else if (suffix === '_sum') g.value.sum = s.value;
    else if (suffix === '_created') g.created = s.value;
  }
  const series: Series[] = [];
  for (const g of groups.values()) {
    g.value.quantiles.sort((a, b) => a[0] - b[0]);
    const s: Series = { labels: relabel(g.labels, extra), value: g.value };
    if (g.created !== undefined) s.created = g.created;
    series.push(s);
  }
  return { name: p.name, kind: 'summary', help: p.help, unit: '', series };
}

/** The same for the same label set in any order; length-prefixed, so no value can forge another's key. */
function labelKey(labels: Record<string, string>): string {
  const names = Object.keys(labels);
  if (names.length > 1) names.sort();
  let key = '';
  for (const n of names) {
    const v = labels[n]!;
    key += `${n.length}:${n}${v.length}:${v}`;
  }
  return key;
}

/** Lines to families. A line that cannot be read is reported and skipped; the rest still count. */
export async function parse(body: string, errors: ConvertError[], pacer: Pace): Promise<Map<string, Parsed>> {
  const families = new Map<string, Parsed>();
  const typed = new Map<string, string>();
  const family = (name: string): Parsed => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: typed.get(name) ?? 'untyped', help: '', samples: [] }));
    return f;
  };
  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (pacer.due()) await pacer.yield();
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE|UNIT)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\s(.*))?$/.exec(line);
      if (line.trim() === '# EOF') break;
      if (!m) continue; // a comment
      if (m[1] === 'TYPE') {
        const type = (m[3] ?? '').trim().toLowerCase();
        typed.set(m[2]!, type);
        family(m[2]!).type = type;
      } else if (m[1] === 'HELP') family(m[2]!).help = unescape(m[3] ?? '');
      continue;
    }
    const sample = parseSample(line);
    if (typeof sample === 'string') {
      errors.push({ reason: sample === 'invalid_number' ? 'invalid_number' : 'parse_error', message: `line ${i + 1}: ${JSON.stringify(line.slice(0, 120))} ${sample === 'invalid_number' ? 'has a value that is not a number' : 'is not a sample'}` });
      continue;
    }
    family(familyOf(sample.name, typed)).samples.push(sample);
  }
  adoptCreatedGauges(families);
  return families;
}

/**
 * Text 0.0.4 has no place for a creation time, so the Python client writes a counter `x` as family
 * `x_total` followed by a gauge family `x_created` (a histogram `h` by `h_created`). Kept as a gauge, it
 * would meet the `_created` sample the counter is re-exposed with in OpenMetrics, and the conflict would
 * drop one of them. Each of its samples becomes its family's creation time instead, as in an OpenMetrics
 * body; a sample with labels no series of that family has stays in the gauge, so nothing is lost.
 */
function adoptCreatedGauges(families: Map<string, Parsed>): void {
  for (const gauge of families.values()) {
    if (gauge.type !== 'gauge' || !gauge.name.endsWith('_created')) continue;
    const base = gauge.name.slice(0, -'_created'.length);
    const counter = families.get(`${base}_total`);
    const owner = counter?.type === 'counter' ? counter : families.get(base);
    if (owner === undefined || !(owner === counter || owner.type === 'histogram' || owner.type === 'summary')) continue;
    const series = new Set(owner.samples.map((s) => labelKey(withoutKey(s.labels, owner.type === 'histogram' ? 'le' : 'quantile'))));
    const left: Sample[] = [];
    for (const s of gauge.samples) {
      if (s.name === gauge.name && series.has(labelKey(s.labels))) owner.samples.push(s);
      else left.push(s);
    }
    gauge.samples = left;
  }
}

function withoutKey(labels: Record<string, string>, key: string): Record<string, string> {
  if (!(key in labels)) return labels;
  const { [key]: _, ...rest } = labels;
  return rest;
}

function familyOf(sample: string, typed: Map<string, string>): string {
  if (typed.has(sample) && (typed.get(sample) !== 'counter' || sample.endsWith('_total'))) return sample;
  for (const [type, suffixes] of Object.entries(SUFFIXES)) {
    for (const suffix of suffixes) {
      if (!sample.endsWith(suffix)) continue;
      const base = sample.slice(0, -suffix.length);
      if (typed.get(base) === type) return base;
    }
  }
  return sample;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
// Sticky: matches at lastIndex without slicing the line.
const LABEL = /[a-zA-Z_][a-zA-Z0-9_]*/y;

function parseSample(line: string): Sample | 'parse_error' | 'invalid_number' {
  const m = NAME.exec(line);
  if (!m) return 'parse_error';
  const name = m[0];
  let i = name.length;
  const labels: Record<string, string> = {};
  // Label values are copied up to the next quote or backslash in one slice: most have no escapes.
  // Each of the two positions is searched again only once passed, so that a line of many
  // escapes or many labels is still read in linear time.
  let quote = -1;
  let slash = -1;
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') {
        i++;
        break;
      }
      LABEL.lastIndex = i;
      const l = LABEL.exec(line);
      if (!l) return 'parse_error';
      i += l[0].length;
      while (line[i] === ' ') i++;
      if (line[i] !== '=' || line[i + 1] !== '"') return 'parse_error';
      i += 2;
      let value = '';
      for (;;) {
        if (quote < i) quote = line.indexOf('"', i);
        if (quote === -1) return 'parse_error';
        if (slash !== -2 && slash < i) slash = line.indexOf('\\', i);
        if (slash === -1) slash = -2; // none left: never search again
        if (slash < 0 || slash > quote) {
          value += line.slice(i, quote);
          i = quote + 1;
          break;
        }
        const n = line[slash + 1];
        value += line.slice(i, slash) + (n === 'n' ? '\n' : n === '"' ? '"' : n === '\\' ? '\\' : `\\${n ?? ''}`);
        i = slash + 2;
      }
      labels[l[0]] = value;
    }
  }
  // value [timestamp] [# exemplar]
  if (line[i] !== ' ' && line[i] !== '\t') return 'parse_error';
  const hash = line.indexOf('#', i);
  const rest = (hash === -1 ? line.slice(i) : line.slice(i, hash)).trim();
  const gap = rest.search(/\s/);
  const token = gap === -1 ? rest : rest.slice(0, gap);
  if (token === '' || (gap !== -1 && /\s/.test(rest.slice(gap).trim()))) return 'parse_error';
  const value = parseValue(token);
  if (Number.isNaN(value) && !/^[+-]?nan$/i.test(token)) return 'invalid_number';
  return { name, labels, value };
}

/** Go's ParseFloat, as Prometheus reads values: decimals, exponents, Inf and NaN in any case. */
export function parseValue(s: string): number {
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return Number(s);
  if (/^[+]?inf(inity)?$/i.test(s)) return Infinity;
  if (/^-inf(inity)?$/i.test(s)) return -Infinity;
  return NaN;
}

function unescape(help: string): string {
  return help.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}
