// Wires the pieces together: one MeterProvider registered as the global one
// (so `@opentelemetry/api` users land in it), one pull reader, the
// instrumentations the configuration asks for, and the endpoint. Each piece
// starts inside its own guard: one that fails is reported and skipped, and
// neither the rest of the agent nor the application notices.
//
// sdk-metrics is more than half of what the preload would load, so it is
// loaded when first needed: the first getMeter() of the app, the first
// scrape, or the next turn of the event loop (for the runtime metrics),
// whichever comes first. Until then a stand-in is the global MeterProvider,
// the HTTP hooks count into their own stores, and the app's startup runs
// without waiting for the SDK.
import type { AddressInfo } from 'node:net';
import { inspect, isDeepStrictEqual } from 'node:util';
import { diag, DiagLogLevel, metrics, type Meter, type MeterProvider as ApiMeterProvider } from '@opentelemetry/api';
import type { MeterProvider, MetricProducer, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { clusterRole, createAggregator, PRIMARY_MARK, pushToPrimary } from './cluster';
import { resolveConfig, type Config } from './config';
import { startOtlpPush } from './exporters/otlp';
import type { PullReader } from './exposition/reader';
import { hostStartTimes, hostUnitOverrides, enableHostMetrics } from './instrumentations/host';
import { enableFetchMetrics } from './instrumentations/http-fetch';
import { enableHttp2ClientMetrics } from './instrumentations/http2-client';
import { enableHttpServerMetrics } from './instrumentations/http-server';
import { enableOtelHttp } from './instrumentations/http-otel';
import { enableOnFirstRequest } from './instrumentations/http-client-lazy';
import { enableRuntimeMetrics } from './instrumentations/runtime';
import { setExemplarFilter } from './instrumentations/exemplar-filter';
import { configureKnownMethods } from './instrumentations/http-semconv';
import * as log from './log';
import { resourceAttributes, VERSION } from './resource';
import { serveMetrics, type MetricsServer } from './server';

export interface Agent {
  config: Config;
  /** The SDK's provider and reader; reading either loads the SDK if it is not loaded yet. */
  readonly meterProvider: MeterProvider;
  readonly reader: PullReader;
  /** Resolves with the endpoint's address, or undefined when it is off or its port was taken. */
  listening: Promise<AddressInfo | undefined>;
  shutdown(): Promise<void>;
}

// One agent per process, not per copy of this module: the preload may come from one install of
// promotel and the app's start() from another (a bundle, a nested node_modules), and a second agent
// would take the endpoint from the first, which holds the app's @opentelemetry/api metrics.
const CURRENT = Symbol.for('promotel.agent');
const running = globalThis as { [CURRENT]?: Agent };

// A taken port is retried this often: cheap (one bind attempt) and short enough that a brief holder is not noticed.
const PORT_RETRY_MS = 2000;

/**
 * Starts the agent once per process; later calls return the running one.
 * Options override what the environment says. Returns undefined when
 * OTEL_SDK_DISABLED=true.
 */
export function start(options: Partial<Config> = {}, env: NodeJS.ProcessEnv = process.env): Agent | undefined {
  const current = running[CURRENT];
  if (current) {
    // The preload (NODE_OPTIONS in an image) started it first: options that differ would otherwise be lost without a word.
    const ignored = Object.entries(options).filter(([key, value]) => value !== undefined && !isDeepStrictEqual(value, (current.config as unknown as Record<string, unknown>)[key]));
    if (ignored.length > 0) {
      log.warn(`promotel.start() was called with ${ignored.map(([key, value]) => `${key}=${inspect(value, { breakLength: Infinity })}`).join(', ')}, but the agent was already running (the preload?) without them: they are ignored; drop the preload, or set them through the environment (OTEL_*/PROMOTEL_* variables) instead`);
    }
    return current;
  }
  const { config, warnings } = resolveConfig(env, options);
  log.setLogLevel(config.logLevel);
  const role = clusterRole(env);
  // A worker reads the same environment as its primary, which has said all of this once already.
  if (role !== 'worker') for (const w of warnings) log.warn(w);
  if (config.disabled) return undefined;
  routeDiagnostics(config);
  setExemplarFilter(config.exemplarFilter);

  interface Sdk {
    meterProvider: MeterProvider;
    reader: PullReader;
    meter: Meter;
  }
  let sdk: Sdk | undefined;
  const producers: MetricProducer[] = [];
  let merge: ((own: ResourceMetrics) => ResourceMetrics) | undefined;
  const load = (): Sdk => {
    if (sdk) return sdk;
    const { PullReader: Reader } = require('./exposition/reader') as typeof import('./exposition/reader');
    const { MeterProvider: Provider } = require('@opentelemetry/sdk-metrics') as typeof import('@opentelemetry/sdk-metrics');
    const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
    const reader = new Reader({ cardinalityLimit: config.cardinalityLimit, unitOverrides: hostUnitOverrides, startTimes: hostStartTimes() });
    for (const p of producers) reader.addProducer(p);
    reader.merge = merge;
    const meterProvider = new Provider({ resource: resourceFromAttributes(resourceAttributes(config)), readers: [reader] });
    sdk = { meterProvider, reader, meter: meterProvider.getMeter('promotel', VERSION) };
    return sdk;
  };
  const standIn: ApiMeterProvider = { getMeter: (name, version, options) => load().meterProvider.getMeter(name, version, options) };
  // Shutting down unregisters only a provider of ours, never another SDK's.
  const registered = metrics.setGlobalMeterProvider(standIn);
  ownProviderRegistered = registered;
  if (!registered) {
    log.warn('a global MeterProvider was already registered before promotel, so metrics made with @opentelemetry/api go there, not to :' + config.port + ': load promotel first (--require/--import promotel/register) or drop the other SDK');
  }
  const stops: Array<() => void> = [];

  if (config.httpMetrics) {
    guard('HTTP metrics', 'PROMOTEL_HTTP_METRICS', () => configureKnownMethods(env, role === 'worker'));
    const serverHook = config.httpServerHook;
    guard('HTTP server metrics', 'PROMOTEL_HTTP_METRICS', () => {
      stops.push(
        enableHttpServerMetrics((p) => (sdk ? sdk.reader.addProducer(p) : producers.push(p)), {
          duration: serverHook === 'diagnostics_channel',
          cardinalityLimit: config.cardinalityLimit,
          scope: { name: 'promotel', version: VERSION },
        }),
      );
    });
    guard('fetch() metrics', 'PROMOTEL_HTTP_METRICS', () => stops.push(enableFetchMetrics(() => load().meter)));
    guard('HTTP/2 client metrics', 'PROMOTEL_HTTP_METRICS', () => stops.push(enableHttp2ClientMetrics(() => load().meter)));
    const client = (): void =>
      guard('HTTP client metrics', 'PROMOTEL_HTTP_METRICS', () => {
        stops.push(enableOtelHttp(load().meterProvider, { server: serverHook === 'instrumentation-http' }));
      });
    // The server patch of instrumentation-http must precede the app's servers; the client patch may wait (startup time).
    if (serverHook === 'instrumentation-http') client();
    else guard('HTTP client metrics', 'PROMOTEL_HTTP_METRICS', () => stops.push(enableOnFirstRequest(client)));
  }
  // Runtime and host metrics are read by callbacks at scrape time, so loading
  // them one turn of the event loop later loses nothing and keeps them out of
  // the startup time; a script that ends at once never loads them.
  let stopped = false;
  stops.push(() => (stopped = true));
  setImmediate(() => {
    if (stopped) return;
    let meterProvider: MeterProvider;
    let meter: Meter;
    try {
      ({ meterProvider, meter } = load());
    } catch (err) {
      return log.warn(`the OpenTelemetry SDK could not load: ${log.describeError(err)}; the application runs without metrics (reinstall promotel with its dependencies)`);
    }
    if (config.runtimeMetrics) {
      guard('runtime metrics', 'PROMOTEL_RUNTIME_METRICS', () => stops.push(enableRuntimeMetrics(meter, config.eventLoopResolutionMs)));
    }
    // The host is one machine: in a cluster the primary measures it, or the workers' counters would be summed.
    const system = config.hostMetrics && role !== 'worker';
    if (system || config.runtimeMetrics) {
      guard('host metrics', system ? 'PROMOTEL_HOST_METRICS' : 'PROMOTEL_RUNTIME_METRICS', () =>
        enableHostMetrics(meterProvider, { system, process: config.runtimeMetrics }),
      );
    }
  }).unref();

  let endpoint: MetricsServer | undefined;
  let otlp: ReturnType<typeof startOtlpPush> | undefined;
  if (config.exporters.length > 0 && role === 'worker') {
    // The primary serves and pushes for the whole cluster; this worker reports to it.
    guard('cluster reporting', 'OTEL_METRICS_EXPORTER', () => {
      stops.push(pushToPrimary(() => load().reader.collect().then((r) => r.resourceMetrics), config.clusterPushIntervalMs));
    });
  } else if (config.exporters.length > 0) {
    // A process the service started (child_process, not node:cluster) inherits the preload and the port.
    const parent = role === 'single' && env[PRIMARY_MARK] === String(process.ppid) ? process.ppid : undefined;
    if (role === 'single') {
      guard('cluster aggregation', 'OTEL_METRICS_EXPORTER', () => {
        // Any worker this process forks with node:cluster will find the mark and report here.
        process.env[PRIMARY_MARK] = String(process.pid);
        const aggregator = createAggregator(config.cardinalityLimit);
        merge = aggregator.merge;
        if (sdk) sdk.reader.merge = merge;
        stops.push(aggregator.stop);
      });
    }
    if (config.exporters.includes('prometheus')) {
      guard('the metrics endpoint', 'OTEL_METRICS_EXPORTER', () => {
        endpoint = serveMetrics({
          host: config.host,
          port: config.port,
          scrape: (om, timeoutMs) => load().reader.scrape(om, timeoutMs),
          exclusive: role === 'orphan-worker',
          retryMs: PORT_RETRY_MS,
          holderPid: parent,
          hint:
            role === 'orphan-worker'
              ? 'for each worker: this is a cluster worker whose primary runs without promotel (a pm2 daemon started without the preload?); preload promotel in the primary too (pm2 kill, then start pm2 with NODE_OPTIONS="--require promotel/register") and it serves every worker on one port'
              : parent !== undefined
              ? `for this process, a child of pid ${parent} whose promotel serves that port (only node:cluster workers report to their parent's endpoint), or set OTEL_SDK_DISABLED=true for it to run without the agent`
              : undefined,
        });
      });
    }
    if (config.exporters.includes('otlp')) {
      guard('OTLP push', 'OTEL_METRICS_EXPORTER', () => {
        otlp = startOtlpPush(
          {
            protocol: config.otlpProtocol,
            intervalMs: config.exportIntervalMs,
            endpoint: config.otlpEndpoint,
            headers: config.otlpHeaders,
            compression: config.otlpCompression,
            tls: { ca: config.otlpCertificate, cert: config.otlpClientCertificate, key: config.otlpClientKey },
            // OTEL_METRIC_EXPORT_TIMEOUT bounds the whole export, OTEL_EXPORTER_OTLP_TIMEOUT its request: the shorter one rules.
            timeoutMs: Math.min(config.otlpTimeoutMs, config.exportTimeoutMs),
            // A callback that never settles must not hold every later push: the SDK gives up on it after
            // this. Its timer holds a finishing app as long, so no longer than the exit push may take.
            collect: () => load().reader.collectForExport(Math.min(config.otlpTimeoutMs, config.exportTimeoutMs), { during: 'an OTLP export', outcome: 'pushed' }),
          },
        );
      });
    }
  }

  const agent: Agent = {
    config,
    get meterProvider() {
      return load().meterProvider;
    },
    get reader() {
      return load().reader;
    },
    listening: endpoint ? endpoint.listening : Promise.resolve(undefined),
    async shutdown() {
      if (running[CURRENT] !== agent) return;
      running[CURRENT] = undefined;
      for (const stop of stops) {
        try {
          stop();
        } catch (err) {
          log.debug(`stopping an instrumentation failed: ${log.describeError(err)}`);
        }
      }
      await otlp?.stop();
      await endpoint?.close();
      await sdk?.meterProvider.shutdown().catch((err: unknown) => log.debug(`MeterProvider shutdown: ${log.describeError(err)}`));
      if (registered) {
        metrics.disable();
        ownProviderRegistered = false;
      }
    },
  };
  running[CURRENT] = agent;
  return agent;
}

/** Stops the running agent, if any: closes the endpoint and unregisters the global MeterProvider. */
export async function shutdown(): Promise<void> {
  await running[CURRENT]?.shutdown();
}

export function getMeter(name: string, version?: string): Meter {
  return metrics.getMeter(name, version);
}

/** Exported for its test only. */
export function guard(what: string, variable: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    const off = variable === 'OTEL_METRICS_EXPORTER' ? 'none' : 'false';
    log.warn(`${what} could not start: ${log.describeError(err)}; the application runs without them (set ${variable}=${off} to skip them quietly)`);
  }
}

