// Prometheus text 0.0.4 and OpenMetrics 1.0.0 from sdk-metrics' ResourceMetrics.
//
// The stock @opentelemetry/exporter-prometheus serializer leaves units out of
// names and renders every label set again on every scrape. Here the label
// block of each attribute set is rendered once and kept in a WeakMap keyed by
// the attributes object, which the SDK keeps for the life of a series; a scrape
// is then mostly string concatenation.
import type { Attributes, HrTime } from '@opentelemetry/api';
import type { DataPoint, Histogram, MetricData, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { familyName, sanitizeLabelName, type FamilyKind } from './names';

// Numeric values of sdk-metrics' DataPointType, inlined so that serializing loads nothing.
const HISTOGRAM = 0;
const EXPONENTIAL_HISTOGRAM = 1;
const GAUGE = 2;
const SUM = 3;

export const OVERFLOW_ATTRIBUTE = 'otel.metric.overflow';

export interface SerializeOptions {
  openMetrics: boolean;
  /** `${scopeName}\0${instrumentName}` -> UCUM unit, for instruments that ship without one. */
  unitOverrides?: ReadonlyMap<string, string>;
  /** Told of things the output had to leave out or fold, so the caller can warn once. */
  onProblem?: (key: string, message: string) => void;
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
  help: string;
  body: string[];
  /** The first scope that claimed the name; others of another kind are dropped. */
  owner: string;
}

const labelBlocks = new WeakMap<Attributes, string>();
const leStrings = new WeakMap<number[], string[]>();

export function serialize(data: ResourceMetrics, options: SerializeOptions): string {
  const om = options.openMetrics;
  const families = new Map<string, Family>();

  for (const { scope, metrics } of data.scopeMetrics) {
    let scopeLabels = `otel_scope_name="${escapeLabelValue(scope.name)}"`;
    if (scope.version) scopeLabels += `,otel_scope_version="${escapeLabelValue(scope.version)}"`;
    for (const metric of metrics) {
      if (metric.dataPoints.length === 0) continue;
      const kind = kindOf(metric);
      if (kind === undefined) {
        options.onProblem?.(`exponential:${metric.descriptor.name}`, `metric ${metric.descriptor.name} is an exponential histogram, which the Prometheus text formats cannot carry; it is left out of the scrape: use explicit-bucket histograms (the default) for it`);
        continue;
      }
      const unit = options.unitOverrides?.get(`${scope.name}\u0000${metric.descriptor.name}`) ?? metric.descriptor.unit;
      const names = familyName(metric.descriptor.name, unit, kind);
      const name = om ? names.openmetrics : names.text;
      if (name === 'target_info' || name === 'target') {
        options.onProblem?.(`reserved:${metric.descriptor.name}`, `metric ${metric.descriptor.name} would be exposed as ${name}, which is reserved for the resource; rename the instrument`);
        continue;
      }
      let family = families.get(name);
      if (family === undefined) {
        let head = `# HELP ${name} ${escapeHelp(metric.descriptor.description.trim() || metric.descriptor.name, om)}\n# TYPE ${name} ${kind}\n`;
        if (om && names.unit) head += `# UNIT ${name} ${names.unit}\n`;
        family = { kind, name, help: head, body: [], owner: scope.name };
        families.set(name, family);
      } else if (family.kind !== kind) {
        options.onProblem?.(`conflict:${name}:${scope.name}`, `metric ${metric.descriptor.name} of scope ${scope.name} maps to ${name}, already a ${family.kind} of scope ${family.owner}; it is left out: give one of the instruments another name`);
        continue;
      }
      // Samples are named from the base name: counters add `_total` themselves.
      samples(family.body, metric, kind, names.openmetrics, scopeLabels, om, options);
    }
  }

  const parts = [targetInfo(data.resource.attributes, om)];
  for (const family of families.values()) parts.push(family.help, ...family.body);
  if (om) parts.push('# EOF\n');
  return parts.join('');
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
    case EXPONENTIAL_HISTOGRAM:
    default:
      return undefined;
  }
}

// A growing rope of small strings is live data that every young-generation GC
// copies again, which made large scrapes several times slower than their
// string work. Lines are gathered in chunks that are flattened and set aside
// once they pass CHUNK characters.
const CHUNK = 32 * 1024;
function flat(s: string): string {
  // Converting to a number makes V8 flatten the string first; the parse stops at the first character.
  void Number(s);
  return s;
}

