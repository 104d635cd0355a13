// Configuration comes from the standard OTEL_* variables first; PROMOTEL_* only
// covers what the OpenTelemetry specification has no variable for. A bad value
// never stops the agent: it yields one warning that names the variable, the
// value and the fix, and the default is used. The options of start() go
// through the same checks, and win over the variables they replace.
import { isLogLevel, type LogLevel } from './log';
import { baseEndpoint, checkTemporality, DEFAULT_OTLP_ENDPOINT, exportInterval, exportTimeout, protocol, readHeaders, type OtlpProtocol } from './config-otlp';
import { parseResourceAttributes } from './config-pairs';
import { bool, hideCredentials, host, httpUrl, invalid, listed, millis, ok, oneOf, port, readableFile, shown, text, wholeNumber, type Check } from './config-values';
import { KNOWN_METHODS_VARIABLE } from './instrumentations/http-semconv';

export { parseResourceAttributes } from './config-pairs';

export type HttpServerHook = 'diagnostics_channel' | 'instrumentation-http';
export type MetricsExporter = 'prometheus' | 'otlp';
export type ExemplarFilter = 'trace_based' | 'always_on' | 'always_off';

export interface Config {
  disabled: boolean;
  serviceName: string | undefined;
  resourceAttributes: Record<string, string>;
  host: string;
  port: number;
  exporters: MetricsExporter[];
  logLevel: LogLevel;
  hostMetrics: boolean;
  runtimeMetrics: boolean;
  eventLoopResolutionMs: number;
  httpMetrics: boolean;
  httpServerHook: HttpServerHook;
  exemplarFilter: ExemplarFilter;
  cardinalityLimit: number;
  clusterPushIntervalMs: number;
  otlpProtocol: OtlpProtocol;
  /** Where OTLP data goes, the signal path included. */
  otlpEndpoint: string;
  otlpHeaders: Record<string, string>;
  exportIntervalMs: number;
  /** One OTLP request, retries included (OTEL_EXPORTER_OTLP_TIMEOUT). */
  otlpTimeoutMs: number;
  /** One whole export (OTEL_METRIC_EXPORT_TIMEOUT); a push is bounded by the shorter of the two. */
  exportTimeoutMs: number;
  otlpCompression: 'gzip' | 'none';
  /** PEM files for TLS to the collector: its CA, and this client's certificate and key (mutual TLS). */
  otlpCertificate: string | undefined;
  otlpClientCertificate: string | undefined;
  otlpClientKey: string | undefined;
}

export const DEFAULTS: Readonly<Config> = Object.freeze({
  disabled: false,
  serviceName: undefined,
  resourceAttributes: {},
  host: '0.0.0.0',
  port: 9000,
  exporters: ['prometheus'] as MetricsExporter[],
  logLevel: 'warn' as LogLevel,
  hostMetrics: true,
  runtimeMetrics: true,
  eventLoopResolutionMs: 10,
  httpMetrics: true,
  httpServerHook: 'diagnostics_channel' as HttpServerHook,
  exemplarFilter: 'trace_based' as ExemplarFilter,
  cardinalityLimit: 2000,
  clusterPushIntervalMs: 1000,
  otlpProtocol: 'http/protobuf' as const,
  otlpEndpoint: DEFAULT_OTLP_ENDPOINT,
  otlpHeaders: {},
  exportIntervalMs: 60_000,
  otlpTimeoutMs: 10_000,
  exportTimeoutMs: 30_000,
  otlpCompression: 'none' as const,
  otlpCertificate: undefined,
  otlpClientCertificate: undefined,
  otlpClientKey: undefined,
});

