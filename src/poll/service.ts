// The sidecar process minus the command line: one MeterProvider with the
// same PullReader, exposition and endpoint as the preload agent, the
// runtime and host metrics, the scheduled polls whose latest results a
// MetricProducer serves on /metrics, and /probe on the same port.
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { Config } from '../config';
import { PullReader } from '../exposition/reader';
import { enableHostMetrics, hostStartTimes, hostUnitOverrides } from '../instrumentations/host';
import { enableRuntimeMetrics } from '../instrumentations/runtime';
import * as log from '../log';
import { resourceAttributes, VERSION } from '../resource';
import { serveMetrics, type MetricsServer } from '../server';
import type { Module, PollConfig, Target } from './config';
import { handleProbe, SlotTimeout } from './endpoint';
import { toScopeMetrics, type Family } from './families';
import { createInstruments, pollTarget, type PollContext } from './poll';
import { createLimiter, createScheduler, type Job } from './scheduler';

const MAX_QUEUED_PROBES = 100;
// A /probe whose slot comes later than this before its deadline is answered 503 rather than run too short to mean anything.
const MIN_PROBE_MS = 100;

export interface Poller {
  listening: Promise<AddressInfo | undefined>;
  config(): PollConfig;
  /** Swaps in a validated config: unchanged targets keep their timers and data. */
  apply(config: PollConfig): void;
  /** Records the outcome of a reload attempt for promotel_poll_config_last_reload_success. */
  reloaded(ok: boolean): void;
  shutdown(): Promise<void>;
}

export type ServiceOptions = Pick<Config, 'host' | 'port' | 'runtimeMetrics' | 'eventLoopResolutionMs' | 'hostMetrics' | 'cardinalityLimit' | 'serviceName' | 'resourceAttributes'>;

