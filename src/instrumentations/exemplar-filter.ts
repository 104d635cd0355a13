// OTEL_METRICS_EXEMPLAR_FILTER, as the HTTP server hooks apply it. The hooks
// are process-wide (one diagnostics_channel subscriber per agent, and one agent
// per process), so the filter is too.
import { context, trace } from '@opentelemetry/api';
import type { ExemplarFilter } from '../config';
import type { Exemplar } from '../exposition/serialize';

export let exemplarFilter: ExemplarFilter = 'trace_based';

export function setExemplarFilter(filter: ExemplarFilter): void {
  exemplarFilter = filter;
}

// Where every @opentelemetry/api 1.x copy keeps what the app registers. With
// no context manager there, context.active() can only be the empty root
// context, so no request runs under a span and the lookup below, about 30%
// of this hook's time in bench/hook.mjs, is skipped. A context manager
// registered later is seen from the next request on.
const API_GLOBAL: unique symbol = Symbol.for('opentelemetry.js.api.1');
const apiGlobal = globalThis as { [API_GLOBAL]?: { context?: unknown } };

/**
 * The span the response was ended under, if the application traces and
 * OTEL_METRICS_EXEMPLAR_FILTER lets it through: trace_based wants the span
 * sampled, always_on takes any span. node:http detaches a response in its
 * 'finish', which runs in the async context of `res.end()`, so the app's
 * active span is visible here. With no span there is no trace id to link
 * to, so even always_on records nothing.
 */
export function exemplar(seconds: number): Exemplar | undefined {
  const filter = exemplarFilter;
  if (filter === 'always_off' || apiGlobal[API_GLOBAL]?.context === undefined) return undefined;
  const span = trace.getSpan(context.active());
  if (span === undefined) return undefined;
  const sc = span.spanContext();
  if ((filter === 'trace_based' && (sc.traceFlags & 1) === 0) || !/^[0-9a-f]{32}$/.test(sc.traceId) || sc.traceId === '00000000000000000000000000000000') return undefined;
  return { value: seconds, traceId: sc.traceId, spanId: sc.spanId, timeSeconds: Date.now() / 1000 };
}