/** Every variable the agent reads, with its default and meaning: the README's table is checked against this list. */
export const VARIABLES: ReadonlyArray<{ name: string; default: string; meaning: string }> = [
  { name: 'OTEL_SDK_DISABLED', default: 'false', meaning: '`true` loads nothing and opens no port' },
  { name: 'OTEL_SERVICE_NAME', default: 'package.json name, else script name', meaning: '`service.name` in `target_info`. Detected from the package.json above the app\'s script (pm2\'s `pm_exec_path` names it under pm2); a launcher under `node_modules` is skipped, for the package.json of the working directory' },
  { name: 'OTEL_RESOURCE_ATTRIBUTES', default: '(empty)', meaning: '`key=value,...` added to the resource (`target_info`), percent-decoded; one bad entry and the whole variable is ignored, as the spec says' },
  { name: 'OTEL_EXPORTER_PROMETHEUS_HOST', default: '0.0.0.0', meaning: 'address the metrics endpoint listens on (the spec default is `localhost`; promotel listens on every interface so that Prometheus can reach it in a container). A host name is looked up and bound 1 s after start, so that a script done sooner never waits for a slow DNS server' },
  { name: 'OTEL_EXPORTER_PROMETHEUS_PORT', default: '9000', meaning: 'port of the metrics endpoint, 0 picks a free one (the spec default is 9464; 9000 is promotel\'s documented port)' },
  { name: 'OTEL_METRICS_EXPORTER', default: 'prometheus', meaning: '`prometheus` (the pull endpoint), `otlp` (push), both as `prometheus,otlp`, or `none` (the spec default is `otlp`; promotel is a Prometheus agent first, so setting only `OTEL_EXPORTER_OTLP_ENDPOINT` pushes nothing)' },
  { name: 'OTEL_METRICS_EXEMPLAR_FILTER', default: 'trace_based', meaning: 'exemplars on the HTTP server histogram: `trace_based` (under a sampled span), `always_on` (under any span; a request with no span has no trace id to show, so it still gets none) or `always_off`' },
  { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', default: 'http://localhost:4318', meaning: 'with `otlp`: the collector, an `http://` or `https://` URL; `/v1/metrics` is appended (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is used as is)' },
  { name: 'OTEL_EXPORTER_OTLP_PROTOCOL', default: 'http/protobuf', meaning: 'with `otlp`: `http/protobuf` or `http/json` (`OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` wins)' },
  { name: 'OTEL_EXPORTER_OTLP_TIMEOUT', default: '10000', meaning: 'with `otlp`: ms one export request may take, retries included (`OTEL_EXPORTER_OTLP_METRICS_TIMEOUT` wins); it bounds how long a finished app waits for its last push' },
  { name: 'OTEL_EXPORTER_OTLP_HEADERS', default: '(empty)', meaning: 'with `otlp`: `key=value,...` sent with each export, percent-decoded (`OTEL_EXPORTER_OTLP_METRICS_HEADERS` too, winning per header)' },
  { name: 'OTEL_EXPORTER_OTLP_COMPRESSION', default: 'none', meaning: 'with `otlp`: `gzip` or `none` (`OTEL_EXPORTER_OTLP_METRICS_COMPRESSION` wins)' },
  { name: 'OTEL_EXPORTER_OTLP_CERTIFICATE', default: '(system CAs)', meaning: 'with `otlp` over `https://`: PEM file of the CA that signed the collector\'s certificate (`OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE` wins)' },
  { name: 'OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE', default: '(none)', meaning: 'with `otlp` over `https://`: PEM file of this client\'s certificate, for mutual TLS, with `OTEL_EXPORTER_OTLP_CLIENT_KEY` (`OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE` wins)' },
  { name: 'OTEL_EXPORTER_OTLP_CLIENT_KEY', default: '(none)', meaning: 'with `otlp` over `https://`: PEM file of that certificate\'s private key (`OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY` wins)' },
  { name: 'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE', default: 'cumulative', meaning: 'with `otlp`: promotel pushes cumulative data only; for delta, use the Collector\'s `cumulativetodelta` processor' },
  { name: 'OTEL_METRIC_EXPORT_INTERVAL', default: '60000', meaning: 'with `otlp`: ms between pushes' },
  { name: 'OTEL_METRIC_EXPORT_TIMEOUT', default: '30000', meaning: 'with `otlp`: ms one push may take in all; a push is bounded by the shorter of this and `OTEL_EXPORTER_OTLP_TIMEOUT`' },
  { name: 'OTEL_LOG_LEVEL', default: 'warn', meaning: '`none`, `error`, `warn`, `info`, `debug`, `verbose`, `all` (the spec default is `info`; `warn` keeps a healthy agent silent in the app\'s log)' },
  // Read by the HTTP hooks themselves (http-semconv.ts), listed here so that this list is complete.
  KNOWN_METHODS_VARIABLE,
  { name: 'PROMOTEL_HTTP_METRICS', default: 'true', meaning: 'HTTP server and client metrics' },
  { name: 'PROMOTEL_HTTP_SERVER_HOOK', default: 'diagnostics_channel', meaning: 'how HTTP/1 server requests are timed: `diagnostics_channel` (fast) or `instrumentation-http` (the stock OTel patch); HTTP/2 servers are always timed by promotel' },
  { name: 'PROMOTEL_RUNTIME_METRICS', default: 'true', meaning: 'Node.js runtime metrics (event loop, GC, V8 heap, handles, version) and this process\'s CPU and memory (`process_cpu_*`, `process_memory_usage_bytes`)' },
  { name: 'PROMOTEL_EVENTLOOP_DELAY_RESOLUTION', default: '10', meaning: 'ms between event-loop delay samples. Each sample wakes an idle process: on the benchmark VM (2026-11-30) an idle service with promotel spent about 9 ms of CPU per second at 10 ms, 2 ms at 100 ms. Every reading includes this interval: an idle loop reads about the resolution itself, a block of 300 ms about 300 ms plus the resolution, and a block shorter than the resolution may go unseen. The `PromotelEventLoopDelayHigh` alert (p99 > 100 ms) assumes the default: at a coarser resolution, raise its threshold by the resolution' },
  { name: 'PROMOTEL_HOST_METRICS', default: 'true', meaning: 'the host\'s CPU, memory and network (`system_*`); the process\'s own follow `PROMOTEL_RUNTIME_METRICS`' },
  { name: 'PROMOTEL_CARDINALITY_LIMIT', default: '2000', meaning: 'series per metric before new label sets go to the `otel_metric_overflow="true"` series. Per metric of one meter, as in the OTel SDK: `http_client_request_duration_seconds` comes from two (`instrumentation-http` for node:http, promotel for `fetch()` and HTTP/2), each held to the limit' },
  { name: 'PROMOTEL_CLUSTER_PUSH_INTERVAL', default: '1000', meaning: 'under `node:cluster`, how often (ms) each worker sends its metrics to the primary besides answering its request at each scrape; a worker too busy to answer within 1 s is served from its last push' },
];

type Env = Record<string, string | undefined>;

interface Setting {
  key: keyof Config;
  /** Tried in order: the first one set and valid gives the value (the per-signal variable comes before the generic one). */
  sources: Array<{ variable: string; check: Check<unknown> }>;
  /** Read, and complained about, only when OTLP push is on. */
  otlp?: boolean;
}

const logLevel: Check<LogLevel> = (raw) => {
  const v = raw.trim().toLowerCase();
  return isLogLevel(v) ? ok(v) : invalid('use none, error, warn, info, debug, verbose or all');
};

const one = (key: keyof Config, variable: string, check: Check<unknown>, otlp = false): Setting => ({ key, sources: [{ variable, check }], otlp });
const perSignal = (key: keyof Config, variables: [metrics: string, generic: string], check: Check<unknown>, generic: Check<unknown> = check): Setting => ({
  key,
  sources: [
    { variable: variables[0], check },
    { variable: variables[1], check: generic },
  ],
  otlp: true,
});

// In the order their warnings are said.
const SETTINGS: Setting[] = [
  one('disabled', 'OTEL_SDK_DISABLED', bool),
  one('logLevel', 'OTEL_LOG_LEVEL', logLevel),
  one('serviceName', 'OTEL_SERVICE_NAME', text),
  one('host', 'OTEL_EXPORTER_PROMETHEUS_HOST', host),
  one('port', 'OTEL_EXPORTER_PROMETHEUS_PORT', port),
  one('httpMetrics', 'PROMOTEL_HTTP_METRICS', bool),
  one('runtimeMetrics', 'PROMOTEL_RUNTIME_METRICS', bool),
  one('hostMetrics', 'PROMOTEL_HOST_METRICS', bool),
  one('httpServerHook', 'PROMOTEL_HTTP_SERVER_HOOK', oneOf(['diagnostics_channel', 'instrumentation-http'] as const)),
  one('exemplarFilter', 'OTEL_METRICS_EXEMPLAR_FILTER', oneOf(['trace_based', 'always_on', 'always_off'] as const)),
  one('cardinalityLimit', 'PROMOTEL_CARDINALITY_LIMIT', wholeNumber(2, 1_000_000)),
  perSignal('otlpProtocol', ['OTEL_EXPORTER_OTLP_METRICS_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL'], protocol),
  perSignal('otlpEndpoint', ['OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT'], httpUrl, baseEndpoint),
  one('exportIntervalMs', 'OTEL_METRIC_EXPORT_INTERVAL', exportInterval, true),
  perSignal('otlpTimeoutMs', ['OTEL_EXPORTER_OTLP_METRICS_TIMEOUT', 'OTEL_EXPORTER_OTLP_TIMEOUT'], exportTimeout),
  one('exportTimeoutMs', 'OTEL_METRIC_EXPORT_TIMEOUT', millis(100, 600_000), true),
  perSignal('otlpCompression', ['OTEL_EXPORTER_OTLP_METRICS_COMPRESSION', 'OTEL_EXPORTER_OTLP_COMPRESSION'], oneOf(['gzip', 'none'] as const)),
  perSignal('otlpCertificate', ['OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE', 'OTEL_EXPORTER_OTLP_CERTIFICATE'], readableFile),
  perSignal('otlpClientCertificate', ['OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE', 'OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE'], readableFile),
  perSignal('otlpClientKey', ['OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY', 'OTEL_EXPORTER_OTLP_CLIENT_KEY'], readableFile),
  one('eventLoopResolutionMs', 'PROMOTEL_EVENTLOOP_DELAY_RESOLUTION', millis(1, 60_000)),
  one('clusterPushIntervalMs', 'PROMOTEL_CLUSTER_PUSH_INTERVAL', millis(50, 600_000)),
];

const EXPORTERS = ['prometheus', 'otlp'] as const;
const OPTION_KEYS = Object.keys(DEFAULTS) as Array<keyof Config>;

export function readConfig(env: Env = process.env): { config: Config; warnings: string[] } {
  return resolveConfig(env, {});
}

/** The configuration from the environment with the options of start() on top: options given in code win. */
export function resolveConfig(env: Env, options: unknown): { config: Config; warnings: string[] } {
  const config: Config = { ...DEFAULTS, resourceAttributes: {}, exporters: [...DEFAULTS.exporters], otlpHeaders: {} };
  const envWarnings: string[] = [];
  const { values: given, warnings: optionWarnings } = checkOptions(options);
  const fromCode = (key: keyof Config): boolean => given.has(key);

  if (!fromCode('exporters')) config.exporters = readExporters(env, envWarnings) ?? config.exporters;
  else config.exporters = given.get('exporters') as MetricsExporter[];
  const otlp = config.exporters.includes('otlp');

  for (const s of SETTINGS) {
    if (s.otlp && !otlp) continue;
    if (fromCode(s.key)) {
      (config as unknown as Record<string, unknown>)[s.key] = given.get(s.key);
      continue;
    }
    const { value, warnings } = readSetting(s, env, config[s.key]);
    (config as unknown as Record<string, unknown>)[s.key] = value;
    envWarnings.push(...warnings);
  }
  if (fromCode('resourceAttributes')) config.resourceAttributes = given.get('resourceAttributes') as Record<string, string>;
  else if (env.OTEL_RESOURCE_ATTRIBUTES?.trim()) {
    const { attributes, error } = parseResourceAttributes(env.OTEL_RESOURCE_ATTRIBUTES);
    config.resourceAttributes = attributes;
    if (error) envWarnings.push(error);
  }
  if (otlp) {
    if (fromCode('otlpHeaders')) config.otlpHeaders = given.get('otlpHeaders') as Record<string, string>;
    else {
      const { headers, warnings } = readHeaders(env);
      config.otlpHeaders = headers;
      envWarnings.push(...warnings);
    }
    const temporality = checkTemporality(env);
    if (temporality) envWarnings.push(temporality);
    // Node's TLS refuses a certificate without its key and the other way round, at every push.
    if ((config.otlpClientCertificate === undefined) !== (config.otlpClientKey === undefined)) {
      const [given, missing] = config.otlpClientKey === undefined ? ['OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE', 'OTEL_EXPORTER_OTLP_CLIENT_KEY'] : ['OTEL_EXPORTER_OTLP_CLIENT_KEY', 'OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE'];
      envWarnings.push(`${given} is set without ${missing} (or their _METRICS_ variants): mutual TLS needs both; neither is used`);
      config.otlpClientCertificate = config.otlpClientKey = undefined;
    }
  }
  // An invalid option falls back to what the environment says, so its warning comes last, naming that value.
  for (const w of optionWarnings) {
    if (w.key === undefined) envWarnings.push(`${w.message}; it is ignored`);
    else if (otlp || !isOtlpKey(w.key)) envWarnings.push(`${w.message}; using ${showValue(config[w.key])}`);
  }
  return { config, warnings: envWarnings };
}

const isOtlpKey = (key: keyof Config): boolean => key === 'otlpHeaders' || SETTINGS.some((s) => s.key === key && s.otlp);

function readSetting(s: Setting, env: Env, fallback: unknown): { value: unknown; warnings: string[] } {
  const complaints: string[] = [];
  for (const { variable, check } of s.sources) {
    const raw = env[variable];
    if (raw === undefined || raw.trim() === '') continue;
    const r = check(raw);
    if ('value' in r) {
      // A per-signal variable that cannot be parsed counts as not set: the generic one applies.
      return { value: r.value, warnings: complaints.map((c) => `${c}; using ${hideCredentials(showValue(r.value))} from ${variable}`) };
    }
    complaints.push(`${variable}=${hideCredentials(JSON.stringify(raw))} ${r.error}`);
  }
  return { value: fallback, warnings: complaints.map((c) => `${c}; using ${hideCredentials(showValue(fallback))}`) };
}

function readExporters(env: Env, warnings: string[]): MetricsExporter[] | undefined {
  const raw = env.OTEL_METRICS_EXPORTER;
  if (raw === undefined || raw.trim() === '') return undefined;
  const { exporters, unknown } = parseExporters(raw.split(','));
  if (unknown.length === 0 && exporters.length > 0 && raw.split(',').every((n) => n.trim() === '')) {
    warnings.push(`OTEL_METRICS_EXPORTER=${JSON.stringify(raw)} names no exporter: use prometheus, otlp, both separated by a comma, or none; using prometheus`);
  }
  if (unknown.length > 0) {
    warnings.push(`OTEL_METRICS_EXPORTER=${JSON.stringify(raw)} is invalid: ${unknown.map((u) => JSON.stringify(u)).join(' and ')} ${unknown.length > 1 ? 'are not exporters' : 'is not an exporter'}: use prometheus, otlp, both separated by a comma, or none; using ${exporters.join(',')}`);
  }
  return exporters;
}

function parseExporters(names: string[]): { exporters: MetricsExporter[]; unknown: string[] } {
  const chosen = new Set<MetricsExporter>();
  const unknown: string[] = [];
  let none = false;
  for (const name of names) {
    const v = name.trim().toLowerCase();
    if ((EXPORTERS as readonly string[]).includes(v)) chosen.add(v as MetricsExporter);
    else if (v === 'none') none = true;
    else if (v !== '') unknown.push(name.trim());
  }
  // The endpoint stays on after a typo, or a list of empty entries (","), so that a typo never silences the metrics.
  if (unknown.length > 0 || (!none && chosen.size === 0)) chosen.add('prometheus');
  return { exporters: none && chosen.size === 0 ? [] : [...chosen], unknown };
}

interface OptionWarning {
  key: keyof Config | undefined;
  message: string;
}

/** The valid options, by key; each invalid one is a warning finished later with the value used instead. */
function checkOptions(options: unknown): { values: Map<keyof Config, unknown>; warnings: OptionWarning[] } {
  const values = new Map<keyof Config, unknown>();
  const warnings: OptionWarning[] = [];
  if (options === undefined || options === null) return { values, warnings };
  if (typeof options !== 'object' || Array.isArray(options)) {
    warnings.push({ key: undefined, message: `promotel.start() takes an options object such as { port: 9464 }, not ${shown(options)}` });
    return { values, warnings };
  }
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (!(OPTION_KEYS as string[]).includes(key)) {
      warnings.push({ key: undefined, message: `promotel.start() option ${JSON.stringify(key)} is unknown: use ${listed(OPTION_KEYS)}` });
      continue;
    }
    const k = key as keyof Config;
    const r = checkOption(k, value);
    if ('value' in r) values.set(k, r.value);
    else warnings.push({ key: k, message: `promotel.start() option ${k}=${shown(value)} ${r.error}` });
  }
  return { values, warnings };
}

