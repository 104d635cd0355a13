// sdk-metrics 2.12 applies the cardinality limit to the series that are new
// within one collection: its delta storage, emptied at each collection, keeps
// limit - 1 of them and folds the rest into the overflow series. The
// cumulative store a pull reader is served from merges each collection's
// series into what it holds without any limit, so a metric with ever-new
// label values grew by limit - 1 series per scrape (19,991 series after ten
// scrapes at the default 2000), memory with it, and the overflow warning came
// once, early. Here that merge keeps the limit over the whole store: a label
// set the store does not hold yet, once it holds limit - 1 of its own, is
// added to the overflow series, as the delta storage does within a collection.
//
// The merge is a static method of an internal class (TemporalMetricProcessor,
// 2.12.0, which package.json pins). Should a release move it, the limit applies
// per collection again and test/cardinality.test.ts fails.
import type { Attributes } from '@opentelemetry/api';

interface AttributeHashMap<V> {
  readonly size: number;
  has(key: Attributes, hash?: string): boolean;
  get(key: Attributes, hash?: string): V | undefined;
  set(key: Attributes, value: V, hash?: string): void;
  entries(): IterableIterator<[Attributes, V, string]>;
}
type Merge = <V>(last: AttributeHashMap<V>, current: AttributeHashMap<V>, aggregator: { merge(a: V, b: V): V }) => AttributeHashMap<V>;

// What sdk-metrics' delta storage folds into (its hash: sorted [key, value] pairs as JSON).
const OVERFLOW: Attributes = { 'otel.metric.overflow': true };
const OVERFLOW_HASH = JSON.stringify([['otel.metric.overflow', true]]);

// One limit for the process, as the agent (or `promotel poll`) has one reader.
let limit = 2000;
let patched: boolean | undefined;

/** Makes the cumulative store of every sdk-metrics instrument keep `cardinalityLimit` series at most, overflow included. Returns whether it could. */
export function limitCumulativeSeries(cardinalityLimit: number): boolean {
  limit = cardinalityLimit;
  if (patched !== undefined) return patched;
  try {
    const processor = (require('@opentelemetry/sdk-metrics/build/src/state/TemporalMetricProcessor') as { TemporalMetricProcessor?: { merge?: Merge } }).TemporalMetricProcessor;
    if (typeof processor?.merge !== 'function' || processor.merge.length !== 3) return (patched = false);
    processor.merge = merge;
    return (patched = true);
  } catch {
    return (patched = false);
  }
}

/** As upstream: `current` merged into `last`, which is returned; but new label sets beyond the limit go to the overflow series. */
const merge: Merge = (last, current, aggregator) => {
  for (const [key, record, hash] of current.entries()) {
    const held = last.get(key, hash);
    if (held !== undefined) {
      last.set(key, aggregator.merge(held, record), hash);
      continue;
    }
    const own = last.size - (last.has(OVERFLOW, OVERFLOW_HASH) ? 1 : 0);
    if (hash === OVERFLOW_HASH || own < limit - 1) {
      last.set(key, record, hash);
      continue;
    }
    const overflow = last.get(OVERFLOW, OVERFLOW_HASH);
    last.set(OVERFLOW, overflow === undefined ? record : aggregator.merge(overflow, record), OVERFLOW_HASH);
  }
  return last;
};
