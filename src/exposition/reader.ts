// The pull side of the SDK: a MetricReader that collects on demand and hands
// the result to the serializer. Concurrent scrapes share one collection, so a
// burst of scrapers costs one pass over the SDK's storage, not one each.
import type { Attributes, HrTime } from '@opentelemetry/api';
import { AggregationTemporality, InstrumentType, MetricReader, type CollectionResult, type MetricData, type MetricProducer, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { collectionStarts, endWindow, exportStart } from '../collection';
import { describeError, warnOnce } from '../log';
import { limitCumulativeSeries } from './cumulative-limit';
import { serializeToBuffer } from './serialize';
import { dropUnobservedSums } from './unobserved-sums';

export interface ScrapeResult {
  /** The exposition, UTF-8 encoded (`.toString()` for text). */
  body: Buffer;
  openMetrics: boolean;
  /**
   * Says the body is sent and will not be read again, so that a later scrape
   * may write over its memory. Optional: a body never given back is left to
   * the GC, and the next scrape allocates anew.
   */
  release: () => void;
}

/** One serialization, shared by the scrapes that asked while it ran. */
interface Shared {
  body: Promise<Buffer>;
  /** Scrapes that got the body and have not released it. */
  users: number;
}

export class PullReader extends MetricReader {
  private readonly unitOverrides: ReadonlyMap<string, string>;
  private readonly startTimes: ReadonlyMap<string, HrTime>;
  /** Folds in data from elsewhere before serializing (the cluster workers' metrics, in a cluster primary). */
  merge: ((own: ResourceMetrics) => ResourceMetrics) | undefined;
  /**
   * Leaves series out of scrapes: sdk-metrics cannot forget a series, so the
   * sidecar hides those of targets removed from its config this way.
   */
  hide: ((metric: string, attributes: Attributes) => boolean) | undefined;
  private inFlight = new Map<boolean, Shared>();
  /**
   * The memory of the last output of each format (text, OpenMetrics) once its
   * scrapes released it. A scrape writes megabytes at 10k series; a fresh
   * buffer each time came from pages glibc had given back to the kernel when
   * the last one was freed, and faulting them in again took longer than the
   * serializing (see bench/RESULTS.md).
   */
  private spare: Array<Buffer | undefined> = [undefined, undefined];

  private readonly producers: MetricProducer[];

  /**
   * `unitOverrides`: units for instruments created without one; `startTimes`:
   * start times for counters that count from before the agent started (the
   * host's, since boot). Both keyed by scope name and metric name, NUL between.
   */
  constructor(options: { cardinalityLimit: number; unitOverrides?: ReadonlyMap<string, string>; startTimes?: ReadonlyMap<string, HrTime> }) {
    const limit = options.cardinalityLimit;
    // Producers of our own (the HTTP server hook's aggregation) are added after
    // construction, so the SDK gets one producer that asks all of them.
    const producers: MetricProducer[] = [];
    const all: MetricProducer = { collect: (o) => collectAll(producers, o) };
    super({ cardinalitySelector: () => limit, metricProducers: [all], aggregationTemporalitySelector: temporalityOf });
    if (!dropUnobservedSums()) {
      warnOnce('unobserved-sums', 'observable counters keep serving label sets their callbacks no longer observe, with their last values: this @opentelemetry/sdk-metrics is not the 2.12.0 promotel was built for; reinstall promotel with its own dependencies');
    }
    if (!limitCumulativeSeries(limit)) {
      warnOnce('cumulative-limit', `the cardinality limit (${limit}) holds only for the label sets new within one scrape interval, so a metric with ever-new label values keeps growing: this @opentelemetry/sdk-metrics is not the 2.12.0 promotel was built for; reinstall promotel with its own dependencies`);
    }
    this.producers = producers;
    this.unitOverrides = options.unitOverrides ?? new Map();
    this.startTimes = options.startTimes ?? new Map();
  }

  /** Adds data that does not come from sdk-metrics instruments to every collection (scrapes and cluster pushes alike). */
  addProducer(producer: MetricProducer): void {
    this.producers.push(producer);
  }

  /** `timeoutMs`: for the metric callbacks; scrapes that arrive while one runs share it, and its timeout. */
  scrape(openMetrics: boolean, timeoutMs = 10_000): Promise<ScrapeResult> {
    let shared = this.inFlight.get(openMetrics);
    if (shared === undefined) {
      // Deleted before any scrape sees the body, so `users` is final by the time one releases it.
      shared = { body: this.collectAndSerialize(openMetrics, timeoutMs).finally(() => this.inFlight.delete(openMetrics)), users: 0 };
      this.inFlight.set(openMetrics, shared);
    }
    const mine = shared;
    mine.users++;
    return mine.body.then((body) => {
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        if (--mine.users === 0) this.spare[openMetrics ? 1 : 0] = Buffer.from(body.buffer, body.byteOffset, body.buffer.byteLength - body.byteOffset);
      };
      return { body, openMetrics, release };
    });
  }

  /**
   * sdk-metrics 2.12 reads `errors[0].name` after collecting: a callback that rejected with no reason
   * (`Promise.reject()`, `throw null`) turned every later scrape into a TypeError and an HTTP 500.
   * Such a reason reaches the SDK here as an Error that says what it was.
   */
  override setMetricProducer(producer: MetricProducer): void {
    super.setMetricProducer({
      collect: async (options) => {
        const result = await producer.collect(options);
        if (!result.errors.some((e) => e == null)) return result;
        return { ...result, errors: result.errors.map((e: unknown) => e ?? new Error(`it rejected with ${String(e)}, not an Error`)) };
      },
    });
  }

  /**
   * Every collection: scrapes, cluster pushes and OTLP exports. One at a time, shared by whoever asks
   * while it runs (a text and an OpenMetrics scrape, a scrape and an OTLP push, a cluster worker's push
   * and its answer to the primary): observable gauges are collected as delta, so two collections that
   * overlapped each emptied the other's observations, and one of them served none of those gauges.
   */
  override collect(options?: { timeoutMillis?: number }): Promise<CollectionResult> {
    if (this.collecting !== undefined) return this.collecting;
    const run = this.collectOnce(options).finally(() => (this.collecting = undefined));
    this.collecting = run;
    return run;
  }

  private collecting: Promise<CollectionResult> | undefined;

  private async collectOnce(options?: { timeoutMillis?: number }): Promise<CollectionResult> {
    collectionStarts();
    const result = await super.collect(options);
    if (this.startTimes.size > 0 || this.unitOverrides.size > 0) {
      for (const sm of result.resourceMetrics.scopeMetrics) {
        for (const metric of sm.metrics) {
          const key = `${sm.scope.name}\u0000${metric.descriptor.name}`;
          const start = this.startTimes.get(key);
          // The SDK builds these points afresh for each collection: setting them here changes no stored state.
          if (start !== undefined) for (const point of metric.dataPoints) (point as { startTime: HrTime }).startTime = start;
          // Here rather than in the serializer, so that OTLP pushes and a cluster's primary get the unit too.
          const unit = this.unitOverrides.get(key);
          if (unit !== undefined && metric.descriptor.unit === '') (metric as { descriptor: MetricData['descriptor'] }).descriptor = { ...metric.descriptor, unit };
        }
      }
    }
    return result;
  }

  /**
   * What an export (a scrape, an OTLP push) shows: a cluster's workers are
   * asked first, then everything is collected and merged; interval gauges
   * then start a new window. A failed callback is said once, naming `what`.
   */
  async collectForExport(timeoutMillis: number, what: { during: string; outcome: string }): Promise<ResourceMetrics> {
    await exportStart();
    const { resourceMetrics, errors } = await this.collect({ timeoutMillis });
    endWindow();
    for (const err of errors) {
      // Most often an observable callback of the app or an instrumentation that threw: the SDK caught it, we say so once.
      warnOnce(`collect:${describeError(err)}`, `a metric callback failed during ${what.during} (${describeError(err)}); the other metrics were ${what.outcome}: fix or remove that callback`);
    }
    const own = this.hide ? withoutHidden(resourceMetrics, this.hide) : resourceMetrics;
    return this.merge ? this.merge(own) : own;
  }

  private async collectAndSerialize(openMetrics: boolean, timeoutMs: number): Promise<Buffer> {
    const data = await this.collectForExport(timeoutMs, { during: 'a scrape', outcome: 'served' });
    const into = this.spare[openMetrics ? 1 : 0];
    this.spare[openMetrics ? 1 : 0] = undefined;
    return serializeToBuffer(data, { openMetrics, onProblem: warnOnce, into });
  }

  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

// Cumulative, except for observable gauges: cumulative storage merges each
// collection into the last, so a label set a callback observed once would be
// served forever with its old value (the SDK spec says not to). A gauge has no
// temporality in either exposition, and "delta" keeps only this collection's
// observations.
function temporalityOf(type: InstrumentType): AggregationTemporality {
  return type === InstrumentType.OBSERVABLE_GAUGE ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE;
}

async function collectAll(producers: MetricProducer[], options: { timeoutMillis?: number } | undefined): Promise<CollectionResult> {
  const results = await Promise.all(producers.map((p) => p.collect(options)));
  return {
    resourceMetrics: { resource: undefined as never, scopeMetrics: results.flatMap((r) => r.resourceMetrics.scopeMetrics) },
    errors: results.flatMap((r) => r.errors),
  };
}

function withoutHidden(rm: ResourceMetrics, hide: (metric: string, attributes: Attributes) => boolean): ResourceMetrics {
  const scopeMetrics = rm.scopeMetrics.map((sm) => ({
    ...sm,
    metrics: sm.metrics.map((m) => {
      const kept = (m.dataPoints as Array<{ attributes: Attributes }>).filter((p) => !hide(m.descriptor.name, p.attributes));
      return kept.length === m.dataPoints.length ? m : ({ ...m, dataPoints: kept } as MetricData);
    }),
  }));
  return { ...rm, scopeMetrics };
}