// Whether the global MeterProvider is promotel's: only then is a later duplicate registration the app's.
let ownProviderRegistered = false;
const APP_PROVIDER_AFTER =
  "the application registered its own MeterProvider after promotel had registered one, so metrics made with @opentelemetry/api still go to promotel's endpoint and the application's own readers and exporters get none of them: to use the application's SDK instead, set OTEL_SDK_DISABLED=true (or drop the preload)";

// The SDK's own diagnostics go through the same one-line logger, at the level OTEL_LOG_LEVEL sets.
function routeDiagnostics(config: Config): void {
  const levels: Record<Config['logLevel'], DiagLogLevel> = {
    none: DiagLogLevel.NONE, error: DiagLogLevel.ERROR, warn: DiagLogLevel.WARN, info: DiagLogLevel.INFO,
    debug: DiagLogLevel.DEBUG, verbose: DiagLogLevel.VERBOSE, all: DiagLogLevel.ALL,
  };
  // First lines only: the API passes stack traces as strings, and one problem is one line.
  const line = (args: unknown[]): string => args.map((a) => describeArgument(a).split('\n')[0]).join(' ');
  // Another SDK registered first: for metrics, start() says so once with the fix; an async context
  // manager registered by the app serves the Express route as well as ours would.
  const duplicate = (a: unknown[]): boolean => a.some((x) => typeof x === 'string' && x.includes('Attempted duplicate registration of API'));
  // An app's slip on a hot path (counter.add(-1) on every request) is one SDK message per call: each
  // message is said once, whatever numbers it holds, for up to 1000 messages; debug shows every one.
  const said = new Set<string>();
  const once =
    (say: (message: string) => void) =>
    (...a: unknown[]): void => {
      const text = `OpenTelemetry: ${line(a)}`;
      if (log.enabled('debug')) return say(text);
      const key = text.replace(/\d+(\.\d+)?(e[+-]?\d+)?/gi, '#');
      if (said.has(key) || said.size >= 1000) return;
      said.add(key);
      say(`${text} (said once; OTEL_LOG_LEVEL=debug shows every repeat)`);
    };
  const error = once(log.error);
  diag.setLogger(
    {
      error: (...a) => {
        if (!duplicate(a)) return error(...a);
        log.debug(`OpenTelemetry: ${line(a)}`);
        // The app's own SDK, set up in code after the preload: its provider is not the global one.
        if (ownProviderRegistered && line(a).includes('API: metrics')) log.warnOnce('app-meter-provider', APP_PROVIDER_AFTER);
      },
      warn: once(log.warn),
      info: once(log.info),
      debug: (...a) => log.debug(`OpenTelemetry: ${line(a)}`),
      verbose: (...a) => log.debug(`OpenTelemetry: ${line(a)}`),
    },
    { logLevel: levels[config.logLevel], suppressOverrideMessage: true },
  );
}

// The SDK passes details as objects ({ module, version, baseDir }): shown as they read in code, on one line.
function describeArgument(a: unknown): string {
  if (typeof a === 'string') return a;
  if (a instanceof Error || typeof a !== 'object' || a === null) return log.describeError(a);
  return inspect(a, { breakLength: Infinity, depth: 2, maxArrayLength: 10, maxStringLength: 200 });
}
