// V8: garbage collections, the heap by space and its limit, and the
// resources that keep the event loop alive.
//
// Metric table (OTel V8 JS semantic conventions; the heap limit is promotel's,
// to alert before an out-of-memory crash). The heap's sizes are gauges, where the
// conventions have up-down counters: under node:cluster the primary sums up-down
// counters across processes, and a heap is one process's, compared with that
// process's limit (Prometheus shows both kinds as gauges; OTLP tells them apart).
// | OTel name                              | type          | unit       | attributes |
// | v8js.gc.duration                       | histogram     | s          | v8js.gc.type |
// | v8js.memory.heap.used                  | gauge         | By         | v8js.heap.space.name |
// | v8js.memory.heap.space.size            | gauge         | By         | v8js.heap.space.name |
// | v8js.memory.heap.space.available_size  | gauge         | By         | v8js.heap.space.name |
// | v8js.memory.heap.space.physical_size   | gauge         | By         | v8js.heap.space.name |
// | v8js.memory.heap.size_limit            | gauge         | By         | |
// | v8js.resource.active                   | gauge         | {resource} | v8js.resource.type |
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import type { BatchObservableResult, Meter } from '@opentelemetry/api';
import { onCollectionStart } from '../collection';

const GC_TYPES: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

// The stock instrumentation's boundaries: a scavenge takes about a
// millisecond, a full mark-compact of a large heap seconds.
const GC_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

export function enableV8Metrics(meter: Meter): () => void {
  const gc = meter.createHistogram('v8js.gc.duration', {
    description: 'Garbage collection duration, by kind: major, minor, incremental or weakcb.',
    unit: 's',
    advice: { explicitBucketBoundaries: GC_BUCKETS },
  });
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number } }>) {
      const type = GC_TYPES[entry.detail?.kind ?? -1];
      if (type !== undefined) gc.record(entry.duration / 1000, { 'v8js.gc.type': type });
    }
  });
  observer.observe({ entryTypes: ['gc'] });

  const used = meter.createObservableGauge('v8js.memory.heap.used', { description: 'Heap memory in use, by space.', unit: 'By' });
  const size = meter.createObservableGauge('v8js.memory.heap.space.size', { description: 'Heap memory reserved for a space.', unit: 'By' });
  const available = meter.createObservableGauge('v8js.memory.heap.space.available_size', { description: 'Heap memory a space can still allocate.', unit: 'By' });
  const physical = meter.createObservableGauge('v8js.memory.heap.space.physical_size', { description: 'Heap memory of a space committed in RAM.', unit: 'By' });
  const observeSpaces = (result: BatchObservableResult): void => {
    for (const s of getHeapSpaceStatistics()) {
      const attributes = { 'v8js.heap.space.name': s.space_name };
      result.observe(used, s.space_used_size, attributes);
      result.observe(size, s.space_size, attributes);
      result.observe(available, s.space_available_size, attributes);
      result.observe(physical, s.physical_space_size, attributes);
    }
  };
  meter.addBatchObservableCallback(observeSpaces, [used, size, available, physical]);

  const limit = meter.createObservableGauge('v8js.memory.heap.size_limit', {
    description: 'Maximum size the V8 heap may grow to before the process runs out of memory.',
    unit: 'By',
  });
  const observeLimit = (result: { observe(value: number): void }): void => result.observe(getHeapStatistics().heap_size_limit);
  limit.addCallback(observeLimit);

  // Taken when a collection starts: during it the SDK holds a timer per
  // callback and the host metrics read files, which are the agent's, not the app's.
  let resources: string[] = [];
  const stopSnapshots = onCollectionStart(() => (resources = process.getActiveResourcesInfo()));
  const seen = new Set<string>();
  const active = meter.createObservableGauge('v8js.resource.active', { description: 'Resources keeping the event loop alive, by type.', unit: '{resource}' });
  const observeActive = (result: { observe(value: number, attributes: { 'v8js.resource.type': string }): void }): void => {
    const counts = new Map<string, number>();
    for (const type of resources) counts.set(type, (counts.get(type) ?? 0) + 1);
    // A type seen once reads 0 when none is left, rather than vanishing.
    for (const type of counts.keys()) seen.add(type);
    for (const type of seen) result.observe(counts.get(type) ?? 0, { 'v8js.resource.type': type });
  };
  active.addCallback(observeActive);

  return () => {
    observer.disconnect();
    stopSnapshots();
    meter.removeBatchObservableCallback(observeSpaces, [used, size, available, physical]);
    limit.removeCallback(observeLimit);
    active.removeCallback(observeActive);
  };
}
