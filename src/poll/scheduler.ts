// Polls each target on its own timer. The first poll of a target waits a
// random part of the jitter and each next one starts `interval` (plus a new
// random part of the jitter) after the previous start, so targets do not
// poll in lock-step. A limiter bounds the polls running at once; a target
// whose previous poll is still running or queued skips its turn rather than
// piling up. Timers are unref'd: the scheduler never keeps the process alive.

export interface Limiter {
  run<T>(fn: () => Promise<T>): Promise<T>;
  setLimit(n: number): void;
  readonly active: number;
  /** Runs waiting for a slot. */
  readonly queued: number;
}

export function createLimiter(limit: number): Limiter {
  let active = 0;
  const queue: Array<() => void> = [];
  const next = (): void => {
    while (active < limit && queue.length > 0) {
      active++;
      queue.shift()!();
    }
  };
  return {
    get active() {
      return active;
    },
    get queued() {
      return queue.length;
    },
    setLimit(n) {
      limit = n;
      next();
    },
    run<T>(fn: () => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push(() => {
          fn()
            .then(resolve, reject)
            .finally(() => {
              active--;
              next();
            });
        });
        next();
      });
    },
  };
}

export interface Job {
  key: string;
  intervalMs: number;
  jitterMs: number;
  run(): Promise<void>;
}

export interface Scheduler {
  /** Starts jobs not yet running, stops those gone; a job whose key is unchanged keeps its timer. */
  set(jobs: Job[]): void;
  stop(): void;
}

export function createScheduler(limiter: Limiter, random: () => number = Math.random): Scheduler {
  const running = new Map<string, { job: Job; timer: NodeJS.Timeout | undefined; busy: boolean; stopped: boolean }>();

  const start = (job: Job): void => {
    const state = { job, timer: undefined as NodeJS.Timeout | undefined, busy: false, stopped: false };
    running.set(job.key, state);
    if (job.intervalMs <= 0) return; // polled on /probe only
    const arm = (delay: number): void => {
      state.timer = setTimeout(tick, delay);
      state.timer.unref();
    };
    const tick = (): void => {
      if (state.stopped) return;
      arm(job.intervalMs + random() * job.jitterMs);
      if (state.busy) return;
      state.busy = true;
      limiter
        .run(() => job.run())
        .catch(() => undefined) // run() never rejects; this is belt and braces for a long-running process
        .finally(() => (state.busy = false));
    };
    arm(random() * job.jitterMs);
  };

  return {
    set(jobs) {
      const keys = new Set(jobs.map((j) => j.key));
      for (const [key, state] of running) {
        if (keys.has(key)) continue;
        state.stopped = true;
        clearTimeout(state.timer);
        running.delete(key);
      }
      for (const job of jobs) if (!running.has(job.key)) start(job);
    },
    stop() {
      this.set([]);
    },
  };
}
