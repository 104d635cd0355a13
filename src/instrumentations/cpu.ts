// CPU time and utilization of the host (system.cpu.*) and of this process
// (process.cpu.*), in place of @opentelemetry/host-metrics' cpu groups. Those
// read os.cpus(), which leaves out iowait, softirq and steal (on a host busy
// with network traffic the states of a CPU summed to 0.75), number the CPUs by
// their place in that list (a CPU taken offline moved the next one's counts
// under its number, and counters went down), and throw on every scrape once a
// CPU is added; and they divide the process's share by every CPU of the host
// rather than those it may run on (half the truth under `taskset -c 0`).
// Here the host's CPUs come from /proc/stat by their own numbers (os.cpus()
// where there is no /proc), and the process's share is of
// os.availableParallelism().
//
// A utilization is the share of a window, which ends when the data is
// exported, as for the event loop (src/collection.ts). A window shorter than
// MIN_WINDOW_MS (a second scraper a few ms after the first) measures little but
// the scrape itself, so it repeats the last window's value and does not end.
//
// Metric table. The names and attributes are host-metrics' (the system
// semantic conventions before v1.27), so dashboards built on them keep working:
// | OTel name                 | type    | unit | attributes |
// | system.cpu.time           | counter | s    | system.cpu.state, system.cpu.logical_number |
// | system.cpu.utilization    | gauge   | 1    | system.cpu.state, system.cpu.logical_number |
// | process.cpu.time          | counter | s    | process.cpu.state |
// | process.cpu.utilization   | gauge   | 1    | process.cpu.state |
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import type { Attributes, BatchObservableCallback, BatchObservableResult, Meter, Observable } from '@opentelemetry/api';
import { utilizationWindow, type UtilizationWindow } from '../collection';

/** The states of system.cpu.state, in the order of CpuTimes' values. */
export const CPU_STATES = ['user', 'nice', 'system', 'idle', 'iowait', 'interrupt', 'steal'] as const;

/** One CPU's cumulative seconds per state, by its logical number. */
export type CpuTimes = Map<number, number[]>;

// /proc/stat counts in USER_HZ ticks, which the kernel's ABI fixes at 100 on every architecture Node
// runs on (sysconf(_SC_CLK_TCK), which Node does not expose, reports the same).
const TICKS_PER_SECOND = 100;

/**
 * The `cpuN` lines of /proc/stat: user nice system idle iowait irq softirq steal (guest and
 * guest_nice are already inside user and nice). irq and softirq are the one state `interrupt`.
 */
export function parseProcStat(text: string): CpuTimes {
  const cpus: CpuTimes = new Map();
  for (const line of text.split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    if (f.length < 4 || f.some((n) => !Number.isFinite(n))) continue;
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    cpus.set(Number(m[1]), [user, nice, system, idle, iowait, irq + softirq, steal].map((t) => t / TICKS_PER_SECOND));
  }
  return cpus;
}

/** Where there is no /proc/stat: os.cpus() (milliseconds; no iowait or steal there). */
function fromOs(): CpuTimes {
  return new Map(os.cpus().map((c, i) => [i, [c.times.user, c.times.nice, c.times.sys, c.times.idle, 0, c.times.irq, 0].map((ms) => ms / 1000)]));
}

