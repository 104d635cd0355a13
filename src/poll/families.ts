// What a poll yields, before it meets the SDK: metric families with plain
// label maps. The probe results, the JSON mapping and re-exposed Prometheus
// text all become this, and one producer hands them all to the reader, so
// /metrics and /probe serialize them with the same exposition code.
import { ValueType, type Attributes } from '@opentelemetry/api';
import { AggregationTemporality, DataPointType, type MetricData, type ScopeMetrics } from '@opentelemetry/sdk-metrics';
import type { Histogram } from '@opentelemetry/sdk-metrics';
import { SUMMARY, UNKNOWN_START, type SummaryValue } from '../exposition/serialize';
import { VERSION } from '../resource';

export type Kind = 'gauge' | 'counter' | 'histogram' | 'summary';

export interface Series {
  labels: Record<string, string>;
  value: number | Histogram | SummaryValue;
  /** Unix seconds the series started counting, when the source said (`_created`); else OpenMetrics output has no `_created` for it. */
  created?: number;
}

export interface Family {
  /** The OTel name of our own metrics, or the Prometheus name of a re-exposed one (then unit is ''). */
  name: string;
  kind: Kind;
  help: string;
  unit: string;
  series: Series[];
}

/** A problem found while converting, counted in promotel_poll_errors_total{reason}. */
export interface ConvertError {
  reason: string;
  message: string;
}

export const SCOPE = { name: 'promotel.poll', version: VERSION };

/**
 * Folds the families of every target into one scope: families of the same
 * name join (their series differ by the target label); a name that arrives
 * with another kind is left out and reported, as the text format allows one
 * type per name.
 */
export function toScopeMetrics(groups: Iterable<Family[]>, onConflict: (family: Family, existing: Kind) => void): ScopeMetrics {
  const now = hrNow();
  const byName = new Map<string, { kind: Kind; metric: MetricData }>();
  for (const families of groups) {
    for (const f of families) {
      if (f.series.length === 0) continue;
      let entry = byName.get(f.name);
      if (entry && entry.kind !== f.kind) {
        onConflict(f, entry.kind);
        continue;
      }
      if (!entry) {
        entry = { kind: f.kind, metric: emptyMetric(f) };
        byName.set(f.name, entry);
      }
      const points = entry.metric.dataPoints as Array<{ startTime: [number, number]; endTime: [number, number]; attributes: Attributes; value: unknown }>;
      for (const s of f.series) {
        points.push({ startTime: s.created !== undefined ? hrFromSeconds(s.created) : UNKNOWN_START, endTime: now, attributes: s.labels, value: s.value });
      }
    }
  }
  return { scope: SCOPE, metrics: [...byName.values()].map((e) => e.metric) };
}

function emptyMetric(f: Family): MetricData {
  const descriptor = { name: f.name, description: f.help, unit: f.unit, valueType: ValueType.DOUBLE };
  const base = { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE };
  if (f.kind === 'histogram') return { ...base, dataPointType: DataPointType.HISTOGRAM, dataPoints: [] };
  if (f.kind === 'summary') return { ...base, dataPointType: SUMMARY as unknown as DataPointType.GAUGE, dataPoints: [] };
  if (f.kind === 'counter') return { ...base, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints: [] };
  return { ...base, dataPointType: DataPointType.GAUGE, dataPoints: [] };
}

function hrNow(): [number, number] {
  return hrFromSeconds(Date.now() / 1000);
}

function hrFromSeconds(s: number): [number, number] {
  const whole = Math.floor(s);
  return [whole, Math.round((s - whole) * 1e9)];
}

/** The labels every series of a target carries: its static labels, then target and job. */
export function targetLabels(target: { name: string; job: string; labels: Record<string, string> }): Record<string, string> {
  return { ...target.labels, target: target.name, job: target.job };
}

// Labels the exposition itself adds to every series; a target's own would collide.
const RESERVED = new Set(['target', 'job', 'otel_scope_name', 'otel_scope_version', 'otel_scope_schema_url']);

/** Whether a target's label of this name clashes with ours, and so moves to exported_<name>. */
export function moves(k: string, extra: Record<string, string>): boolean {
  return RESERVED.has(k) || k in extra;
}

/**
 * A series' labels with the target's (`extra`) added: its own that clash with those move to
 * exported_<name>, as often as needed to be free (as Prometheus does with honor_labels: false).
 */
export function relabel(labels: Record<string, string>, extra: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    let name = k;
    if (moves(k, extra)) {
      name = `exported_${k}`;
      while (name in labels || name in out || name in extra) name = `exported_${name}`;
    }
    out[name] = v;
  }
  return Object.assign(out, extra);
}