function samples(parts: string[], metric: MetricData, kind: FamilyKind, base: string, scopeLabels: string, om: boolean, options: SerializeOptions): void {
  let out = '';
  const points = metric.dataPoints as DataPoint<number | Histogram>[];
  for (let i = 0; i < points.length; i++) {
    const point = points[i]!;
    const attrs = point.attributes;
    if (attrs[OVERFLOW_ATTRIBUTE] === true) {
      options.onProblem?.(`overflow:${metric.descriptor.name}`, `metric ${metric.descriptor.name} reached its cardinality limit; further label sets are counted in the series with otel_metric_overflow="true": drop high-cardinality attributes or raise PROMOTEL_CARDINALITY_LIMIT`);
    }
    const own = labelBlock(attrs);
    const labels = own === '' ? scopeLabels : `${own},${scopeLabels}`;
    if (kind === 'histogram') {
      const exemplars = om ? (point as ExemplarPoint).exemplars : undefined;
      out += histogram(base, labels, point.value as Histogram, om ? point.startTime : undefined, exemplars);
    } else if (kind === 'counter') {
      out += `${base}_total{${labels}} ${formatNumber(point.value as number)}\n`;
      if (om) out += `${base}_created{${labels}} ${seconds(point.startTime)}\n`;
    } else {
      out += `${base}{${labels}} ${formatNumber(point.value as number)}\n`;
    }
    if (out.length > CHUNK) {
      parts.push(flat(out));
      out = '';
    }
  }
  if (out !== '') parts.push(flat(out));
}

function histogram(base: string, labels: string, value: Histogram, created: HrTime | undefined, exemplars: Array<Exemplar | undefined> | undefined): string {
  const { boundaries, counts } = value.buckets;
  let les = leStrings.get(boundaries);
  if (les === undefined) {
    les = boundaries.map((b) => `,le="${formatNumber(b)}"} `);
    leStrings.set(boundaries, les);
  }
  const prefix = `${base}_bucket{${labels}`;
  let out = '';
  let cumulative = 0;
  for (let i = 0; i < les.length; i++) {
    cumulative += counts[i] ?? 0;
    out += exemplars?.[i] === undefined ? `${prefix}${les[i]}${cumulative}\n` : `${prefix}${les[i]}${cumulative}${exemplarText(exemplars[i]!)}\n`;
  }
  const last = exemplars?.[les.length];
  out += last === undefined ? `${prefix},le="+Inf"} ${value.count}\n` : `${prefix},le="+Inf"} ${value.count}${exemplarText(last)}\n`;
  out += `${base}_count{${labels}} ${value.count}\n`;
  if (value.sum !== undefined) out += `${base}_sum{${labels}} ${formatNumber(value.sum)}\n`;
  if (created !== undefined) out += `${base}_created{${labels}} ${seconds(created)}\n`;
  return out;
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

/** `k="v",...` for an attribute set, without braces; '' when it has none. */
export function labelBlock(attrs: Attributes): string {
  let block = labelBlocks.get(attrs);
  if (block !== undefined) return block;
  block = fastLabelBlock(attrs) ?? foldedLabelBlock(attrs);
  labelBlocks.set(attrs, block);
  return block;
}

// The common case: no two keys fold onto one label name, so no sorting or joining is needed.
function fastLabelBlock(attrs: Attributes): string | undefined {
  let block = '';
  const seen: string[] = [];
  for (const key in attrs) {
    const value = attrs[key];
    if (value === undefined || value === null) continue;
    const label = sanitizeLabelName(key);
    if (seen.includes(label)) return undefined;
    seen.push(label);
    const text = typeof value === 'string' ? value : Array.isArray(value) ? JSON.stringify(value) : String(value);
    block += `${block === '' ? '' : ','}${label}="${escapeLabelValue(text)}"`;
  }
  return block;
}

function foldedLabelBlock(attrs: Attributes): string {
  const byLabel = new Map<string, string[]>();
  // Sorted so that keys which fold onto one label name join their values in a stable order, as the spec asks.
  for (const key of Object.keys(attrs).sort()) {
    const value = attrs[key];
    if (value === undefined || value === null) continue;
    const label = sanitizeLabelName(key);
    const text = Array.isArray(value) ? JSON.stringify(value) : String(value);
    const list = byLabel.get(label);
    if (list) list.push(text);
    else byLabel.set(label, [text]);
  }
  let block = '';
  for (const [label, values] of byLabel) {
    block += `${block === '' ? '' : ','}${label}="${escapeLabelValue(values.join(';'))}"`;
  }
  return block;
}

const LABEL_SPECIAL = /[\\"\n]/;
export function escapeLabelValue(value: string): string {
  if (!LABEL_SPECIAL.test(value)) return value;
  return value.replace(/[\\"\n]/g, (c) => (c === '\\' ? '\\\\' : c === '"' ? '\\"' : '\\n'));
}

function escapeHelp(text: string, om: boolean): string {
  // Text 0.0.4 escapes backslash and newline in HELP; OpenMetrics escapes double quotes too.
  return text.replace(om ? /[\\"\n]/g : /[\\\n]/g, (c) => (c === '\\' ? '\\\\' : c === '"' ? '\\"' : '\\n'));
}

export function formatNumber(value: number): string {
  if (Number.isFinite(value)) return String(value);
  if (Number.isNaN(value)) return 'NaN';
  return value > 0 ? '+Inf' : '-Inf';
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
