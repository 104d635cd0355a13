// Host and process metrics: memory from @opentelemetry/host-metrics, CPU
// (cpu.ts) and network (network.ts) read by promotel. The system.* groups are
// the host's; process.cpu and process.memory belong to the runtime switch,
// because they describe this process.
//
// Metric table (host-metrics'):
// | OTel name                   | type    | unit | attributes |
// | system.memory.usage         | gauge   | By   | system.memory.state |
// | system.memory.utilization   | gauge   | 1    | system.memory.state |
// | process.memory.usage        | gauge   | By   | |
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { HrTime, MeterProvider } from '@opentelemetry/api';
import { VERSION } from '../resource';
import { enableProcessCpuMetrics, enableSystemCpuMetrics } from './cpu';
import { enableNetworkMetrics, NETWORK_COUNTERS } from './network';

export const HOST_METRICS_SCOPE = '@opentelemetry/host-metrics';

// host-metrics 0.38 creates these instruments without the unit the semantic
// conventions give them; without it the Prometheus names would lack `_bytes`
// and `_ratio`.
const MISSING_UNITS: Record<string, string> = {
  'system.memory.usage': 'By',
  'system.memory.utilization': '1',
  'process.memory.usage': 'By',
};

export const hostUnitOverrides: ReadonlyMap<string, string> = new Map(
  Object.entries(MISSING_UNITS).map(([name, unit]) => [`${HOST_METRICS_SCOPE}\u0000${name}`, unit]),
);

/**
 * The host's counters count since boot, not since the agent started: their
 * start time (OpenMetrics' `_created`, OTLP's start time) is the boot time,
 * or a consumer reads the whole total as an increase at the agent's start.
 * Keys as in hostUnitOverrides; where the boot time is unknown, only the process's.
 */
export function hostStartTimes(): ReadonlyMap<string, HrTime> {
  // The process's CPU time counts from the process's start, a little before the preload's; the event
  // loop's time from the loop's start, after the preload but before the SDK, which loads lazily, makes
  // its instruments. The process's start is the one known now that comes before both.
  const origin = performance.timeOrigin;
  const processStart: HrTime = [Math.floor(origin / 1000), Math.round((origin % 1000) * 1e6)];
  const times = new Map<string, HrTime>([
    ['promotel\u0000process.cpu.time', processStart],
    ['promotel\u0000nodejs.eventloop.time', processStart],
  ]);
  const boot = bootTime();
  if (boot !== undefined) for (const key of ['promotel\u0000system.cpu.time', ...NETWORK_COUNTERS.map((name) => `promotel\u0000${name}`)]) times.set(key, boot);
  return times;
}

// /proc/stat's btime is fixed; deriving it from the uptime would move by a
// second from one reading to the next, and with it every `_created`.
function bootTime(): HrTime | undefined {
  try {
    const match = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    return match ? [Number(match[1]), 0] : undefined;
  } catch {
    return undefined; // not Linux: the start time stays the agent's
  }
}

export function enableHostMetrics(meterProvider: MeterProvider, groups: { system: boolean; process: boolean }): void {
  const metricGroups: string[] = [];
  // promotel's own meter, as for the runtime metrics it adds.
  const meter = meterProvider.getMeter('promotel', VERSION);
  if (groups.system) {
    metricGroups.push('system.memory');
    enableSystemCpuMetrics(meter);
    enableNetworkMetrics(meter);
  }
  if (groups.process) {
    metricGroups.push('process.memory');
    enableProcessCpuMetrics(meter);
  }
  if (metricGroups.length === 0) return;
  const { HostMetrics } = require('@opentelemetry/host-metrics') as typeof import('@opentelemetry/host-metrics');
  new HostMetrics({ meterProvider, name: HOST_METRICS_SCOPE, metricGroups }).start();
}
