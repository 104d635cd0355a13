// Aggregation for the HTTP server hook, done here instead of in sdk-metrics:
// the SDK hashes the attribute object (sort + JSON.stringify) on every
// record(), which cost more than the rest of a hello-world request. Here each
// label set is a cell found through small nested maps keyed by the raw values,
// and the cells reach the reader as a MetricProducer, in the same shape
// (names, units, attributes, cumulative points, overflow series) the SDK
// would have produced for the same instruments.
import type { Attributes, HrTime } from '@opentelemetry/api';
import type { CollectionResult, MetricData, MetricProducer, ScopeMetrics } from '@opentelemetry/sdk-metrics';
import { OVERFLOW_ATTRIBUTE, type Exemplar, type ExemplarPoint } from '../exposition/serialize';
import { DURATION_BUCKETS, normalizeMethod } from './http-semconv';

// Not performance.now(), which checks its receiver's brand with a hasOwnProperty call on each read.
// The pair process.hrtime() returns is read at once into one double (seconds since boot, in steps of
// a few ns even after a year up), so that the optimizer drops the array; kept on the response, it would not.
const hrtime = process.hrtime;
export function clockSeconds(): number {
  const t = hrtime();
  return t[0] + t[1] / 1e9;
}

// sdk-metrics enums, inlined so that this module loads nothing at run time.
const HISTOGRAM = 0;
const SUM = 3;
const CUMULATIVE = 1;
const DOUBLE = 1;

export interface HistogramCell {
  readonly attributes: Attributes;
  readonly start: HrTime;
  readonly counts: number[];
  sum: number;
  count: number;
  min: number;
  max: number;
  /** Latest exemplar per bucket, only once a request ran under a sampled span. */
  exemplars: Array<Exemplar | undefined> | undefined;
}

export interface ActiveCell {
  readonly attributes: Attributes;
  readonly start: HrTime;
  value: number;
  /** Duration cells of this method and scheme, by `status version error route`. */
  readonly outcomes: Map<string, HistogramCell>;
  /** The common outcome, HTTP/1.1 with no route and no error, by status code: no key string to build. */
  readonly plain: Array<HistogramCell | undefined>;
  /** The same for HTTP/2 (http2-server.ts). */
  readonly plain2: Array<HistogramCell | undefined>;
}

function now(): HrTime {
  const ms = Date.now();
  return [Math.floor(ms / 1000), (ms % 1000) * 1e6];
}

export class HttpServerStore implements MetricProducer {
  // By scheme, then method (normalized).
  private readonly activeHttp = new Map<string, ActiveCell>();
  private readonly activeHttps = new Map<string, ActiveCell>();
  private activeCount = 0;
  private readonly durations: HistogramCell[] = [];
  private durationOverflow: HistogramCell | undefined;
  private activeOverflow: ActiveCell | undefined;

  /** `limit` is the cardinality limit per metric, overflow series included, as the reader's cardinalitySelector applies it. */
  constructor(
    private readonly scope: { name: string; version: string },
    private readonly limit: number,
  ) {}

  /**
   * The cell of a request's method as the parser gave it. The parser interns the method strings it
   * hands out and a known method is its own normalized form, so the raw method is looked up first:
   * one Map lookup per request, no key to build, and no entry for a made-up method (`_OTHER`'s).
   */
  activeCell(rawMethod: string | undefined, https: boolean): ActiveCell {
    const byMethod = https ? this.activeHttps : this.activeHttp;
    const known = byMethod.get(rawMethod!);
    if (known !== undefined) return known;
    const method = normalizeMethod(rawMethod);
    let cell = byMethod.get(method);
    if (cell !== undefined) return cell;
    if (this.activeCount >= this.limit - 1) {
      this.activeOverflow ??= { attributes: { [OVERFLOW_ATTRIBUTE]: true }, start: now(), value: 0, outcomes: new Map(), plain: [], plain2: [] };
      return this.activeOverflow;
    }
    cell = { attributes: { 'http.request.method': method, 'url.scheme': https ? 'https' : 'http' }, start: now(), value: 0, outcomes: new Map(), plain: [], plain2: [] };
    byMethod.set(method, cell);
    this.activeCount++;
    return cell;
  }