// /proc/stat, or os.cpus() where there is none (or it names no CPU: a container that masks it).
const cpuTimesOf = (text: string | undefined): CpuTimes => {
  const cpus = text === undefined ? undefined : parseProcStat(text);
  return cpus?.size ? cpus : fromOs();
};
const readCpuTimes = async (): Promise<CpuTimes> => cpuTimesOf(await readFile('/proc/stat', 'utf8').catch(() => undefined));
// Once, at start: the first window's beginning, so that the first scrape has utilizations too.
function readCpuTimesNow(): CpuTimes {
  try {
    return cpuTimesOf(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return fromOs();
  }
}

/** The host's CPUs. */
export function enableSystemCpuMetrics(meter: Meter): () => void {
  const time = meter.createObservableCounter('system.cpu.time', { description: 'Seconds each logical CPU has spent in each state.', unit: 's' });
  const utilization = meter.createObservableGauge('system.cpu.utilization', { description: 'Share of the window each logical CPU spent in each state.', unit: '1' });
  const attributes = new Map<string, Attributes>();
  const attrs = (cpu: number, state: number): Attributes => {
    const key = `${cpu} ${state}`;
    let a = attributes.get(key);
    if (a === undefined) attributes.set(key, (a = Object.freeze({ 'system.cpu.state': CPU_STATES[state]!, 'system.cpu.logical_number': cpu })));
    return a;
  };
  const window = utilizationWindow({ at: performance.now(), cpus: readCpuTimesNow() }, elapsedMs);
  const last = new Map<number, number[]>();

  const observe = async (result: BatchObservableResult): Promise<void> => {
    const now = { at: performance.now(), cpus: await readCpuTimes() };
    const from = window.whole(now);
    for (const [cpu, times] of now.cpus) {
      for (let s = 0; s < times.length; s++) result.observe(time, times[s]!, attrs(cpu, s));
      const before = from?.cpus.get(cpu);
      if (before !== undefined) {
        // In whole microseconds: the seconds are sums of ticks, and their float differences would show as 0.0157480314957.
        const deltas = times.map((t, s) => Math.round((t - before[s]!) * 1e6));
        const total = deltas.reduce((a, b) => a + b, 0);
        // No tick in the window, or a CPU whose counts went back (offline and reset): nothing to share.
        if (total > 0 && deltas.every((d) => d >= 0)) last.set(cpu, deltas.map((d) => d / total));
      }
      const shares = last.get(cpu);
      if (shares) for (let s = 0; s < shares.length; s++) result.observe(utilization, shares[s]!, attrs(cpu, s));
    }
  };
  return observeInWindow(meter, [time, utilization], observe, window);
}

/** This process's CPU, user and system. */
export function enableProcessCpuMetrics(meter: Meter): () => void {
  const time = meter.createObservableCounter('process.cpu.time', { description: 'CPU seconds this process has used, by state.', unit: 's' });
  const utilization = meter.createObservableGauge('process.cpu.utilization', { description: 'Share of the CPUs available to this process that it used in the window, by state.', unit: '1' });
  const USER = Object.freeze({ 'process.cpu.state': 'user' });
  const SYSTEM = Object.freeze({ 'process.cpu.state': 'system' });
  const read = () => ({ at: performance.now(), usage: process.cpuUsage() });
  // The process's CPU counts from its start, which is the window's start until the first export.
  const window = utilizationWindow({ at: 0, usage: { user: 0, system: 0 } }, elapsedMs);
  let last: [number, number] | undefined;

  const observe = (result: BatchObservableResult): void => {
    const now = read();
    result.observe(time, now.usage.user / 1e6, USER);
    result.observe(time, now.usage.system / 1e6, SYSTEM);
    const from = window.whole(now);
    if (from !== undefined) {
      // Microseconds of CPU over milliseconds of wall time on each CPU the process may run on.
      const capacity = elapsedMs(from, now) * 1000 * Math.max(1, os.availableParallelism());
      const share = (us: number): number => Math.min(1, Math.max(0, us / capacity));
      last = [share(now.usage.user - from.usage.user), share(now.usage.system - from.usage.system)];
    }
    if (last) {
      result.observe(utilization, last[0], USER);
      result.observe(utilization, last[1], SYSTEM);
    }
  };
  return observeInWindow(meter, [time, utilization], observe, window);
}

const elapsedMs = (from: { at: number }, to: { at: number }): number => to.at - from.at;

/** Registers `observe` for the instruments, and ends `window` with it. */
function observeInWindow(meter: Meter, instruments: Observable[], observe: BatchObservableCallback, window: UtilizationWindow<unknown>): () => void {
  meter.addBatchObservableCallback(observe, instruments);
  return () => {
    window.stop();
    meter.removeBatchObservableCallback(observe, instruments);
  };
}
