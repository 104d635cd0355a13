// Host metrics. The network counters are read from /proc/net/dev, not from
// the child processes @opentelemetry/host-metrics would start on every scrape.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { defaultRouteInterfaces, parseNetDev } from '../src/instrumentations/network';
import { FIXTURES, freePort, get, pythonParse, samplesOf, startApp } from './helpers';

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0
  eth0: 1379440689   55538    3    4    0     0          0         0 11962774   60921    5    6    0     0       0          0
veth1a2b:    10       1    0    0    0     0          0         0       20       2    0    0    0     0       0          0
`;
const ROUTE = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
veth1a2b\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
`;

test('/proc/net/dev: bytes, errors and drops per interface and direction; the default route picks the interfaces', () => {
  const eth0 = parseNetDev(NET_DEV).find((c) => c.device === 'eth0');
  assert.deepEqual(eth0, { device: 'eth0', receive: { bytes: 1379440689, errors: 3, dropped: 4 }, transmit: { bytes: 11962774, errors: 5, dropped: 6 } });
  assert.deepEqual(parseNetDev(NET_DEV).map((c) => c.device), ['lo', 'eth0', 'veth1a2b']);
  assert.deepEqual([...defaultRouteInterfaces(ROUTE)], ['eth0']);
  const ROUTE6 = [
    '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth1',
    '00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo',
    'fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 veth1a2b',
  ].join('\n');
  assert.deepEqual([...defaultRouteInterfaces('', ROUTE6)], ['eth1'], 'an IPv6-only default route; not the unreachable one on lo');
  assert.deepEqual(parseNetDev('garbage\n\n  x: 1 2\n'), []);
});

test('scrapes start no child process, and the network counters are those of /proc/net/dev', async () => {
  const [appPort, metricsPort] = [await freePort(), await freePort()];
  const app = startApp(join(FIXTURES, 'spawn-counter.js'), { env: { PORT: String(appPort), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  try {
    await app.waitFor(/listening/);
    let families = pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
    for (let i = 0; i < 2; i++) families = pythonParse((await get(`http://127.0.0.1:${metricsPort}/metrics`)).body);
    assert.equal((await get(`http://127.0.0.1:${appPort}/spawns`)).body, '0\n', 'child processes started by the agent');
    const read = (file: string): string => { try { return readFileSync(file, 'utf8'); } catch { return ''; } };
    const routed = [...defaultRouteInterfaces(read('/proc/net/route'), read('/proc/net/ipv6_route'))];
    const io = samplesOf(families, 'system_network_io_bytes_total');
    assert.deepEqual([...new Set(io.map((s) => s.labels.system_device))].sort(), routed.sort());
    // Counters only grow: the scrape's value lies between two reads of the file around it.
    const after = parseNetDev(readFileSync('/proc/net/dev', 'utf8'));
    for (const s of io) {
      const now = after.find((c) => c.device === s.labels.system_device)!;
      const direction = s.labels.network_io_direction as 'receive' | 'transmit';
      assert.ok(s.value > 0 && s.value <= now[direction].bytes, `${s.labels.system_device} ${direction}: ${s.value}`);
    }
    assert.equal(samplesOf(families, 'system_network_errors_total').length, routed.length * 2);
    assert.equal(app.stderr(), '');
  } finally {
    app.kill();
  }
});

test("OpenMetrics _created: the boot time for the host's counters, the process's start for its CPU time", async () => {
  const metricsPort = await freePort();
  const before = Date.now() / 1000;
  const app = startApp(join(FIXTURES, 'server.js'), { env: { PORT: String(await freePort()), OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  try {
    await app.waitFor(/listening/);
    const body = (await get(`http://127.0.0.1:${metricsPort}/metrics`, { headers: { accept: 'application/openmetrics-text; version=1.0.0' } })).body;
    const families = pythonParse(body, true);
    const created = (family: string): number[] => [...new Set(samplesOf(families, `${family}_created`).map((s) => s.value))];
    const boot = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))![1]);
    assert.deepEqual(created('system_cpu_time_seconds'), [boot]);
    const read = (file: string): string => { try { return readFileSync(file, 'utf8'); } catch { return ''; } };
    const routed = defaultRouteInterfaces(read('/proc/net/route'), read('/proc/net/ipv6_route'));
    assert.deepEqual(created('system_network_io_bytes'), routed.size > 0 ? [boot] : []);
    const [processStart, ...others] = created('process_cpu_time_seconds');
    assert.equal(others.length, 0);
    assert.ok(processStart! >= before - 1 && processStart! <= Date.now() / 1000, `process_cpu_time_seconds_created ${processStart}, test started the app at ${before}`);
    // The event loop's time counts from the loop's start, before the lazily loaded SDK makes its instruments.
    assert.deepEqual(created('nodejs_eventloop_time_seconds'), [processStart]);
    const loop = samplesOf(families, 'nodejs_eventloop_time_seconds_total').reduce((sum, s) => sum + s.value, 0);
    assert.ok(loop <= Date.now() / 1000 - processStart!, `the loop's ${loop} s fit in the time since its _created`);
  } finally {
    app.kill();
  }
});