  /**
   * The duration cell of one outcome of `active`'s method and scheme, made on first use. A status of 0
   * (no headers sent), an empty version or error and an undefined route leave their attribute out.
   */
  outcomeCell(active: ActiveCell, status: number, version: string, errorType: string, route: string | undefined): HistogramCell {
    const key = `${status} ${version} ${errorType} ${route ?? ''}`;
    let cell = active.outcomes.get(key);
    if (cell !== undefined) return cell;
    // A method and scheme past the limit have no attributes to give their durations: those overflow too.
    if (active === this.activeOverflow) {
      cell = this.durationOverflow ??= emptyHistogram({ [OVERFLOW_ATTRIBUTE]: true });
      active.outcomes.set(key, cell);
      return cell;
    }
    const attrs: Attributes = { 'http.request.method': active.attributes['http.request.method'], 'url.scheme': active.attributes['url.scheme'] };
    if (status) attrs['http.response.status_code'] = status;
    if (route !== undefined) attrs['http.route'] = route;
    if (version) attrs['network.protocol.version'] = version;
    if (errorType) attrs['error.type'] = errorType;
    cell = this.newDurationCell(Object.freeze(attrs));
    active.outcomes.set(key, cell);
    return cell;
  }

  /** A new duration cell for attributes no cell has yet, or the overflow cell once the limit is reached. */
  private newDurationCell(attributes: Attributes): HistogramCell {
    if (this.durations.length >= this.limit - 1) {
      this.durationOverflow ??= emptyHistogram({ [OVERFLOW_ATTRIBUTE]: true });
      return this.durationOverflow;
    }
    const cell = emptyHistogram(attributes);
    this.durations.push(cell);
    return cell;
  }

  async collect(): Promise<CollectionResult> {
    const end = now();
    const metrics: MetricData[] = [];
    // None from HTTP/1 when instrumentation-http records those durations; HTTP/2's are always promotel's.
    const cells = this.durationOverflow ? [...this.durations, this.durationOverflow] : this.durations;
    if (cells.length > 0) {
      metrics.push({
        descriptor: { name: 'http.server.request.duration', description: 'Duration of HTTP server requests.', unit: 's', valueType: DOUBLE },
        aggregationTemporality: CUMULATIVE,
        dataPointType: HISTOGRAM,
        dataPoints: cells.map((c) => histogramPoint(c, end)),
      } as MetricData);
    }
    const active = [...this.activeHttp.values(), ...this.activeHttps.values()];
    if (this.activeOverflow) active.push(this.activeOverflow);
    if (active.length > 0) {
      metrics.push({
        descriptor: { name: 'http.server.active_requests', description: 'Number of active HTTP server requests.', unit: '{request}', valueType: DOUBLE },
        aggregationTemporality: CUMULATIVE,
        dataPointType: SUM,
        isMonotonic: false,
        dataPoints: active.map((c) => ({ attributes: c.attributes, startTime: c.start, endTime: end, value: c.value })),
      } as MetricData);
    }
    const scopeMetrics: ScopeMetrics[] = metrics.length ? [{ scope: this.scope, metrics }] : [];
    // The reader keeps the SDK's resource and ignores this one.
    return { resourceMetrics: { resource: undefined as never, scopeMetrics }, errors: [] };
  }
}

function emptyHistogram(attributes: Attributes): HistogramCell {
  return {
    attributes,
    start: now(),
    counts: new Array<number>(DURATION_BUCKETS.length + 1).fill(0),
    sum: 0,
    count: 0,
    min: Infinity,
    max: -Infinity,
    exemplars: undefined,
  };
}

/** Same bucket rule as the SDK: the first boundary >= value. */
export function recordDuration(cell: HistogramCell, seconds: number, exemplar: Exemplar | undefined): void {
  if (Number.isNaN(seconds)) return;
  let i = 0;
  while (i < DURATION_BUCKETS.length && DURATION_BUCKETS[i]! < seconds) i++;
  cell.counts[i]!++;
  cell.count++;
  cell.sum += seconds;
  if (seconds < cell.min) cell.min = seconds;
  if (seconds > cell.max) cell.max = seconds;
  if (exemplar !== undefined) (cell.exemplars ??= new Array(DURATION_BUCKETS.length + 1))[i] = exemplar;
}

function histogramPoint(c: HistogramCell, end: HrTime): ExemplarPoint {
  // Copies: an exporter may hold the data while requests keep counting.
  return {
    attributes: c.attributes,
    startTime: c.start,
    endTime: end,
    value: {
      buckets: { boundaries: DURATION_BUCKETS, counts: c.counts.slice() },
      sum: c.sum,
      count: c.count,
      min: c.count ? c.min : undefined,
      max: c.count ? c.max : undefined,
    },
    exemplars: c.exemplars?.slice(),
  };
}
