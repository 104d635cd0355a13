// Conversions of big bodies run on the poller's only thread: a 7 MB body of
// 200,000 series takes over a second here. A Pace gives the event loop a turn
// every few milliseconds of such work, so that other targets' probes, their
// timeouts and /metrics scrapes are not held up behind it.
import { performance } from 'node:perf_hooks';

const SLICE_MS = 5;

export interface Pace {
  /** True about every SLICE_MS of work: then `await pace.yield()`. Cheap to call in a loop. */
  due(): boolean;
  yield(): Promise<void>;
}

/** The work went past its deadline: the probe's answer is due, converted or not. */
export class PastDeadline extends Error {}

/** `deadline`: performance.now() ms by which the work must be done; a yield after it rejects with PastDeadline. */
export function pace(deadline = Infinity): Pace {
  let next = performance.now() + SLICE_MS;
  let calls = 0;
  return {
    // The clock is read once per 256 calls: a loop step is far shorter than a slice.
    due: () => (++calls & 255) === 0 && performance.now() >= next,
    yield: () =>
      new Promise<void>((resolve, reject) =>
        setImmediate(() => {
          const now = performance.now();
          if (now > deadline) return reject(new PastDeadline());
          next = now + SLICE_MS;
          resolve();
        }),
      ),
  };
}
