// Node.js runtime metrics: the event loop (eventloop.ts), V8's heap, GC and
// active resources (v8.ts), and a version info metric, the equivalent of
// Python's python_info. Process CPU (cpu.ts) and memory (host-metrics, see
// host.ts) are enabled from host.ts, and PROMOTEL_RUNTIME_METRICS switches them too.
//
// Metric table:
// | OTel name           | type  | unit | attributes |
// | nodejs.version.info | gauge |      | version, major, minor, patch |
import type { Meter } from '@opentelemetry/api';
import { enableEventLoopMetrics } from './eventloop';
import { enableV8Metrics } from './v8';

/**
 * `resolutionMs`: how often the event-loop delay is sampled. 10 ms, as in
 * prom-client and the OTel instrumentation, sees every block of 10 ms or more,
 * but each sample is a timer that wakes an idle process (PROMOTEL_EVENTLOOP_DELAY_RESOLUTION).
 */
export function enableRuntimeMetrics(meter: Meter, resolutionMs: number): () => void {
  const stops = [enableEventLoopMetrics(meter, resolutionMs), enableV8Metrics(meter)];
  const [major = '', minor = '', patch = ''] = process.versions.node.split('.');
  const version = { version: process.version, major, minor, patch };
  const info = meter.createObservableGauge('nodejs.version.info', { description: 'Node.js version info, always 1.' });
  const observeVersion = (result: { observe(value: number, attributes: typeof version): void }): void => result.observe(1, version);
  info.addCallback(observeVersion);
  return () => {
    for (const stop of stops) stop();
    info.removeCallback(observeVersion);
  };
}
