// Network interface counters of the host, read from /proc/net/dev. They
// replace @opentelemetry/host-metrics' system.network group, which runs `cat`
// through /bin/sh for each value on every scrape (8 processes per scrape on
// the benchmark VM) and `ip route` synchronously on the app's event loop, and
// finds nothing in images without a shell. Two small file reads per scrape do
// the same. Like host-metrics, only the interfaces of the default route (IPv4
// or IPv6) are reported, so a host with hundreds of virtual interfaces gives a
// few series, and one without a default route none.
// Linux only: elsewhere these metrics are absent.
//
// Metric table. The names and attributes are host-metrics' (the system
// semantic conventions before v1.27, which renamed system.device to
// network.interface.name and system.network.dropped to
// system.network.packet.dropped), so dashboards built on host-metrics and the
// other host groups it still serves keep working:
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

/**
 * Interfaces that carry a default route: destination 0.0.0.0 in /proc/net/route
 * text, ::/0 in /proc/net/ipv6_route text (where the kernel also lists an
 * unreachable default on lo).
 */
export function defaultRouteInterfaces(ipv4: string, ipv6 = ''): Set<string> {
  const out = new Set<string>();
  for (const line of ipv4.split('\n').slice(1)) {
    const [iface, destination] = line.trim().split(/\s+/);
    if (iface && destination === '00000000') out.add(iface);
  }
  for (const line of ipv6.split('\n')) {
    const f = line.trim().split(/\s+/);
    const iface = f[9];
    if (f[0] === '0'.repeat(32) && f[1] === '00' && iface && iface !== 'lo') out.add(iface);
  }
  return out;
}

/** Counters since boot (host.ts gives them the boot time as start time). */
export const NETWORK_COUNTERS = ['system.network.io', 'system.network.errors', 'system.network.dropped'];

export function enableNetworkMetrics(meter: Meter): void {
  const io = meter.createObservableCounter('system.network.io', { description: 'Bytes received and sent by the network interfaces of the default route.', unit: 'By' });
  const errors = meter.createObservableCounter('system.network.errors', { description: 'Receive and transmit errors of the network interfaces of the default route.', unit: '{error}' });
  const dropped = meter.createObservableCounter('system.network.dropped', { description: 'Packets dropped by the network interfaces of the default route.', unit: '{packet}' });
  meter.addBatchObservableCallback(async (result) => {
    let counters: InterfaceCounters[];
    let routed: Set<string>;
    try {
      const [dev, route, route6] = await Promise.all([readFile('/proc/net/dev', 'utf8'), readFile('/proc/net/route', 'utf8').catch(() => ''), readFile('/proc/net/ipv6_route', 'utf8').catch(() => '')]);
      counters = parseNetDev(dev);
      routed = defaultRouteInterfaces(route, route6);
    } catch (err) {
      debug(`network metrics: ${describeError(err)} (not Linux?); system.network.* are left out`);
      return;
    }
    // No default route (an isolated network namespace): nothing, rather than every virtual interface of a host.
    for (const c of counters.filter((c) => routed.has(c.device))) {
      for (const direction of ['receive', 'transmit'] as const) {
        const attributes = { 'system.device': c.device, 'network.io.direction': direction };
        result.observe(io, c[direction].bytes, attributes);
        result.observe(errors, c[direction].errors, attributes);
        result.observe(dropped, c[direction].dropped, attributes);
      }
    }
  }, [io, errors, dropped]);
}