export function startPoller(initial: PollConfig, options: ServiceOptions): Poller {
  const { MeterProvider: Provider } = require('@opentelemetry/sdk-metrics') as typeof import('@opentelemetry/sdk-metrics');
  const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const reader = new PullReader({ cardinalityLimit: options.cardinalityLimit, unitOverrides: hostUnitOverrides, startTimes: hostStartTimes() });
  const resource = resourceFromAttributes(resourceAttributes({ serviceName: options.serviceName ?? 'promotel', resourceAttributes: options.resourceAttributes }));
  const provider: MeterProvider = new Provider({ resource, readers: [reader] });
  const meter = provider.getMeter('promotel.poll', VERSION);
  const abort = new AbortController();
  const ctx: PollContext = { config: initial, instruments: createInstruments(meter), signal: abort.signal, memory: new Map() };
  let lastReloadOk = 1;
  meter.createObservableGauge('promotel.poll.targets', { description: 'Targets in the config now.', unit: '{target}' })
    .addCallback((r) => r.observe(ctx.config.targets.length));
  meter.createObservableGauge('promotel.poll.config.last_reload.success', { description: 'Whether the last config reload succeeded (1) or was refused and the previous config kept (0).' })
    .addCallback((r) => r.observe(lastReloadOk));

  // The poller's own series of a target removed from the config leave the
  // scrapes with it (sdk-metrics keeps them in memory until restart, within
  // the cardinality limit); a target added back continues its counters.
  // Set by schedule() with each config: configured names and allow: patterns (the `target` of /probe URLs).
  let selfNames = new Set<string>();
  reader.hide = (metric, attributes) =>
    typeof attributes['target'] === 'string' && metric.startsWith('promotel.poll.') && !selfNames.has(attributes['target']);

  // Latest families of each scheduled target, served by every scrape of /metrics.
  const latest = new Map<string, Family[]>();
  reader.addProducer({
    collect: async () => ({
      resourceMetrics: { resource: undefined as never, scopeMetrics: [toScopeMetrics(latest.values(), onConflict)] },
      errors: [],
    }),
  });

  const limiter = createLimiter(initial.concurrency);
  // /probe requests waiting for a slot; scheduled polls wait in the same queue but do not count here.
  let waitingProbes = 0;
  const scheduler = createScheduler(limiter);
  const jobs = new Map<string, string>(); // target name -> job key
  let previousTargets: string[] = [];
  const schedule = (config: PollConfig): void => {
    const list: Job[] = config.targets.map((target) => {
      const module = config.modules.get(target.module)!;
      const key = JSON.stringify([target, module, config.jitterMs, config.allow.map((p) => p.source)]);
      return {
        key, intervalMs: target.intervalMs, jitterMs: jitterOf(config, target),
        run: async () => {
          const families = await pollTarget(target, module, ctx);
          if (jobs.get(target.name) === key) latest.set(target.name, families); // not a target removed meanwhile
        },
      };
    });
    jobs.clear();
    config.targets.forEach((t, i) => jobs.set(t.name, list[i]!.key));
    // A target now polled only on /probe (interval 0) is not polled for /metrics any more: its last
    // scheduled result would be served as current for good, whatever the target does since.
    const probeOnly = new Set(config.targets.filter((t) => t.intervalMs <= 0).map((t) => t.name));
    for (const name of latest.keys()) if (!jobs.has(name) || probeOnly.has(name)) latest.delete(name);
    for (const name of ctx.memory.keys()) if (!jobs.has(name)) ctx.memory.delete(name);
    for (const t of previousTargets) if (!jobs.has(t)) log.forgetWarnings(`poll:${t}:`);
    previousTargets = config.targets.map((t) => t.name);
    selfNames = new Set([...previousTargets, ...config.allow.map((p) => p.source)]);
    limiter.setLimit(config.concurrency);
    scheduler.set(list);
  };
  schedule(initial);

  const stops: Array<() => void> = [];
  setImmediate(() => {
    if (abort.signal.aborted) return;
    if (options.runtimeMetrics) guard('runtime metrics', () => stops.push(enableRuntimeMetrics(meter, options.eventLoopResolutionMs)));
    if (options.hostMetrics || options.runtimeMetrics) guard('host metrics', () => enableHostMetrics(provider, { system: options.hostMetrics, process: options.runtimeMetrics }));
  }).unref();

  const endpoint: MetricsServer = serveMetrics({ host: options.host, port: options.port, scrape: (om, timeoutMs) => reader.scrape(om, timeoutMs), portVariable: 'OTEL_EXPORTER_PROMETHEUS_PORT (or --port)', hostVariable: 'OTEL_EXPORTER_PROMETHEUS_HOST (or --host)', consequence: 'promotel poll stops: it has nowhere to serve its metrics' });
  routeProbe(endpoint, (req, res) =>
    handleProbe(req, res, {
      config: () => ctx.config,
      poll: (target: Target, module: Module, deadline: number) =>
        new Promise<Family[]>((resolve, reject) => {
          waitingProbes++;
          let waiting = true;
          // Answer 503 in time rather than hold the scraper past its timeout while every slot is busy.
          const timer = setTimeout(() => {
            if (!waiting) return;
            waiting = false;
            waitingProbes--;
            reject(new SlotTimeout());
          }, Math.max(0, deadline - performance.now() - MIN_PROBE_MS));
          timer.unref();
          limiter
            .run(() => {
              if (!waiting) return Promise.resolve([]); // answered already: give the slot back at once
              waiting = false;
              waitingProbes--;
              clearTimeout(timer);
              return pollTarget({ ...target, timeoutMs: Math.min(target.timeoutMs, deadline - performance.now()) }, module, ctx);
            })
            .then(resolve, reject);
        }),
      // A flood of /probe requests must not queue without bound nor starve the scheduled polls for long.
      busy: () => waitingProbes >= MAX_QUEUED_PROBES,
    }),
  );

  return {
    listening: endpoint.listening,
    config: () => ctx.config,
    apply(config) {
      ctx.config = config;
      schedule(config);
    },
    reloaded(ok) {
      lastReloadOk = ok ? 1 : 0;
    },
    async shutdown() {
      abort.abort();
      scheduler.stop();
      for (const stop of stops) guard('stopping runtime metrics', stop);
      await endpoint.close();
      await provider.shutdown().catch((err: unknown) => log.debug(`MeterProvider shutdown: ${log.describeError(err)}`));
    },
  };
}

// serveMetrics answers /, /metrics and /healthz; /probe is put in front of
// its request handler here, so the endpoint code stays the agent's.
function routeProbe(endpoint: MetricsServer, probe: (req: IncomingMessage, res: ServerResponse) => void): void {
  const server = endpoint.server;
  const handlers = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/probe') return handlers.forEach((h) => h(req, res));
    try {
      probe(req, res);
    } catch (err) {
      log.warnOnce(`probe:${log.describeError(err)}`, `a /probe request failed: ${log.describeError(err)}`);
      if (!res.headersSent) res.writeHead(500).end();
    }
  });
}

/** A set jitter, but never more than the target's interval; unset, a tenth of it. */
export function jitterOf(config: PollConfig, target: Target): number {
  return config.jitterMs < 0 ? Math.round(target.intervalMs / 10) : Math.min(config.jitterMs, target.intervalMs);
}

function onConflict(family: Family, existing: string): void {
  log.warnOnce(`conflict:${family.name}:${family.kind}`, `metric ${family.name} arrives as a ${family.kind} from one target and as a ${existing} from another; the ${family.kind} is left out: rename it at one target`);
}

function guard(what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    log.warn(`${what} failed: ${log.describeError(err)}; polling goes on`);
  }
}
