// Observable counters and up-down counters, collected cumulatively: sdk-metrics
// 2.12 merges each collection into the last, so a label set its callback
// stopped observing (a queue removed, a network interface gone) was served
// for good with its last value. The SDK spec says it "SHOULD NOT produce
// aggregated metric data for a previously-observed attribute set which is not
// observed during a successful callback". Gauges avoid this by being collected
// as delta (reader.ts); sums cannot, since their values would become
// differences. So each collection of an observable sum keeps the points its
// callbacks observed this time, and the overflow series. The cumulative store
// still remembers the others (bounded by the cardinality limit), so a label
// set observed again goes on from the value its callback reports.
import type { Attributes } from '@opentelemetry/api';
import { OVERFLOW_ATTRIBUTE } from './labels';

// DataPointType.SUM of sdk-metrics.
const SUM = 3;

interface AsyncStorage {
  _deltaMetricStorage: { collect(): { has(attributes: Attributes): boolean } };
  _temporalMetricStorage: { buildMetrics(collector: unknown, descriptor: unknown, accumulations: unknown, time: unknown): unknown };
  _instrumentDescriptor: unknown;
}

let patched: boolean | undefined;

/** Makes sdk-metrics' observable sums leave out what their callbacks did not observe. Returns whether it could. */
export function dropUnobservedSums(): boolean {
  if (patched !== undefined) return patched;
  try {
    const storage = (require('@opentelemetry/sdk-metrics/build/src/state/AsyncMetricStorage') as { AsyncMetricStorage?: { prototype: { collect?: unknown } } }).AsyncMetricStorage;
    // The two-step collect of 2.12 that this replaces; another version is left as it is.
    if (typeof storage?.prototype.collect !== 'function' || !/_deltaMetricStorage\.collect\(\)[^]*_temporalMetricStorage\.buildMetrics\(/.test(String(storage.prototype.collect))) return (patched = false);
    storage.prototype.collect = function (this: AsyncStorage, collector: unknown, collectionTime: unknown): unknown {
      const observed = this._deltaMetricStorage.collect();
      const metric = this._temporalMetricStorage.buildMetrics(collector, this._instrumentDescriptor, observed, collectionTime) as { dataPointType: number; dataPoints: Array<{ attributes: Attributes }> } | undefined;
      if (metric?.dataPointType !== SUM) return metric;
      metric.dataPoints = metric.dataPoints.filter((p) => p.attributes[OVERFLOW_ATTRIBUTE] === true || observed.has(p.attributes));
      // As sdk-metrics does for a collection with nothing to show: no metric rather than an empty one.
      return metric.dataPoints.length > 0 ? metric : undefined;
    };
    return (patched = true);
  } catch {
    return (patched = false);
  }
}
