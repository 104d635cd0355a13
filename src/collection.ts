// Two moments that a few instruments must know about, announced here so that
// the reader, the OTLP push and the cluster code need not know those
// instruments.
//
// - A collection starts: the active-resources gauge takes its snapshot
//   then, before the SDK arms a timer per callback and the host metrics open
//   files, so that the agent's own work is not counted as the app's.
// - A window ends: gauges that summarize an interval (event-loop delay and
//   utilization) start a new one after each scrape of the endpoint and each
//   OTLP export, and in a cluster worker when the primary was scraped. Not on
//   a worker's push to the primary: those run every second, and a window per
//   push would show the primary's scrape only the last second of each worker.

const starts = new Set<() => void>();
const windowEnds = new Set<() => void>();

function subscribe(set: Set<() => void>, fn: () => void): () => void {
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
