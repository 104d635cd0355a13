// Configuration comes from the standard OTEL_* variables first; PROMOTEL_* only
// covers what the OpenTelemetry specification has no variable for. A bad value
// never stops the agent: it yields one warning that names the variable, the
// value and the fix, and the default is used.
import { isLogLevel, type LogLevel } from './log';

export type HttpServerHook = 'diagnostics_channel' | 'instrumentation-http';
export type MetricsExporter = 'prometheus' | 'otlp';

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
  cardinalityLimit: number;
  clusterPushIntervalMs: number;
  otlpProtocol: 'http/protobuf' | 'http/json';
  exportIntervalMs: number;
  otlpTimeoutMs: number;
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
  cardinalityLimit: 2000,
  clusterPushIntervalMs: 1000,
  otlpProtocol: 'http/protobuf' as const,
  exportIntervalMs: 60_000,
  otlpTimeoutMs: 5000,
});

/** Every variable the agent reads, with its default and meaning: the README's table is checked against this list. */
export const VARIABLES: ReadonlyArray<{ name: string; default: string; meaning: string }> = [
  { name: 'OTEL_SDK_DISABLED', default: 'false', meaning: '`true` loads nothing and opens no port' },
  { name: 'OTEL_SERVICE_NAME', default: 'package.json name, else script name', meaning: '`service.name` in `target_info`' },
  { name: 'OTEL_RESOURCE_ATTRIBUTES', default: '(empty)', meaning: '`key=value,...` added to the resource (`target_info`)' },
  { name: 'OTEL_EXPORTER_PROMETHEUS_HOST', default: '0.0.0.0', meaning: 'address the metrics endpoint listens on' },
  { name: 'OTEL_EXPORTER_PROMETHEUS_PORT', default: '9000', meaning: 'port of the metrics endpoint (0 picks a free one)' },
  { name: 'OTEL_METRICS_EXPORTER', default: 'prometheus', meaning: '`prometheus` (the pull endpoint), `otlp` (push), both as `prometheus,otlp`, or `none`' },
  { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', default: 'http://localhost:4318', meaning: 'with `otlp`: the collector; `/v1/metrics` is appended (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is used as is)' },
  { name: 'OTEL_EXPORTER_OTLP_PROTOCOL', default: 'http/protobuf', meaning: 'with `otlp`: `http/protobuf` or `http/json` (`OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` wins)' },
  { name: 'OTEL_EXPORTER_OTLP_TIMEOUT', default: '5000', meaning: 'with `otlp`: ms one export may take, retries included (`OTEL_EXPORTER_OTLP_METRICS_TIMEOUT` wins); it bounds how long a finished app waits for its last push' },
  { name: 'OTEL_EXPORTER_OTLP_HEADERS', default: '(empty)', meaning: 'with `otlp`: `key=value,...` sent with each export (`OTEL_EXPORTER_OTLP_METRICS_HEADERS` too)' },
  { name: 'OTEL_METRIC_EXPORT_INTERVAL', default: '60000', meaning: 'with `otlp`: ms between pushes' },
  { name: 'OTEL_LOG_LEVEL', default: 'warn', meaning: '`none`, `error`, `warn`, `info`, `debug`, `verbose`, `all`' },
  { name: 'PROMOTEL_HTTP_METRICS', default: 'true', meaning: 'HTTP server and client metrics' },
  { name: 'PROMOTEL_HTTP_SERVER_HOOK', default: 'diagnostics_channel', meaning: 'how server requests are timed: `diagnostics_channel` (fast) or `instrumentation-http` (the stock OTel patch)' },
  { name: 'PROMOTEL_RUNTIME_METRICS', default: 'true', meaning: 'Node.js runtime metrics (event loop, GC, V8 heap, handles, version)' },
  { name: 'PROMOTEL_EVENTLOOP_DELAY_RESOLUTION', default: '10', meaning: 'ms between event-loop delay samples. Each sample wakes an idle process: on the benchmark VM (2026-11-30) an idle service with promotel spent about 9 ms of CPU per second at 10 ms, 2 ms at 100 ms. A block shorter than this may go unseen, and a longer one reads up to this much short' },
  { name: 'PROMOTEL_HOST_METRICS', default: 'true', meaning: 'host and process metrics from `@opentelemetry/host-metrics`' },
  { name: 'PROMOTEL_CARDINALITY_LIMIT', default: '2000', meaning: 'series per metric before new label sets go to the `otel_metric_overflow="true"` series' },
  { name: 'PROMOTEL_CLUSTER_PUSH_INTERVAL', default: '1000', meaning: 'under `node:cluster`, how often (ms) each worker sends its metrics to the primary' },
];

type Env = Record<string, string | undefined>;

export function readConfig(env: Env = process.env): { config: Config; warnings: string[] } {
  const warnings: string[] = [];
  const config: Config = { ...DEFAULTS, resourceAttributes: {}, exporters: [...DEFAULTS.exporters] };
  const bad = (name: string, value: string, fix: string, used: string): void => {
    warnings.push(`${name}=${JSON.stringify(value)} is invalid: ${fix}; using ${used}`);
  };

  const bool = (name: string, fallback: boolean): boolean => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return fallback;
    const v = raw.trim().toLowerCase();
    if (v === 'true') return true;
    if (v === 'false') return false;
    bad(name, raw, 'set it to true or false', String(fallback));
    return fallback;
  };

  config.disabled = bool('OTEL_SDK_DISABLED', DEFAULTS.disabled);

  const level = env.OTEL_LOG_LEVEL?.trim().toLowerCase();
  if (level) {
    if (isLogLevel(level)) config.logLevel = level;
    else bad('OTEL_LOG_LEVEL', env.OTEL_LOG_LEVEL!, 'use none, error, warn, info, debug, verbose or all', DEFAULTS.logLevel);
  }

  const name = env.OTEL_SERVICE_NAME?.trim();
  if (name) config.serviceName = name;

  if (env.OTEL_RESOURCE_ATTRIBUTES?.trim()) {
    const { attributes, rejected } = parseResourceAttributes(env.OTEL_RESOURCE_ATTRIBUTES);
    config.resourceAttributes = attributes;
    for (const pair of rejected) {
      warnings.push(`OTEL_RESOURCE_ATTRIBUTES has ${JSON.stringify(pair)}, which is not key=value: write pairs as key=value separated by commas (percent-encode , = and spaces in values); that pair is ignored`);
    }
  }

  const host = env.OTEL_EXPORTER_PROMETHEUS_HOST?.trim();
  if (host) config.host = host;

  const port = env.OTEL_EXPORTER_PROMETHEUS_PORT;
  if (port !== undefined && port.trim() !== '') {
    const n = Number(port.trim());
    if (/^\d+$/.test(port.trim()) && n >= 0 && n <= 65535) config.port = n;
    else bad('OTEL_EXPORTER_PROMETHEUS_PORT', port, 'use a port number from 0 to 65535', String(DEFAULTS.port));
  }

  const exporters = env.OTEL_METRICS_EXPORTER;
  if (exporters !== undefined && exporters.trim() !== '') {
    const chosen = new Set<MetricsExporter>();
    const unknown: string[] = [];
    let none = false;
    for (const raw of exporters.split(',')) {
      const v = raw.trim().toLowerCase();
      if (v === 'prometheus') chosen.add('prometheus');
      else if (v === 'none') none = true;
      else if (v === 'otlp') chosen.add('otlp');
      else if (v !== '') unknown.push(raw.trim());
    }
    // One warning for all the unknown names; the endpoint stays on, so that a typo never silences the metrics.
    if (unknown.length > 0) chosen.add('prometheus');
    config.exporters = none && chosen.size === 0 ? [] : [...chosen];
    if (unknown.length > 0) {
      bad('OTEL_METRICS_EXPORTER', exporters, `${unknown.map((u) => JSON.stringify(u)).join(' and ')} ${unknown.length > 1 ? 'are not exporters' : 'is not an exporter'}: use prometheus, otlp, both separated by a comma, or none`, config.exporters.join(','));
    }
  }

  config.httpMetrics = bool('PROMOTEL_HTTP_METRICS', DEFAULTS.httpMetrics);
  config.runtimeMetrics = bool('PROMOTEL_RUNTIME_METRICS', DEFAULTS.runtimeMetrics);
  config.hostMetrics = bool('PROMOTEL_HOST_METRICS', DEFAULTS.hostMetrics);

  const hook = env.PROMOTEL_HTTP_SERVER_HOOK?.trim();
  if (hook) {
    if (hook === 'diagnostics_channel' || hook === 'instrumentation-http') config.httpServerHook = hook;
    else bad('PROMOTEL_HTTP_SERVER_HOOK', hook, 'use diagnostics_channel or instrumentation-http', DEFAULTS.httpServerHook);
  }

  const limit = env.PROMOTEL_CARDINALITY_LIMIT?.trim();
  if (limit) {
    const n = Number(limit);
    if (/^\d+$/.test(limit) && n >= 2 && n <= 1_000_000) config.cardinalityLimit = n;
    else bad('PROMOTEL_CARDINALITY_LIMIT', limit, 'use a whole number from 2 to 1000000', String(DEFAULTS.cardinalityLimit));
  }

  const protocolVar = env.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL?.trim() ? 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = env[protocolVar]?.trim();
  if (protocol) {
    if (protocol === 'http/protobuf' || protocol === 'http/json') config.otlpProtocol = protocol;
    else if (protocol === 'grpc') warnings.push(`${protocolVar}="grpc" is not supported by promotel: use http/protobuf (the Collector's port 4318); using http/protobuf`);
    else bad(protocolVar, protocol, 'use http/protobuf or http/json', DEFAULTS.otlpProtocol);
  }

  const millis = (name: string, min: number, max: number, fallback: number): number => {
    const raw = env[name]?.trim();
    if (!raw) return fallback;
    const n = Number(raw);
    if (/^\d+$/.test(raw) && n >= min && n <= max) return n;
    bad(name, raw, `use milliseconds from ${min} to ${max}`, String(fallback));
    return fallback;
  };
  config.exportIntervalMs = millis('OTEL_METRIC_EXPORT_INTERVAL', 100, 86_400_000, DEFAULTS.exportIntervalMs);
  const timeoutVar = env.OTEL_EXPORTER_OTLP_METRICS_TIMEOUT?.trim() ? 'OTEL_EXPORTER_OTLP_METRICS_TIMEOUT' : 'OTEL_EXPORTER_OTLP_TIMEOUT';
  config.otlpTimeoutMs = millis(timeoutVar, 100, 600_000, DEFAULTS.otlpTimeoutMs);

  config.eventLoopResolutionMs = millis('PROMOTEL_EVENTLOOP_DELAY_RESOLUTION', 1, 60_000, DEFAULTS.eventLoopResolutionMs);
  config.clusterPushIntervalMs = millis('PROMOTEL_CLUSTER_PUSH_INTERVAL', 50, 600_000, DEFAULTS.clusterPushIntervalMs);

  return { config, warnings };
}

/** W3C Baggage-like `key=value,key2=value2`, values percent-decoded, as the OTel spec defines OTEL_RESOURCE_ATTRIBUTES. */
export function parseResourceAttributes(raw: string): { attributes: Record<string, string>; rejected: string[] } {
  const attributes: Record<string, string> = {};
  const rejected: string[] = [];
  for (const pair of raw.split(',')) {
    if (pair.trim() === '') continue;
    const eq = pair.indexOf('=');
    const key = eq > 0 ? pair.slice(0, eq).trim() : '';
    if (!key) {
      rejected.push(pair);
      continue;
    }
    try {
      attributes[key] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      rejected.push(pair);
    }
  }
  return { attributes, rejected };
}
