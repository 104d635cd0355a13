// Node.js runtime metrics: @opentelemetry/instrumentation-runtime-node for the
// event loop, GC and V8 heap, plus what it lacks: the heap size limit (to
// alert before an out-of-memory crash) and a version info metric, the
// equivalent of Python's python_info.
//
// Metric table:
// | OTel name                                  | type        | unit | attributes |
// | nodejs.eventloop.delay.{min,max,mean,stddev,p50,p90,p99} | gauge | s | |
// | nodejs.eventloop.utilization               | gauge       | 1    | |
// | nodejs.eventloop.time                      | counter     | s    | nodejs.eventloop.state |
// | v8js.gc.duration                           | histogram   | s    | v8js.gc.type |
// | v8js.memory.heap.used                      | gauge       | By   | v8js.heap.space.name |
// | v8js.memory.heap.space.size                | updowncounter | By | v8js.heap.space.name |
// | v8js.memory.heap.space.available_size      | gauge       | By   | v8js.heap.space.name |
// | v8js.memory.heap.space.physical_size       | gauge       | By   | v8js.heap.space.name |
// | v8js.resource.active                       | gauge       | {resource} | v8js.resource.type |
// | v8js.memory.heap.size_limit                | gauge       | By   | |
// | nodejs.version.info                        | gauge       |      | version, major, minor, patch |
import { getHeapStatistics } from 'node:v8';
import type { Meter, MeterProvider } from '@opentelemetry/api';

/**
 * `resolutionMs`: how often the event-loop delay is sampled. 10 ms, as in
 * prom-client and the OTel instrumentation, sees every block of 10 ms or more,
 * but each sample is a timer that wakes an idle process (PROMOTEL_EVENTLOOP_DELAY_RESOLUTION).
 */
export function enableRuntimeMetrics(meterProvider: MeterProvider, meter: Meter, resolutionMs: number): () => void {
  const { RuntimeNodeInstrumentation } = require('@opentelemetry/instrumentation-runtime-node') as typeof import('@opentelemetry/instrumentation-runtime-node');
  const runtime = new RuntimeNodeInstrumentation({ monitoringPrecision: resolutionMs });
  runtime.setMeterProvider(meterProvider);
  runtime.enable();

  meter
    .createObservableGauge('v8js.memory.heap.size_limit', {
      description: 'Maximum size the V8 heap may grow to before the process runs out of memory.',
      unit: 'By',
    })
    .addCallback((result) => result.observe(getHeapStatistics().heap_size_limit));

  const [major = '', minor = '', patch = ''] = process.versions.node.split('.');
  const version = { version: process.version, major, minor, patch };
  meter
    .createObservableGauge('nodejs.version.info', { description: 'Node.js version info, always 1.' })
    .addCallback((result) => result.observe(1, version));

  return () => runtime.disable();
}
