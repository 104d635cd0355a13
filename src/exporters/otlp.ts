// OTLP push, beside or instead of the pull endpoint
// (OTEL_METRICS_EXPORTER=prometheus,otlp or =otlp). It pushes what a scrape
// would see, from the same reader, so the HTTP fast path and a cluster's
// workers are included.
//
// Never harm the host: the timer is unref'd; one export runs at a time and a
// tick that finds one in flight is skipped (data is cumulative, so nothing is
// lost, and an unreachable collector costs no growing queue); the exporter's
// own retries back off; a failure streak is one warning, its end one info
// line. At a natural exit (beforeExit) the last data is pushed once, within
// the export timeout. A signal that kills the process is not delayed: no
// signal handler is added.
import { readFileSync } from 'node:fs';
import type { ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { hideCredentials } from '../config-values';
import { describeError, info, warn } from '../log';

export type OtlpProtocol = 'http/protobuf' | 'http/json';

export interface OtlpOptions {
  protocol: OtlpProtocol;
  intervalMs: number;
  /** Upper bound of one export, retries included. */
  timeoutMs: number;
  /** The full URL, /v1/metrics included. */
  endpoint: string;
  headers: Record<string, string>;
  compression: 'gzip' | 'none';
  /** Paths of PEM files, already checked readable (config-values.ts readableFile). */
  tls: { ca?: string; cert?: string; key?: string };
  collect: () => Promise<ResourceMetrics>;
}

interface Exporter {
  export(metrics: ResourceMetrics, done: (result: { code: number; error?: Error }) => void): void;
  shutdown(): Promise<void>;
}

const SUCCESS = 0;
// How recent a failed push counts as the one a finishing process waited for.
const FAILED_JUST_NOW_MS = 1000;

// promotel reads and checks these itself and hands the exporter the result:
// were the exporter to read them too, a bad value would be reported twice, the
// second time without the fix, and it might push somewhere else than the
// warnings say.
const OWN_VARIABLES = [
  'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
  'OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_METRICS_HEADERS',
  'OTEL_EXPORTER_OTLP_TIMEOUT', 'OTEL_EXPORTER_OTLP_METRICS_TIMEOUT',
  'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE',
  'OTEL_EXPORTER_OTLP_COMPRESSION', 'OTEL_EXPORTER_OTLP_METRICS_COMPRESSION',
  'OTEL_EXPORTER_OTLP_CERTIFICATE', 'OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE',
  'OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE', 'OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE',
  'OTEL_EXPORTER_OTLP_CLIENT_KEY', 'OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY',
];

export function startOtlpPush(options: OtlpOptions): { flush(): Promise<void>; stop(): Promise<void> } {
  const { ca, cert, key } = options.tls;
  const config = {
    url: options.endpoint,
    headers: options.headers,
    timeoutMillis: options.timeoutMs,
    compression: options.compression as never,
    httpAgentOptions: { keepAlive: true, ca: pem(ca), cert: pem(cert), key: pem(key) },
  };
  const exporter: Exporter = hidingVariables(OWN_VARIABLES, () =>
    options.protocol === 'http/json'
      ? new (require('@opentelemetry/exporter-metrics-otlp-http') as typeof import('@opentelemetry/exporter-metrics-otlp-http')).OTLPMetricExporter(config)
      : new (require('@opentelemetry/exporter-metrics-otlp-proto') as typeof import('@opentelemetry/exporter-metrics-otlp-proto')).OTLPMetricExporter(config),
  );
  // As warnings show it: the URL's userinfo is a credential.
  const endpoint = hideCredentials(options.endpoint);
  let inFlight: Promise<void> | undefined;
  let failing = false;
  let stopped = false;

  // Set for the push at exit or stop(): a failure then has no next push to wait for.
  let last = false;
  // When the last push ended, if it failed.
  let failedAt: number | undefined;
  const push = (): Promise<void> => {
    if (inFlight) return inFlight;
    inFlight = options
      .collect()
      .then(
        (data) =>
          new Promise<void>((resolve) => {
            exporter.export(data, (result) => {
              if (result.code === SUCCESS) {
                if (failing) info(`OTLP export to ${endpoint} works again`);
                failing = false;
              } else if (!failing) {
                failing = true;
                const next = last ? 'this was the last push, as the process ends' : `the next push is in ${options.intervalMs} ms`;
                warn(`OTLP export to ${endpoint} failed: ${failureOf(result.error)}; ${next}, the application is unaffected: ${fixFor(result.error, options.timeoutMs)}`);
              }
              resolve();
            });
          }),
      )
      .catch((err: unknown) => {
        if (!failing) warn(`OTLP export could not collect metrics: ${describeError(err)}`);
        failing = true;
      })
      .finally(() => {
        inFlight = undefined;
        failedAt = failing ? Date.now() : undefined;
      });
    return inFlight;
  };

  const timer = setInterval(() => void push(), options.intervalMs);
  timer.unref();
  // The exit push gives the event loop work, so Node emits 'beforeExit' once
  // more when it is done, and an app's own listener runs a second time. Telling
  // whether the app's listeners would have been called again without the push
  // (they queued work that is already done, or held by a socket, or they run
  // before this one) is not reliable, and a listener that misses a call it would
  // have had can lose the app's last log lines; an extra call is the lesser harm.
  let flushedAtExit = false;
  const onBeforeExit = (): void => {
    if (flushedAtExit || stopped) return;
    flushedAtExit = true;
    // A push that failed just now is most often what the process waited for at its end (the
    // loop empties as its socket closes): a second push would wait as long again for the same
    // failing collector, and a finished app waits one timeout at most.
    if (failedAt !== undefined && Date.now() - failedAt < FAILED_JUST_NOW_MS) return;
    last = true;
    void push();
  };
  process.on('beforeExit', onBeforeExit);

  return {
    flush: push,
    async stop() {
      if (stopped) return;
      clearInterval(timer);
      process.off('beforeExit', onBeforeExit);
      // A push in flight carries data collected before this call: the last numbers need one of their own,
      // unless it failed: the next one would wait as long again for the same failing collector.
      const waited = inFlight;
      await waited;
      last = true;
      if (waited === undefined || failedAt === undefined) await push();
      stopped = true;
      await exporter.shutdown().catch(() => {});
    },
  };
}

// The exporter keeps the status of a refusal in `code`; for the statuses it retries (429, 502, 503,
// 504) it keeps none, only this message.
const RETRYABLE = 'Export failed with retryable status';

function failureOf(error: Error | undefined): string {
  const status = (error as { code?: unknown } | undefined)?.code;
  if (typeof status === 'number') return `HTTP ${status}${error?.message ? ` ${error.message}` : ''}`;
  if (error?.message === RETRYABLE) return 'the collector answered 429, 502, 503 or 504, and no retry within the timeout succeeded (a Retry-After longer than the time left is not waited for)';
  return describeError(error ?? 'unknown error');
}

function fixFor(error: Error | undefined, timeoutMs: number): string {
  const status = (error as { code?: unknown } | undefined)?.code;
  // The collector answered, so the endpoint is right: it refused the credentials.
  if (status === 401 || status === 403) return `the collector refused the credentials (HTTP ${status}): check OTEL_EXPORTER_OTLP_HEADERS (or OTEL_EXPORTER_OTLP_METRICS_HEADERS)`;
  if (status === 404 || status === 405) return 'nothing takes OTLP at that path: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is used as it is (end it in /v1/metrics), while OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/metrics appended';
  if (typeof status === 'number') return 'the collector refused the data: see its log for why';
  if (error?.message === RETRYABLE) return 'the collector is overloaded or starting; if it lasts, see its log';
  // The exporter's own message for a collector that took the connection but not the timeout's time to answer.
  if (error?.message === 'Request timed out') return `the collector did not answer within ${timeoutMs} ms: if it is overloaded, see its log, or raise OTEL_EXPORTER_OTLP_TIMEOUT (OTEL_METRIC_EXPORT_TIMEOUT bounds it too)`;
  return 'check OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) and that a collector listens there';
}

// Checked readable when the configuration was read, a moment ago; a file gone since then is as if not given.
function pem(path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    warn(`OTLP TLS: ${path} could not be read (${describeError(err)}); the push goes on without it`);
    return undefined;
  }
}

/** Runs fn with the variables out of process.env, and puts them back before anything else can run. */
function hidingVariables<T>(names: string[], fn: () => T): T {
  const saved = new Map<string, string>();
  for (const name of names) {
    const value = process.env[name];
    if (value === undefined) continue;
    saved.set(name, value);
    delete process.env[name];
  }
  try {
    return fn();
  } finally {
    for (const [name, value] of saved) process.env[name] = value;
  }
}
