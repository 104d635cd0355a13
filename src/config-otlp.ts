// The OTLP push's settings. They are read, and complained about, only when
// OTLP is on: a variable left over for another SDK must not make noise in an
// app that only serves /metrics. A per-signal variable (…_METRICS_…) wins over
// the generic one; one that cannot be parsed counts as not set, so the generic
// one applies, as the specification says.
import { invalid, httpUrl, millis, ok, type Check } from './config-values';
import { parseHeaders } from './config-pairs';

export type OtlpProtocol = 'http/protobuf' | 'http/json';

export const DEFAULT_OTLP_ENDPOINT = 'http://localhost:4318/v1/metrics';

export const protocol: Check<OtlpProtocol> = (raw) => {
  const v = raw.trim().toLowerCase();
  if (v === 'http/protobuf' || v === 'http/json') return ok(v);
  if (v === 'grpc') return { error: "is not supported by promotel: use http/protobuf (the Collector's port 4318)" };
  return invalid('use http/protobuf or http/json');
};

/** OTEL_EXPORTER_OTLP_ENDPOINT is a base: the signal's path is appended to it. */
export const baseEndpoint: Check<string> = (raw) => {
  const r = httpUrl(raw);
  if (!('value' in r)) return r;
  const url = new URL(r.value);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/metrics`;
  return ok(url.href);
};

export const exportTimeout = millis(100, 600_000);
export const exportInterval = millis(100, 86_400_000);

type Env = Record<string, string | undefined>;

/** The headers of both variables, the per-signal one winning per header, as the OTLP exporters of OpenTelemetry JS merge them. */
export function readHeaders(env: Env): { headers: Record<string, string>; warnings: string[] } {
  const headers: Record<string, string> = {};
  const warnings: string[] = [];
  for (const variable of ['OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_METRICS_HEADERS']) {
    const raw = env[variable];
    if (raw === undefined || raw.trim() === '') continue;
    const parsed = parseHeaders(variable, raw);
    Object.assign(headers, parsed.headers);
    if (parsed.error) warnings.push(parsed.error);
  }
  return { headers, warnings };
}

/**
 * promotel pushes what its pull reader holds, which is cumulative. Delta
 * would need a second copy of every series to subtract from, per collector;
 * the Collector's cumulativetodelta processor does that where it is wanted.
 */
export function checkTemporality(env: Env): string | undefined {
  const variable = 'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE';
  const raw = env[variable];
  const v = raw?.trim().toLowerCase();
  if (!v || v === 'cumulative') return undefined;
  const why =
    v === 'delta' || v === 'lowmemory'
      ? 'is not supported by promotel, which pushes cumulative data only: leave it unset, and convert to delta in the OpenTelemetry Collector with its cumulativetodelta processor if the backend needs delta'
      : 'is invalid: use cumulative (delta and lowmemory are not supported by promotel)';
  return `${variable}=${JSON.stringify(raw)} ${why}; using cumulative`;
}
