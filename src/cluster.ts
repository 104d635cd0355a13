// node:cluster support. Every worker loads the preload too; if each opened
// :9000, the cluster module would share that port and every scrape would land
// on one random worker. Instead the primary serves one endpoint and the
// workers send it their data over the IPC channel the cluster already has.
//
// When it is scraped, the primary asks every worker for its data as of now
// and waits up to a second; workers also push every
// PROMOTEL_CLUSTER_PUSH_INTERVAL ms (on an unref'd timer), which is what a
// late worker is served from. All of it travels as `NODE_`-prefixed
// messages, which Node routes to 'internalMessage' instead of 'message' (as
// it does its own cluster traffic): a 'message' listener would hold the IPC
// channel open and keep an idle worker alive, the app's `worker.on('message')` and
// `cluster.on('message')` listeners must never see our data, and one that
// parses every message as JSON would crash on it. Node reserves the prefix
// for itself; test/cluster.test.ts fails if that routing ever changes. When a worker dies, its last
// counters and histograms are kept as "retired" totals, so sums never go
// down, and its gauges are dropped, so nothing stale lingers.
//
// Merge rules: counters, up-down counters and histograms are summed across
// processes; gauges stay per process with a `worker` label (`primary` for the
// primary itself).
import type { Attributes, HrTime } from '@opentelemetry/api';
import type { DataPoint, Histogram, MetricData, ResourceMetrics, ScopeMetrics } from '@opentelemetry/sdk-metrics';
import { endWindow, onExportStart } from './collection';
import { OVERFLOW_ATTRIBUTE } from './exposition/labels';
import { describeError, warnOnce } from './log';

/** Set by a primary's agent and inherited by the workers it forks: they then report to it instead of serving. */
export const PRIMARY_MARK = 'PROMOTEL_CLUSTER_PRIMARY';
const MESSAGE = 'NODE_PROMOTEL_METRICS';
// Primary to workers, as a scrape starts: send your data as of now (and start a new window, src/collection.ts).
const REQUEST = 'NODE_PROMOTEL_REQUEST';
// How long a scrape waits for the workers' answers; a worker that is late (its event loop blocked)
// is served from its last periodic push.
const REQUEST_TIMEOUT_MS = 1000;

const HISTOGRAM = 0;
const GAUGE = 2;
const SUM = 3;

export type Role = 'single' | 'worker' | 'orphan-worker';

interface Worker {
  id: number;
  process: NodeJS.EventEmitter;
}

interface ClusterModule {
  isWorker: boolean;
  worker?: { id: number };
  workers?: Record<string, Worker | undefined>;
  on(event: 'fork' | 'exit', fn: (worker: Worker) => void): unknown;
}

function cluster(): ClusterModule {
  return require('node:cluster') as ClusterModule;
}

/** `worker` when a promotel primary waits for our data; `orphan-worker` in a cluster whose primary has no agent (pm2). */
export function clusterRole(env: NodeJS.ProcessEnv = process.env): Role {
  if (!cluster().isWorker) return 'single';
  // The mark names the primary's pid: a worker of some other primary (a grandchild that inherited the variable) is not fooled.
  return env[PRIMARY_MARK] === String(process.ppid) ? 'worker' : 'orphan-worker';
}

/** In a worker: sends the collected data to the primary on a timer that never holds the process open. */
export function pushToPrimary(collect: () => Promise<ResourceMetrics>, intervalMs: number): () => void {
  // Sends in flight: the last one before the channel closes must not be overtaken by an older collection.
  const pending = new Set<Promise<void>>();
  const send = (reply?: number, done?: () => void): Promise<void> => {
    const sent = collect()
      .then((data) => {
        if (!process.connected) return done?.();
        process.send?.({ cmd: MESSAGE, scopeMetrics: toWire(data.scopeMetrics), reply }, undefined, {}, () => done?.());
        // What the primary asked for is what its scrape shows: interval gauges start anew.
        if (reply !== undefined) endWindow();
      })
      .catch((err: unknown) => {
        done?.();
        warnOnce(`cluster-push:${describeError(err)}`, `a cluster worker could not send its metrics to the primary: ${describeError(err)}; its data is missing from the scrape until it can`);
      })
      .finally(() => pending.delete(sent));
    pending.add(sent);
    return sent;
  };
  // 'internalMessage' does not hold the IPC channel open, unlike 'message'.
  // One answer at a time: while a collection hangs (an app callback that never
  // settles), more requests would only pile up calls to that callback.
  let answering = false;
  const onMessage = (message: unknown): void => {
    const m = message as { cmd?: unknown; id?: unknown } | null;
    if (m?.cmd !== REQUEST || typeof m.id !== 'number' || !process.connected || answering) return;
    answering = true;
    void send(m.id).finally(() => (answering = false));
  };
  process.on('internalMessage' as 'message', onMessage);
  let busy = false;
  const timer = setInterval(() => {
    if (busy || !process.connected || !process.send) return;
    busy = true;
    void send().finally(() => (busy = false));
  }, intervalMs);
  timer.unref();
  const stopLeaving = sendBeforeLeaving(pending, send);
  return () => {
    stopLeaving();
    clearInterval(timer);
    process.off('internalMessage' as 'message', onMessage);
  };
}

