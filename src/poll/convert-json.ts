// Maps a JSON body to gauges and counters with the selectors of the module's
// `metrics:` list (syntax in selector.ts). For each metric, `each` (optional)
// picks the elements, `value` the number inside each, and `labels` the label
// values inside each. A value may be a JSON number, a numeric string ("42.5")
// or a boolean (1/0); anything else is an error of the poll, counted and
// skipped, never thrown:
//   missing_field   the value or a label is absent (or null)
//   invalid_number  the value is text that is not a number, or an object/list
//   type_changed    the value's JSON type differs from the previous poll's
//   invalid_json    the body is not JSON at all (the probe fails)
//
// Like the Prometheus text, a big body is converted in slices (see pace.ts):
// a 10 MB list of 300,000 elements takes seconds, which would hold up every
// other probe and scrape, and a /probe past its scraper's timeout.
import type { JsonMetric } from './config';
import { relabel, type ConvertError, type Family, type Series } from './families';
import { pace } from './pace';
import { select } from './selector';

/** `deadline`: performance.now() ms by which the conversion must be done; past it, rejects with PastDeadline. */
export async function convertJson(
  body: string,
  metrics: JsonMetric[],
  extra: Record<string, string>,
  types: Map<string, string>,
  deadline?: number,
): Promise<{ families: Family[]; errors: ConvertError[]; failed?: string }> {
  const pacer = pace(deadline);
  let root: unknown;
  try {
    root = JSON.parse(body);
  } catch (err) {
    return { families: [], errors: [], failed: `the body is not JSON (${(err as Error).message})` };
  }
  const errors: ConvertError[] = [];
  const families: Family[] = [];
  // Per series (metric and element key), against the previous poll only: elements of one list
  // may differ from each other without a change, and keys that went away are forgotten. The memory
  // is replaced at the end, in one step: a /probe of the same target may be converting meanwhile.
  const previous = new Map(types);
  const seenTypes = new Map<string, string>();
  // Per metric name, not per entry: two entries of one name make one family, and must not give one series twice.
  const seenByName = new Map<string, Map<string, { series: Series[]; index: number }>>();
  for (const [index, metric] of metrics.entries()) {
    const series: Series[] = [];
    let seen = seenByName.get(metric.name);
    if (seen === undefined) seenByName.set(metric.name, (seen = new Map()));
    const elements = metric.each ? select(metric.each, root) : [{ value: root, key: '' }];
    if (metric.each && elements.length === 0) errors.push({ reason: 'missing_field', message: `${metric.name}: each ${metric.each.source} matched nothing` });
    for (const el of elements) {
      if (pacer.due()) await pacer.yield();
      const found = select(metric.value, el.value, el.key)[0]?.value;
      const type = jsonType(found);
      // By position in the module: two metrics may share a name (one family, told apart by labels).
      const id = `${index}\u0000${el.key}`;
      const before = previous.get(id);
      if (type !== 'missing') seenTypes.set(id, type);
      const where = `${metric.name}: ${metric.value.source}${el.key !== '' ? ` of element ${JSON.stringify(el.key)}` : ''}`;
      if (type === 'missing') {
        errors.push({ reason: 'missing_field', message: `${where} is missing` });
        continue;
      }
      const changed = before !== undefined && before !== type;
      if (changed) errors.push({ reason: 'type_changed', message: `${where} was a ${before} and is now a ${type} (${clip(found)})` });
      const value = toNumber(found);
      if (value === undefined) {
        if (!changed) errors.push({ reason: 'invalid_number', message: `${where} is ${clip(found)}, not a number` });
        continue;
      }
      const labels: Record<string, string> = {};
      let complete = true;
      for (const [name, sel] of metric.labels) {
        const v = select(sel, el.value, el.key)[0]?.value;
        if (v === undefined || v === null) {
          errors.push({ reason: 'missing_field', message: `${metric.name}: label ${name} (${sel.source}) is missing` });
          complete = false;
          break;
        }
        labels[name] = typeof v === 'string' ? v : JSON.stringify(v);
      }
      if (!complete) continue;
      const key = JSON.stringify(labels);
      // A label of the JSON's named like one of the target's moves to exported_<name>, as when re-exposing.
      const s: Series = { labels: relabel(labels, extra), value };
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        errors.push({ reason: 'duplicate_series', message: `${metric.name}: two elements give the labels ${key}; add a label that tells them apart (such as @key)` });
        earlier.series[earlier.index] = s;
        continue;
      }
      seen.set(key, { series, index: series.length });
      series.push(s);
    }
    families.push({ name: metric.name, kind: metric.type, help: metric.help, unit: '', series });
  }
  types.clear();
  for (const [id, type] of seenTypes) types.set(id, type);
  return { families, errors };
}

function jsonType(v: unknown): string {
  if (v === undefined || v === null) return 'missing';
  if (Array.isArray(v)) return 'list';
  return typeof v === 'object' ? 'object' : typeof v;
}

function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string' && /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(v)) return Number(v);
  return undefined;
}

function clip(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