function checkOption(key: keyof Config, value: unknown): { value: unknown } | { error: string } {
  if (key === 'exporters') {
    const names = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : undefined;
    if (names === undefined || names.some((n) => typeof n !== 'string')) return invalid("give an array such as ['prometheus', 'otlp'], or []");
    const { exporters, unknown } = parseExporters(names.length === 0 ? ['none'] : (names as string[]));
    return unknown.length > 0 ? invalid(`${unknown.map((u) => JSON.stringify(u)).join(' and ')} not an exporter: use prometheus, otlp, both, or []`) : ok(exporters);
  }
  if (key === 'resourceAttributes' || key === 'otlpHeaders') {
    const strings = typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
    return strings ? ok({ ...(value as Record<string, string>) }) : invalid("give an object of string values such as { 'deployment.environment.name': 'prod' }");
  }
  const setting = SETTINGS.find((s) => s.key === key)!;
  const raw = typeof value === 'string' ? value : (typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean' ? String(value) : undefined;
  // Only the first source's check: an endpoint given in code is used as is, like the per-signal variable.
  return raw === undefined || raw.trim() === '' ? invalid(`give a ${typeof DEFAULTS[key] === 'number' ? 'number' : typeof DEFAULTS[key] === 'boolean' ? 'boolean' : 'string'}`) : setting.sources[0]!.check(raw);
}

function showValue(value: unknown): string {
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.join(',');
  return value === undefined ? 'the default' : String(value);
}
