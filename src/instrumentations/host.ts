// Host and process metrics from @opentelemetry/host-metrics, but for the
// network (see network.ts). The system.* groups are the host's; process.cpu
// and process.memory belong to the runtime switch, because they describe this
// process.
//
// Metric table:
// | OTel name                   | type    | unit | attributes |
// | system.cpu.time             | counter | s    | system.cpu.state, system.cpu.logical_number |
// | system.cpu.utilization      | gauge   | 1    | system.cpu.state, system.cpu.logical_number |
// | system.memory.usage         | gauge   | By   | system.memory.state |
// | system.memory.utilization   | gauge   | 1    | system.memory.state |
// | process.cpu.time            | counter | s    | process.cpu.state |
// | process.cpu.utilization     | gauge   | 1    | process.cpu.state |
// | process.memory.usage        | gauge   | By   | |
import type { MeterProvider } from '@opentelemetry/api';
import { VERSION } from '../resource';
import { enableNetworkMetrics } from './network';

export const HOST_METRICS_SCOPE = '@opentelemetry/host-metrics';

// host-metrics 0.38 creates these instruments without the unit the semantic
// conventions give them; without it the Prometheus names would lack `_bytes`
// and `_ratio`.
const MISSING_UNITS: Record<string, string> = {
  'system.cpu.utilization': '1',
  'system.memory.usage': 'By',
  'system.memory.utilization': '1',
  'process.cpu.utilization': '1',
  'process.memory.usage': 'By',
};

export const hostUnitOverrides: ReadonlyMap<string, string> = new Map(
  Object.entries(MISSING_UNITS).map(([name, unit]) => [`${HOST_METRICS_SCOPE}\u0000${name}`, unit]),
);

export function enableHostMetrics(meterProvider: MeterProvider, groups: { system: boolean; process: boolean }): void {
  const metricGroups: string[] = [];
  if (groups.system) {
    metricGroups.push('system.cpu', 'system.memory');
    // promotel's own meter, as for the runtime metrics it adds.
    enableNetworkMetrics(meterProvider.getMeter('promotel', VERSION));
  }
  if (groups.process) metricGroups.push('process.cpu', 'process.memory');
  if (metricGroups.length === 0) return;
  const { HostMetrics } = require('@opentelemetry/host-metrics') as typeof import('@opentelemetry/host-metrics');
  new HostMetrics({ meterProvider, name: HOST_METRICS_SCOPE, metricGroups }).start();
}