/**
 * A worker that leaves the cluster (`worker.disconnect()` from either side, `cluster.disconnect()`, a
 * rolling restart) sends what it counted since its last push before the channel closes: node:cluster
 * calls process.disconnect() once the worker's servers have closed, after their last requests, so
 * that call waits for one more push (1 s at most). Otherwise the counts of a worker's last second, and
 * all of a worker that lived less than a push interval, were lost. Only node:cluster's calls wait:
 * Node also calls process.disconnect() when the channel reaches its end (the primary is gone), and
 * goes on as if it had disconnected; so does an app's own call.
 */
function sendBeforeLeaving(pending: Set<Promise<void>>, send: (reply?: number, done?: () => void) => Promise<void>): () => void {
  const proc = process as NodeJS.Process & { disconnect?: () => void };
  const disconnect = proc.disconnect;
  if (typeof disconnect !== 'function') return () => {};
  let leaving = false;
  const wrapper = function (this: NodeJS.Process): void {
    if (leaving || !process.connected || !fromCluster()) return disconnect.call(this);
    leaving = true;
    let gone = false;
    const leave = (): void => {
      if (gone) return;
      gone = true;
      clearTimeout(cap);
      if (process.connected) disconnect.call(process);
    };
    const cap = setTimeout(leave, REQUEST_TIMEOUT_MS);
    void Promise.all(pending).then(() => send(undefined, leave));
  };
  proc.disconnect = wrapper;
  return () => {
    if (proc.disconnect === wrapper) proc.disconnect = disconnect;
  };
}

// The caller, by its frame in node:internal/cluster/child (Node 16 to 26). Where the stack says nothing
// (Error.stackTraceLimit = 0), the call goes through at once, as without the agent.
function fromCluster(): boolean {
  try {
    return /[/:]internal\/cluster\/child[.:]/.test(new Error().stack ?? '');
  } catch {
    return false;
  }
}

interface Entry {
  metric: MetricData;
  points: Map<string, DataPoint<number | Histogram>>;
}

/**
 * In the primary: keeps each live worker's latest data and the totals of the dead, and merges them into
 * a scrape. Each process keeps its own metrics within `cardinalityLimit`; their union is held to it
 * too (summed metrics; a gauge's series are per live process), or every generation of workers a
 * crash loop or a recycling policy starts would add its label sets for good.
 */
