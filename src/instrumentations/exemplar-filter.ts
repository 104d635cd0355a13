// OTEL_METRICS_EXEMPLAR_FILTER, as the HTTP server hook applies it. The hook
// is process-wide (one diagnostics_channel subscriber per agent, and one agent
// per process), so the filter is too.
import type { ExemplarFilter } from '../config';

export let exemplarFilter: ExemplarFilter = 'trace_based';

export function setExemplarFilter(filter: ExemplarFilter): void {
  exemplarFilter = filter;
}
