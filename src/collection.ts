// Three moments that a few instruments must know about, announced here so that
// the reader, the OTLP push and the cluster code need not know those
// instruments.
//
// - A collection starts: the active-resources gauge takes its snapshot
//   then, before the SDK arms a timer per callback and the host metrics open
//   files, so that the agent's own work is not counted as the app's.
// - An export starts (a scrape of the endpoint, an OTLP push): a cluster
//   primary first asks its workers for their data as of now.
// - A window ends: gauges that summarize an interval (event-loop delay and
//   utilization) start a new one after each export, and in a cluster worker
//   after it answered the primary's request. Not on a worker's periodic push:
//   those run every second, and a window per push would show the primary's
//   scrape only the last second of each worker.

const exportStarts = new Set<() => Promise<void>>();
const starts = new Set<() => void>();
const windowEnds = new Set<() => void>();

function subscribe<F>(set: Set<F>, fn: F): () => void {
  set.add(fn);
  return () => void set.delete(fn);
}

function announce(set: Set<() => void>): void {
  for (const fn of set) {
    try {
      fn();
    } catch {} // a listener's failure must not fail the scrape; each listener reports its own
  }
}

export const onCollectionStart = (fn: () => void): (() => void) => subscribe(starts, fn);
export const collectionStarts = (): void => announce(starts);
export const onWindowEnd = (fn: () => void): (() => void) => subscribe(windowEnds, fn);
export const endWindow = (): void => announce(windowEnds);

export const onExportStart = (fn: () => Promise<void>): (() => void) => subscribe(exportStarts, fn);

/** Resolves when every listener has done (or failed: each reports its own). */
export const exportStart = async (): Promise<void> => {
  await Promise.all([...exportStarts].map((fn) => fn().catch(() => {})));
};

/**
 * The shortest window a utilization (a share of time: event loop, CPU) is measured over. A second
 * scraper a few ms after the first (an HA pair) would otherwise see a window that holds little but the
 * scrape itself, read in 10 ms ticks: ratios of 0 or above 1. A shorter window repeats the last value
 * and does not end.
 */
export const MIN_WINDOW_MS = 100;

export interface UtilizationWindow<S> {
  /** Where the current window starts. */
  readonly start: S;
  /**
   * The start of the window that ends at `now` (a snapshot taken in this collection), if it lasted
   * MIN_WINDOW_MS: the next export then starts a new window at `now`. Undefined for a shorter one,
   * which the next export leaves running.
   */
  whole(now: S): S | undefined;
  stop(): void;
}

/** A window from `first` (a snapshot of the counters a utilization is made of); `lengthMs` says how long one is. */
export function utilizationWindow<S>(first: S, lengthMs: (from: S, to: S) => number): UtilizationWindow<S> {
  let start = first;
  let ending: S | undefined;
  const stop = onWindowEnd(() => {
    if (ending !== undefined) start = ending;
  });
  return {
    get start() {
      return start;
    },
    whole(now) {
      ending = lengthMs(start, now) >= MIN_WINDOW_MS ? now : undefined;
      return ending === undefined ? undefined : start;
    },
    stop,
  };
}