export function createAggregator(cardinalityLimit: number): { merge(own: ResourceMetrics): ResourceMetrics; stop(): void } {
  const live = new Map<number, ScopeMetrics[]>();
  const retired = new Map<string, Map<string, Entry>>();
  const interned = new Map<string, Attributes>();
  const c = cluster();
  // Since the first fork the primary's gauges carry worker="primary", even while no worker has reported
  // (or after the last one left): a series that changed its labels then would end and start anew.
  let forked = false;

  // Answers awaited by the request in flight: worker id -> resolve.
  const awaited = new Map<number, () => void>();
  // Workers that did not answer the last request in time (stuck, or running without the
  // agent): later scrapes do not wait for them again until they answer.
  const silent = new Set<number>();
  const answered = (workerId: number): void => {
    const resolve = awaited.get(workerId);
    awaited.delete(workerId);
    resolve?.();
  };
  let requestId = 0;
  const listening = new Map<Worker, (message: unknown) => void>();
  const listen = (worker: Worker): void => {
    forked = true;
    const onMessage = (message: unknown): void => {
      const m = message as { cmd?: unknown; scopeMetrics?: unknown; reply?: unknown } | null;
      if (m?.cmd !== MESSAGE || !Array.isArray(m.scopeMetrics)) return;
      live.set(worker.id, m.scopeMetrics as ScopeMetrics[]);
      if (m.reply !== undefined) silent.delete(worker.id);
      if (m.reply === requestId) answered(worker.id);
    };
    worker.process.on('internalMessage', onMessage);
    listening.set(worker, onMessage);
  };
  const onExit = (worker: Worker): void => {
    answered(worker.id);
    silent.delete(worker.id);
    const last = live.get(worker.id);
    live.delete(worker.id);
    listening.delete(worker);
    if (last) addAll(retired, last, undefined, interned, true, cardinalityLimit);
  };
  for (const worker of Object.values(c.workers ?? {})) if (worker) listen(worker);
  c.on('fork', listen);
  c.on('exit', onExit);
  // One request at a time: a second scrape meanwhile (another format, another server) shares it.
  let inFlight: Promise<void> | undefined;
  const request = (): Promise<void> => {
    if (inFlight) return inFlight;
    const id = ++requestId;
    const answers: Array<Promise<void>> = [];
    for (const worker of listening.keys()) {
      const child = worker.process as NodeJS.EventEmitter & { connected?: boolean; send?: (m: unknown, h: undefined, o: object, cb: (err: Error | null) => void) => boolean };
      if (!child.connected || !child.send) continue;
      if (!silent.has(worker.id)) answers.push(new Promise<void>((resolve) => awaited.set(worker.id, resolve)));
      // The callback takes a failed send (a worker exiting right now), which would otherwise be thrown.
      child.send({ cmd: REQUEST, id }, undefined, {}, (err) => err && answered(worker.id));
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, REQUEST_TIMEOUT_MS);
      timer.unref();
    });
    inFlight = Promise.race([Promise.all(answers).then(() => {}), late]).finally(() => {
      clearTimeout(timer);
      for (const workerId of awaited.keys()) silent.add(workerId);
      awaited.clear();
      inFlight = undefined;
    });
    return inFlight;
  };
  const stopRequests = onExportStart(request);

  return {
    merge(own) {
      if (!forked) return own;
      const scopes = new Map<string, Map<string, Entry>>();
      // The dead workers' totals first: the label sets that fit under the limit stay the same ones from scrape to scrape.
      for (const [scopeKey, metrics] of retired) {
        for (const entry of metrics.values()) {
          addMetric(scopes, scopeKey, { ...entry.metric, dataPoints: [...entry.points.values()] } as MetricData, undefined, interned, cardinalityLimit);
        }
      }
      addAll(scopes, own.scopeMetrics, 'primary', interned, false, cardinalityLimit);
      for (const [id, scopeMetrics] of live) addAll(scopes, scopeMetrics, String(id), interned, false, cardinalityLimit);
      if (interned.size > 100_000) interned.clear();
      return { resource: own.resource, scopeMetrics: toScopeMetrics(scopes) };
    },
    stop() {
      stopRequests();
      (c as unknown as NodeJS.EventEmitter).off('fork', listen);
      (c as unknown as NodeJS.EventEmitter).off('exit', onExit);
      for (const [worker, onMessage] of listening) worker.process.off('internalMessage', onMessage);
      listening.clear();
    },
  };
}

// Name, version and schema URL: meters that differ in any of them are different scopes.
function scopeKeyOf(s: ScopeMetrics['scope']): string {
  return `${s.name}\u0000${s.version ?? ''}\u0000${s.schemaUrl ?? ''}`;
}

function addAll(into: Map<string, Map<string, Entry>>, scopeMetrics: ScopeMetrics[], worker: string | undefined, interned: Map<string, Attributes>, onlyCumulative: boolean, limit: number): void {
  for (const sm of scopeMetrics) {
    const key = scopeKeyOf(sm.scope);
    for (const metric of sm.metrics) {
      // A dead worker's gauges and up-down counters describe a process that is gone: only monotonic data is kept.
      if (onlyCumulative && !(metric.dataPointType === HISTOGRAM || (metric.dataPointType === SUM && (metric as { isMonotonic?: boolean }).isMonotonic))) continue;
      addMetric(into, key, metric, worker, interned, limit);
    }
  }
}

function addMetric(into: Map<string, Map<string, Entry>>, scopeKey: string, metric: MetricData, worker: string | undefined, interned: Map<string, Attributes>, limit: number): void {
  let metrics = into.get(scopeKey);
  if (!metrics) into.set(scopeKey, (metrics = new Map()));
  let entry = metrics.get(metric.descriptor.name);
  if (!entry) metrics.set(metric.descriptor.name, (entry = { metric, points: new Map() }));
  if (entry.metric.dataPointType !== metric.dataPointType) return;
  const perProcess = metric.dataPointType === GAUGE;
  for (const point of metric.dataPoints as DataPoint<number | Histogram>[]) {
    const value = fromWire(point.value);
    if (value === undefined) continue;
    let attrs = point.attributes;
    if (perProcess && worker !== undefined) attrs = { ...attrs, worker };
    let key = attributesKey(attrs);
    // As in each process (exposition/cumulative-limit.ts): limit - 1 label sets, the rest summed into the overflow series.
    if (!perProcess && key !== OVERFLOW_KEY && !entry.points.has(key) && entry.points.size - (entry.points.has(OVERFLOW_KEY) ? 1 : 0) >= limit - 1) {
      attrs = OVERFLOW;
      key = OVERFLOW_KEY;
    }
    const existing = entry.points.get(key);
    if (existing === undefined || perProcess) {
      let shared = interned.get(key);
      if (!shared) interned.set(key, (shared = attrs));
      entry.points.set(key, { ...point, attributes: shared, value });
      continue;
    }
    const mergedValue = add(existing.value, value);
    if (mergedValue === undefined) continue; // histograms with different buckets cannot be summed; the first wins
    entry.points.set(key, { ...existing, startTime: earlier(existing.startTime, point.startTime), value: mergedValue });
  }
}

