// The event loop: how late its timers fire (delay), how busy it is
// (utilization) and the time spent in each state.
//
// Metric table (OTel Node.js semantic conventions):
// | OTel name                                            | type          | unit | attributes |
// | nodejs.eventloop.delay.{min,max,mean,stddev,p50,p90,p99} | gauge     | s    | |
// | nodejs.eventloop.utilization                         | gauge         | 1    | |
// | nodejs.eventloop.time                                | counter       | s    | nodejs.eventloop.state |
//
// Delay and utilization summarize a window, which ends when the data is
// exported (src/collection.ts), not on every collection: the stock
// instrumentation resets on each collection, so a cluster worker's push every
// second hid from the primary's scrape any block older than a second.
import { monitorEventLoopDelay, performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { BatchObservableResult, Meter, ObservableGauge } from '@opentelemetry/api';
import { onWindowEnd, utilizationWindow } from '../collection';

const NS_PER_S = 1e9;

/** `resolutionMs`: how often the delay is sampled; each sample is a timer that wakes an idle process. */
export function enableEventLoopMetrics(meter: Meter, resolutionMs: number): () => void {
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  histogram.enable();

  const gauge = (stat: string, description: string): ObservableGauge => meter.createObservableGauge(`nodejs.eventloop.delay.${stat}`, { description, unit: 's' });
  const delay = {
    min: gauge('min', 'Shortest event-loop delay sampled in the window.'),
    max: gauge('max', 'Longest event-loop delay sampled in the window.'),
    mean: gauge('mean', 'Mean event-loop delay in the window.'),
    stddev: gauge('stddev', 'Standard deviation of the event-loop delay in the window.'),
    p50: gauge('p50', 'Median event-loop delay in the window.'),
    p90: gauge('p90', '90th percentile of the event-loop delay in the window.'),
    p99: gauge('p99', '99th percentile of the event-loop delay in the window.'),
  };
  const gauges = Object.values(delay);
  // The last window that had a sample, in the order of `gauges`. A window shorter than two resolutions has
  // none (the first tick after a reset only starts the clock): two scrapers a few ms apart (an HA pair, two
  // jobs) would otherwise leave one of them without the series on every scrape, which Prometheus marks
  // stale. Before any sample there is no value, not a made-up 0.
  let last: number[] | undefined;
  const observeDelay = (result: BatchObservableResult): void => {
    const h = histogram;
    if (h.count > 0) last = [h.min, h.max, h.mean, h.stddev, h.percentile(50), h.percentile(90), h.percentile(99)];
    if (last === undefined) return;
    for (let i = 0; i < gauges.length; i++) result.observe(gauges[i]!, last[i]! / NS_PER_S);
  };
  meter.addBatchObservableCallback(observeDelay, gauges);

  const utilization = meter.createObservableGauge('nodejs.eventloop.utilization', { description: 'Share of the window the event loop was busy.', unit: '1' });
  // As for the CPU (cpu.ts): a window too short to measure holds little but the scrape, which keeps
  // the loop busy; it repeats the last value (or, before any, says what it has) and does not end.
  const window = utilizationWindow(performance.eventLoopUtilization(), loopMs);
  let lastUtilization: number | undefined;
  const observeUtilization = (result: { observe(value: number): void }): void => {
    const now = performance.eventLoopUtilization();
    const from = window.whole(now);
    if (from !== undefined || lastUtilization === undefined) lastUtilization = performance.eventLoopUtilization(now, from ?? window.start).utilization;
    result.observe(lastUtilization);
  };
  utilization.addCallback(observeUtilization);

  const time = meter.createObservableCounter('nodejs.eventloop.time', { description: 'Time the event loop has spent in each state.', unit: 's' });
  const observeTime = (result: { observe(value: number, attributes: { 'nodejs.eventloop.state': string }): void }): void => {
    const { active, idle } = performance.eventLoopUtilization();
    result.observe(active / 1000, { 'nodejs.eventloop.state': 'active' });
    result.observe(idle / 1000, { 'nodejs.eventloop.state': 'idle' });
  };
  time.addCallback(observeTime);

  const stopWindows = onWindowEnd(() => histogram.reset());
  return () => {
    stopWindows();
    window.stop();
    histogram.disable();
    meter.removeBatchObservableCallback(observeDelay, gauges);
    utilization.removeCallback(observeUtilization);
    time.removeCallback(observeTime);
  };
}

/** The time between two readings of the loop's utilization, in ms. */
function loopMs(from: EventLoopUtilization, to: EventLoopUtilization): number {
  const d = performance.eventLoopUtilization(to, from);
  return d.idle + d.active;
}
