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
// The other way round, the delta storage's limit folded series the store
// already held: once limit - 1 label sets had come in a scrape interval, the
// next ones went to the overflow series however long they had existed, so an
// established series stopped growing and its increments were counted as
// overflow. The SDK spec says a cumulative metric keeps aggregating the sets
// observed before the overflow began. So the delta storage, when full, still
// takes a set the cumulative store holds (at most limit - 1 more per
// interval), and the merge of one interval's own maps, which starts from an
// empty map, is left unlimited; the merge into the store decides.
//
// The merge is a static method of an internal class (TemporalMetricProcessor,
// 2.12.0, which package.json pins), the delta storage's record() a method of
// another (DeltaMetricProcessor). Should a release move them, the limit applies
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
// Set while sdk-metrics merges one interval's maps into an empty one: no limit there.
let unlimited = false;

interface TemporalProcessor {
  _reportHistory: Map<unknown, { accumulations: AttributeHashMap<unknown> }>;
}
interface DeltaProcessor {
  _activeCollectionStorage: AttributeHashMap<Accumulation | undefined>;
  _cardinalityLimit: number;
  _aggregator: { createAccumulation(start: [number, number]): Accumulation | undefined };
  /** The cumulative store's history of the instrument this delta storage belongs to, set at its first collection. */
  [STORE]?: TemporalProcessor['_reportHistory'];
}
interface Accumulation {
  record(value: number): void;
}
const STORE = Symbol('promotel.cumulativeStore');

/** Makes the cumulative store of every sdk-metrics instrument keep `cardinalityLimit` series at most, overflow included. Returns whether it could. */
export function limitCumulativeSeries(cardinalityLimit: number): boolean {
  limit = cardinalityLimit;
  if (patched !== undefined) return patched;
  try {
    const state = '@opentelemetry/sdk-metrics/build/src/state/';
    type Proto = Record<string, ((...args: never[]) => unknown) | undefined>;
    const processor = (require(`${state}TemporalMetricProcessor`) as { TemporalMetricProcessor?: { merge?: Merge; prototype: Proto } }).TemporalMetricProcessor;
    const delta = (require(`${state}DeltaMetricProcessor`) as { DeltaMetricProcessor?: { prototype: Proto } }).DeltaMetricProcessor;
    const sync = (require(`${state}SyncMetricStorage`) as { SyncMetricStorage?: { prototype: Proto } }).SyncMetricStorage;
    const mergeUnreported = processor?.prototype._getMergedUnreportedAccumulations;
    const record = delta?.prototype.record;
    const collect = sync?.prototype.collect;
    if (typeof processor?.merge !== 'function' || processor.merge.length !== 3 || typeof mergeUnreported !== 'function' || typeof record !== 'function' || typeof collect !== 'function') return (patched = false);
    processor.merge = merge;
    processor.prototype._getMergedUnreportedAccumulations = function (this: unknown, collector: never) {
      unlimited = true;
      try {
        return mergeUnreported.call(this, collector);
      } finally {
        unlimited = false;
      }
    };
    // Every measurement of the app's counters and histograms passes here: below the limit, one comparison more.
    delta!.prototype.record = function (this: DeltaProcessor, value: never, attributes: never, collectionTime: never) {
      if (this._activeCollectionStorage.size < this._cardinalityLimit || !recordHeld(this, value, attributes, collectionTime)) record.call(this, value, attributes, collectionTime);
    };
    sync!.prototype.collect = function (this: { _deltaMetricStorage: DeltaProcessor; _temporalMetricStorage: TemporalProcessor }, ...args: never[]) {
      this._deltaMetricStorage[STORE] ??= this._temporalMetricStorage._reportHistory;
      return collect.apply(this, args);
    };
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
    if (unlimited || hash === OVERFLOW_HASH || own < limit - 1) {
      last.set(key, record, hash);
      continue;
    }
    const overflow = last.get(OVERFLOW, OVERFLOW_HASH);
    last.set(OVERFLOW, overflow === undefined ? record : aggregator.merge(overflow, record), OVERFLOW_HASH);
  }
  return last;
};

/** With the interval's storage full: records a label set the cumulative store holds under its own series. Returns whether it did. */
function recordHeld(delta: DeltaProcessor, value: number, attributes: Attributes, collectionTime: number): boolean {
  const store = delta[STORE];
  const active = delta._activeCollectionStorage;
  if (store === undefined || active.has(attributes)) return false;
  for (const report of store.values()) {
    if (!report.accumulations.has(attributes)) continue;
    const accumulation = delta._aggregator.createAccumulation(core().millisToHrTime(collectionTime));
    active.set(attributes, accumulation);
    accumulation?.record(value);
    return true;
  }
  return false;
}

const core = (): typeof import('@opentelemetry/core') => require('@opentelemetry/core') as typeof import('@opentelemetry/core');