const OVERFLOW: Attributes = { [OVERFLOW_ATTRIBUTE]: true };

function attributesKey(attrs: Attributes): string {
  return JSON.stringify(Object.keys(attrs).sort().map((k) => [k, attrs[k]]));
}

const OVERFLOW_KEY = attributesKey(OVERFLOW);

// The IPC channel serializes as JSON by default, which turns NaN and ±Infinity into null (a CPU
// utilization over a window of 0 ms is 0/0, say): one null value failed the whole merged scrape.
// So they travel as strings, and the primary reads any value that is neither number nor histogram as none.
const wire = (x: number | undefined): number | string | undefined => (x === undefined || Number.isFinite(x) ? x : String(x));
const unwire = (x: unknown): number | undefined => (typeof x === 'string' ? Number(x) : (x as number | undefined));

/** In a worker: the data with every non-finite value as a string; points without one are sent as they are. */
export function toWire(scopeMetrics: ScopeMetrics[]): ScopeMetrics[] {
  const finite = (x: number | undefined): boolean => x === undefined || Number.isFinite(x);
  const point = (p: DataPoint<number | Histogram>): DataPoint<unknown> => {
    const v = p.value;
    if (typeof v === 'number') return Number.isFinite(v) ? p : { ...p, value: String(v) };
    if (finite(v.sum) && finite(v.min) && finite(v.max)) return p;
    return { ...p, value: { ...v, sum: wire(v.sum), min: wire(v.min), max: wire(v.max) } };
  };
  return scopeMetrics.map((sm) => ({ ...sm, metrics: sm.metrics.map((m) => ({ ...m, dataPoints: (m.dataPoints as DataPoint<number | Histogram>[]).map(point) }) as MetricData) }));
}

/** In the primary: a value as a worker (or this process) gave it, as a copy the merge may add to; undefined if it is none. */
export function fromWire(v: unknown): number | Histogram | undefined {
  if (typeof v === 'number' || typeof v === 'string') return unwire(v);
  const h = v as Histogram | null;
  if (typeof h !== 'object' || h === null || !Array.isArray(h.buckets?.counts)) return undefined;
  return { ...h, sum: unwire(h.sum), min: unwire(h.min), max: unwire(h.max), buckets: { boundaries: h.buckets.boundaries, counts: [...h.buckets.counts] } };
}

function add(a: number | Histogram, b: number | Histogram): number | Histogram | undefined {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (typeof a === 'number' || typeof b === 'number') return undefined;
  const ab = a.buckets.boundaries;
  const bb = b.buckets.boundaries;
  if (ab.length !== bb.length || ab.some((x, i) => x !== bb[i])) return undefined;
  const out: Histogram = {
    buckets: { boundaries: ab, counts: a.buckets.counts.map((c, i) => c + (b.buckets.counts[i] ?? 0)) },
    count: a.count + b.count,
  };
  if (a.sum !== undefined || b.sum !== undefined) out.sum = (a.sum ?? 0) + (b.sum ?? 0);
  if (a.min !== undefined && b.min !== undefined) out.min = Math.min(a.min, b.min);
  if (a.max !== undefined && b.max !== undefined) out.max = Math.max(a.max, b.max);
  return out;
}

function earlier(a: HrTime, b: HrTime): HrTime {
  return a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1]) ? a : b;
}

function toScopeMetrics(scopes: Map<string, Map<string, Entry>>): ScopeMetrics[] {
  const out: ScopeMetrics[] = [];
  for (const [key, metrics] of scopes) {
    const [name, version, schemaUrl] = key.split('\u0000') as [string, string, string];
    out.push({
      scope: { name, ...(version && { version }), ...(schemaUrl && { schemaUrl }) },
      metrics: [...metrics.values()].map((e) => ({ ...e.metric, dataPoints: [...e.points.values()] }) as MetricData),
    });
  }
  return out;
}
