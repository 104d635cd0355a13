// Prometheus text 0.0.4 and OpenMetrics 1.0.0 from sdk-metrics' ResourceMetrics.
//
// The stock @opentelemetry/exporter-prometheus serializer leaves units out of
// names and renders every label set again on every scrape. Here the output is
// written straight into one Buffer: the label block of each attribute set is
// encoded to bytes once and kept in a WeakMap keyed by the attributes object
// (which the SDK keeps for the life of a series), so a scrape is mostly copies
// of cached bytes and digits of the values. Building the text as JS strings
// instead cost several times more: many small strings, a rope to flatten, and
// a UTF-8 encoding pass at the end.
import type { Attributes, HrTime } from '@opentelemetry/api';
import type { DataPoint, Histogram, MetricData, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { familyName, type FamilyKind } from './names';
import { forgetBeyond, labelEntry, RESERVED_HISTOGRAM, RESERVED_PLAIN, RESERVED_SUMMARY, scopeLabels, seenPoints, type ScopeLabels } from './labels';
import { LINE_SLACK, NL, Out } from './out';
import { escapeHelp, fastLabelBlock, foldedLabelBlock, formatBound, formatNumber, labelBlock } from './text';

export { escapeLabelValue, formatNumber, labelBlock } from './text';
export { OVERFLOW_ATTRIBUTE } from './labels';

// Numeric values of sdk-metrics' DataPointType, inlined so that serializing loads nothing.
const HISTOGRAM = 0;
const EXPONENTIAL_HISTOGRAM = 1;
const GAUGE = 2;
const SUM = 3;
/**
 * Not an sdk-metrics type: the SDK has no summary, but the sidecar re-exposes
 * summaries it scraped from other services (quantiles precomputed there).
 */
export const SUMMARY = 100;

/** A start time of 0 means unknown (a re-exposed series whose source gave no `_created`): no `_created` line is written. */
export const UNKNOWN_START: [number, number] = [0, 0];

export interface SummaryValue {
  /** [quantile, value] pairs, as the source reported them. */
  quantiles: Array<[number, number]>;
  /** Absent when the source gave none: then no line is written. */
  sum?: number;
  count?: number;
}

export interface SerializeOptions {
  openMetrics: boolean;
  /** Told of things the output had to leave out or fold, so the caller can warn once. */
  onProblem?: (key: string, message: string) => void;
  /**
   * Memory to write the output into: an earlier output nobody reads any more.
   * Used when it is at least as large as the last output, or else a new
   * buffer is allocated. The result is a view of whichever was written.
   */
  into?: Buffer;
}

/** A measurement of a sampled span, shown after a histogram bucket in OpenMetrics. */
export interface Exemplar {
  value: number;
  traceId: string;
  spanId: string;
  /** Unix time in seconds. */
  timeSeconds: number;
}

/** A histogram point that may carry the latest exemplar of each bucket (index as in `buckets.counts`). sdk-metrics has none; our own producers add them. */
export type ExemplarPoint = DataPoint<Histogram> & { exemplars?: Array<Exemplar | undefined> };

interface Family {
  kind: FamilyKind;
  name: string;
  /** Base name of the samples (counters add `_total` themselves). */
  base: string;
  help: string;
  parts: Array<{ metric: MetricData; scope: ScopeLabels }>;
  /** The first scope that claimed the name; others of another kind are dropped. */
  owner: string;
}

// `,le="..."} ` per boundary, per format: OpenMetrics writes canonical numbers (`1.0`).
const leBytes = [new WeakMap<number[], Array<Uint8Array | null>>(), new WeakMap<number[], Array<Uint8Array | null>>()];
// Each family's sample names, by base name: `_total{`, `_bucket{`, ...
const sampleNames = new Map<string, Uint8Array>();

// Output sizes of the last scrapes, so that the buffer is usually allocated once at the right size.
const lastSize = [64 * 1024, 64 * 1024];

/** The exposition as a string (tests and callers that want text; the endpoint uses serializeToBuffer). */
export function serialize(data: ResourceMetrics, options: SerializeOptions): string {
  return serializeToBuffer(data, options).toString('utf8');
}

export function serializeToBuffer(data: ResourceMetrics, options: SerializeOptions): Buffer {
  const om = options.openMetrics;
  const families = new Map<string, Family>();
  // Every family name and sample name in the output, and the family that wrote
  // it: a gauge `x_count` next to a histogram `x`, or (in OpenMetrics) a gauge
  // `x_total` next to a counter `x`, would mix two families' samples.
  const claimed = new Map<string, Family>();

  for (const { scope, metrics } of data.scopeMetrics) {
    const labels = scopeLabels(scope);
    for (const metric of metrics) {
      if (metric.dataPoints.length === 0) continue;
      const kind = kindOf(metric);
      if (kind === undefined) {
        options.onProblem?.(`exponential:${metric.descriptor.name}`, `metric ${metric.descriptor.name} is an exponential histogram, which the Prometheus text formats cannot carry; it is left out of the scrape: use explicit-bucket histograms (the default) for it`);
        continue;
      }
      const names = familyName(metric.descriptor.name, metric.descriptor.unit, kind);
      const name = om ? names.openmetrics : names.text;
      if (name === 'target_info' || name === 'target') {
        options.onProblem?.(`reserved:${metric.descriptor.name}`, `metric ${metric.descriptor.name} would be exposed as ${name}, which is reserved for the resource; rename the instrument`);
        continue;
      }
      let family = families.get(name);
      if (family === undefined) {
        const written = writtenNames(kind, name, names.openmetrics, om);
        const other = written.map((n) => claimed.get(n)).find((f) => f !== undefined);
        if (other !== undefined) {
          options.onProblem?.(`conflict:${name}:${scope.name}`, `metric ${metric.descriptor.name} of scope ${scope.name} maps to ${name}, whose sample names clash with the ${other.kind} ${other.name} of scope ${other.owner}; it is left out: give one of the instruments another name`);
          continue;
        }
        let head = `# HELP ${name} ${escapeHelp(metric.descriptor.description.trim() || metric.descriptor.name, om)}\n# TYPE ${name} ${kind}\n`;
        if (om && names.unit) head += `# UNIT ${name} ${names.unit}\n`;
        // Samples are named from the base name: counters add `_total` themselves.
        family = { kind, name, base: names.openmetrics, help: head, parts: [], owner: scope.name };
        families.set(name, family);
        for (const n of written) claimed.set(n, family);
      } else if (family.kind !== kind) {
        options.onProblem?.(`conflict:${name}:${scope.name}`, `metric ${metric.descriptor.name} of scope ${scope.name} maps to ${name}, already a ${family.kind} of scope ${family.owner}; it is left out: give one of the instruments another name`);
        continue;
      } else if (family.parts.some((p) => p.scope === labels)) {
        // Two instruments of one scope under one name (another value type, or names that differ only in
        // characters Prometheus does not allow) would write the same series twice, and a scraper keeps one.
        options.onProblem?.(`duplicate:${name}:${scope.name}`, `metric ${metric.descriptor.name} of scope ${scope.name} maps to ${name}, as another instrument of that scope does; it is left out, since both would write the same series: give one of the instruments another name`);
        continue;
      }
      family.parts.push({ metric, scope: labels });
    }
  }

  const want = lastSize[om ? 1 : 0]! + 4096;
  const out = new Out(options.into !== undefined && options.into.length >= want ? options.into : want);
  out.text(targetInfo(data.resource.attributes, om));
  for (const family of families.values()) {
    out.text(family.help);
    for (const { metric, scope } of family.parts) samples(out, metric, family.kind, family.base, scope, om, options);
  }
  if (om) out.text('# EOF\n');
  // A little above the last size, so that a slowly growing output does not copy.
  lastSize[om ? 1 : 0] = Math.max(64 * 1024, Math.ceil(out.pos * 1.05));
  return out.buf.subarray(0, out.pos);
}

function kindOf(metric: MetricData): FamilyKind | undefined {
  switch (metric.dataPointType) {
    case HISTOGRAM:
      return 'histogram';
    case GAUGE:
      return 'gauge';
    case SUM:
      // A non-monotonic sum (UpDownCounter) can go down: Prometheus calls that a gauge.
      return (metric as MetricData & { isMonotonic: boolean }).isMonotonic ? 'counter' : 'gauge';
    case SUMMARY as number:
      return 'summary';
    case EXPONENTIAL_HISTOGRAM:
    default:
      return undefined;
  }
}

/** The family name and the sample names a family of this kind writes. */
function writtenNames(kind: FamilyKind, name: string, base: string, om: boolean): string[] {
  const created = om ? [`${base}_created`] : [];
  switch (kind) {
    case 'counter':
      return [name, `${base}_total`, ...created];
    case 'histogram':
      return [name, `${base}_bucket`, `${base}_count`, `${base}_sum`, ...created];
    case 'summary':
      return [name, `${base}_count`, `${base}_sum`, ...created];
    default:
      return [name];
  }
}

function sampleName(base: string, suffix: string): Uint8Array {
  const key = base + suffix;
  let bytes = sampleNames.get(key);
  if (bytes === undefined) {
    bytes = Buffer.from(`${key}{`, 'utf8');
    if (sampleNames.size >= 10_000) sampleNames.clear();
    sampleNames.set(key, bytes);
  }
  return bytes;
}

function samples(out: Out, metric: MetricData, kind: FamilyKind, base: string, scope: ScopeLabels, om: boolean, options: SerializeOptions): void {
  const points = metric.dataPoints as DataPoint<number | Histogram>[];
  if (kind === 'histogram') {
    histograms(out, metric, points as DataPoint<Histogram>[], base, scope, om, options);
    return;
  }
  if (kind === 'summary') {
    summaries(out, points as unknown as DataPoint<SummaryValue>[], base, scope, om);
    return;
  }
  const name = sampleName(base, kind === 'counter' ? '_total' : '');
  const created = om && kind === 'counter' ? sampleName(base, '_created') : undefined;
  const nameLength = Math.max(name.length, created?.length ?? 0);
  // OpenMetrics: a Total is a non-NaN, non-negative number; either fails the scraper's whole parse.
  const totals = om && kind === 'counter';
  const seen = seenPoints(scope, metric);
  for (let i = 0; i < points.length; i++) {
    const point = points[i]!;
    if (totals && !((point.value as number) >= 0)) {
      options.onProblem?.(`total:${metric.descriptor.name}`, `counter ${metric.descriptor.name} holds ${String(point.value)}, which OpenMetrics does not allow in a total; that series is left out of OpenMetrics scrapes: check the values given to it`);
      continue;
    }
    const labels = labelEntry(point.attributes, scope, RESERVED_PLAIN, seen, i, metric, options.onProblem);
    if (labels.overflow) overflowProblem(metric, options);
    out.room(2 * (nameLength + labels.bytes.length + LINE_SLACK));
    out.sample(name, labels.bytes, point.value as number);
    if (created !== undefined && point.startTime[0] !== 0) {
      out.created(created, labels.bytes, seconds(point.startTime));
    }
  }
  forgetBeyond(seen, points.length);
}

function histograms(out: Out, metric: MetricData, points: DataPoint<Histogram>[], base: string, scope: ScopeLabels, om: boolean, options: SerializeOptions): void {
  const bucket = sampleName(base, '_bucket');
  const count = sampleName(base, '_count');
  const sum = sampleName(base, '_sum');
  const created = om ? sampleName(base, '_created') : undefined;
  const seen = seenPoints(scope, metric);
  for (let i = 0; i < points.length; i++) {
    const point = points[i]!;
    const labels = labelEntry(point.attributes, scope, RESERVED_HISTOGRAM, seen, i, metric, options.onProblem);
    if (labels.overflow) overflowProblem(metric, options);
    const value = point.value;
    const { boundaries, counts } = value.buckets;
    const leCache = leBytes[om ? 1 : 0]!;
    let les = leCache.get(boundaries);
    if (les === undefined) {
      // A bound given twice (advice or a View may repeat one; sdk-metrics sorts but keeps both) has an
      // empty bucket (b, b] after it, and a second le="b" line would be a duplicate series: null skips it.
      les = boundaries.map((b, k) => (k > 0 && b === boundaries[k - 1] ? null : Buffer.from(`,le="${om ? canonicalNumber(b) : formatBound(b)}"} `, 'utf8')));
      les.push(Buffer.from(',le="+Inf"} ', 'utf8'));
      leCache.set(boundaries, les);
    }
    const exemplars = om ? (point as ExemplarPoint).exemplars : undefined;
    const line = Math.max(bucket.length, created?.length ?? 0) + labels.bytes.length + LINE_SLACK;
    out.room(line * (les.length + 3));
    // Each bucket line starts with the same `name_bucket{labels`: written once, then copied within the buffer.
    const start = out.pos;
    out.bytes(bucket);
    out.bytes(labels.bytes);
    const prefix = out.pos - start;
    let cumulative = 0;
    for (let k = 0; k < les.length; k++) {
      const le = les[k]!;
      if (k < les.length - 1) cumulative += counts[k] ?? 0;
      if (le === null) continue;
      if (k > 0) {
        out.buf.copyWithin(out.pos, start, start + prefix);
        out.pos += prefix;
      }
      out.bytes(le);
      out.num(k < les.length - 1 ? cumulative : value.count);
      const e = exemplars?.[k];
      if (e !== undefined) {
        const text = exemplarText(e);
        out.room(text.length * 3 + line * (les.length - k + 3));
        out.pos += out.buf.write(text, out.pos, 'utf8');
      }
      out.buf[out.pos++] = NL;
    }
    out.room(line * 3);
    // A sum is shown only when every bucket is positive (the OTel compatibility rules). OpenMetrics also
    // wants a count and a sum together or neither, so there the +Inf bucket alone says the count; a
    // parser rejects the whole scrape otherwise.
    const positive = !(boundaries[0]! < 0);
    if (positive || !om) out.sample(count, labels.bytes, value.count);
    if (value.sum !== undefined && positive) {
      out.sample(sum, labels.bytes, value.sum);
    }
    if (created !== undefined && point.startTime[0] !== 0) {
      out.created(created, labels.bytes, seconds(point.startTime));
    }
  }
  forgetBeyond(seen, points.length);
}

// Rare (re-exposed data only), so written as text rather than with the cached bytes of the hot paths.
function summaries(out: Out, points: DataPoint<SummaryValue>[], base: string, scope: ScopeLabels, om: boolean): void {
  for (const point of points) {
    const own = fastLabelBlock(point.attributes, RESERVED_SUMMARY) ?? foldedLabelBlock(point.attributes, RESERVED_SUMMARY);
    const labels = own === '' ? scope.text : `${own},${scope.text}`;
    const { quantiles, sum, count } = point.value;
    let text = '';
    for (const [q, v] of quantiles) text += `${base}{${labels},quantile="${om ? canonicalNumber(q) : formatBound(q)}"} ${formatNumber(v)}\n`;
    if (sum !== undefined) text += `${base}_sum{${labels}} ${formatNumber(sum)}\n`;
    if (count !== undefined) text += `${base}_count{${labels}} ${formatNumber(count)}\n`;
    if (om && point.startTime[0] !== 0) text += `${base}_created{${labels}} ${seconds(point.startTime)}\n`;
    out.text(text);
  }
}

function overflowProblem(metric: MetricData, options: SerializeOptions): void {
  options.onProblem?.(`overflow:${metric.descriptor.name}`, `metric ${metric.descriptor.name} reached its cardinality limit; further label sets are counted in the series with otel_metric_overflow="true": drop high-cardinality attributes or raise PROMOTEL_CARDINALITY_LIMIT`);
}

/** OpenMetrics' canonical form of a bucket bound or quantile: integers keep a `.0` (`1.0`), as the Go and Python clients write them. */
// OpenMetrics' canonical number: the Go spelling, with `.0` where it has neither point nor exponent.
function canonicalNumber(value: number): string {
  const text = formatBound(value);
  return /^-?\d+$/.test(text) ? `${text}.0` : text;
}

function exemplarText(e: Exemplar): string {
  return ` # {trace_id="${e.traceId}",span_id="${e.spanId}"} ${formatNumber(e.value)} ${formatNumber(e.timeSeconds)}`;
}

function targetInfo(attributes: Attributes, om: boolean): string {
  const labels = labelBlock(attributes);
  if (labels === '') return '';
  const head = om ? '# HELP target Target metadata\n# TYPE target info\n' : '# HELP target_info Target metadata\n# TYPE target_info gauge\n';
  return `${head}target_info{${labels}} 1\n`;
}

// Most points of a scrape share a start time; formatting a float is the dear part.
let lastTime: HrTime = [0, 0];
let lastSeconds = '0';
function seconds(time: HrTime): string {
  if (time[0] !== lastTime[0] || time[1] !== lastTime[1]) {
    lastTime = time;
    lastSeconds = formatNumber(time[0] + time[1] / 1e9);
  }
  return lastSeconds;
}
