// Network interface counters of the host, read from /proc/net/dev. They
// replace @opentelemetry/host-metrics' system.network group, which runs `cat`
// through /bin/sh for each value on every scrape (8 processes per scrape on
// the benchmark VM) and `ip route` synchronously on the app's event loop, and
// finds nothing in images without a shell. Two small file reads per scrape do
// the same. Like host-metrics, only the interfaces of the default route are
// reported, so a host with hundreds of virtual interfaces gives a few series.
// Linux only: elsewhere these metrics are absent.
//
// Metric table (OTel system semantic conventions):
// | OTel name              | type    | unit     | attributes |
// | system.network.io      | counter | By       | system.device, network.io.direction |
// | system.network.errors  | counter | {error}  | system.device, network.io.direction |
// | system.network.dropped | counter | {packet} | system.device, network.io.direction |
import { readFile } from 'node:fs/promises';
import type { Meter } from '@opentelemetry/api';
import { debug, describeError } from '../log';

export interface InterfaceCounters {
  device: string;
  receive: { bytes: number; errors: number; dropped: number };
  transmit: { bytes: number; errors: number; dropped: number };
}

/** The counters of each interface in /proc/net/dev text. */
export function parseNetDev(text: string): InterfaceCounters[] {
  const out: InterfaceCounters[] = [];
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    // The two header lines have no `name:`; their `|` separators tell them apart.
    if (colon === -1 || line.includes('|')) continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    // Receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes packets errs drop ...
    if (f.length < 12 || f.some((n) => !Number.isFinite(n))) continue;
    out.push({
      device: line.slice(0, colon).trim(),
      receive: { bytes: f[0]!, errors: f[2]!, dropped: f[3]! },
      transmit: { bytes: f[8]!, errors: f[10]!, dropped: f[11]! },
    });
  }
  return out;
}

/** Interfaces that carry a default route (destination 0.0.0.0) in /proc/net/route text. */
export function defaultRouteInterfaces(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n').slice(1)) {
    const [iface, destination] = line.trim().split(/\s+/);
    if (iface && destination === '00000000') out.add(iface);
  }
  return out;
}

export function enableNetworkMetrics(meter: Meter): void {
  const io = meter.createObservableCounter('system.network.io', { description: 'Bytes received and sent by the network interfaces of the default route.', unit: 'By' });
  const errors = meter.createObservableCounter('system.network.errors', { description: 'Receive and transmit errors of the network interfaces of the default route.', unit: '{error}' });
  const dropped = meter.createObservableCounter('system.network.dropped', { description: 'Packets dropped by the network interfaces of the default route.', unit: '{packet}' });
  meter.addBatchObservableCallback(async (result) => {
    let counters: InterfaceCounters[];
    let routed: Set<string>;
    try {
      const [dev, route] = await Promise.all([readFile('/proc/net/dev', 'utf8'), readFile('/proc/net/route', 'utf8').catch(() => '')]);
      counters = parseNetDev(dev);
      routed = defaultRouteInterfaces(route);
    } catch (err) {
      debug(`network metrics: ${describeError(err)} (not Linux?); system.network.* are left out`);
      return;
    }
    // No default route (an isolated network namespace): every interface but loopback.
    const chosen = counters.filter((c) => (routed.size > 0 ? routed.has(c.device) : c.device !== 'lo'));
    for (const c of chosen) {
      for (const direction of ['receive', 'transmit'] as const) {
        const attributes = { 'system.device': c.device, 'network.io.direction': direction };
        result.observe(io, c[direction].bytes, attributes);
        result.observe(errors, c[direction].errors, attributes);
        result.observe(dropped, c[direction].dropped, attributes);
      }
    }
  }, [io, errors, dropped]);
}
