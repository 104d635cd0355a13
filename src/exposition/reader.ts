// The pull side of the SDK: a MetricReader that collects on demand and hands
// the result to the serializer. Concurrent scrapes share one collection, so a
// burst of scrapers costs one pass over the SDK's storage, not one each.
import { MetricReader } from '@opentelemetry/sdk-metrics';
import { describeError, warnOnce } from '../log';
import { serialize } from './serialize';

export interface ScrapeResult {
  body: string;
  openMetrics: boolean;
}

export class PullReader extends MetricReader {
  private readonly unitOverrides: ReadonlyMap<string, string>;
  private inFlight = new Map<boolean, Promise<ScrapeResult>>();

  constructor(options: { cardinalityLimit: number; unitOverrides?: ReadonlyMap<string, string> }) {
    const limit = options.cardinalityLimit;
    super({ cardinalitySelector: () => limit });
    this.unitOverrides = options.unitOverrides ?? new Map();
  }

  scrape(openMetrics: boolean): Promise<ScrapeResult> {
    let pending = this.inFlight.get(openMetrics);
    if (pending === undefined) {
      pending = this.collectAndSerialize(openMetrics).finally(() => this.inFlight.delete(openMetrics));
      this.inFlight.set(openMetrics, pending);
    }
    return pending;
  }

  private async collectAndSerialize(openMetrics: boolean): Promise<ScrapeResult> {
    const { resourceMetrics, errors } = await this.collect({ timeoutMillis: 10_000 });
    for (const err of errors) {
      // Most often an observable callback of the app or an instrumentation that threw: the SDK caught it, we say so once.
      warnOnce(`collect:${describeError(err)}`, `a metric callback failed during a scrape (${describeError(err)}); the other metrics were served: fix or remove that callback`);
    }
    const body = serialize(resourceMetrics, {
      openMetrics,
      unitOverrides: this.unitOverrides,
      onProblem: warnOnce,
    });
    return { body, openMetrics };
  }

  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}
