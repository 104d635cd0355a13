// The label block of each series as bytes, encoded once and found again on
// every later scrape. sdk-metrics keeps the attributes object of a series for
// its life (a cumulative series keeps the object it was first recorded with)
// and collects the series of a metric in the same order each time. So the
// block of a point is looked for where it was in the last scrape of that
// metric, by identity; only when a series has moved (an observable callback
// that reports in another order) are the last scrape's blocks put in a map by
// object, for that metric and that scrape. A WeakMap of every block ever
// encoded cost a fifth of a warm scrape in lookups and a quarter of a cold
// one in insertions and GC.
//
// An observable instrument's points carry the object its callback passed, and
// a callback may pass the same object every time with other values in it: for
// those, a block found by identity is used only if the values are still the
// ones it was encoded from.
import type { Attributes } from '@opentelemetry/api';
import type { MetricData } from '@opentelemetry/sdk-metrics';
import { sanitizeLabelName } from './names';
import { escapeLabelValue, fastLabelBlock, foldedLabelBlock } from './text';

export const OVERFLOW_ATTRIBUTE = 'otel.metric.overflow';

/**
 * `otel_scope_name="..",otel_scope_version=".."`, interned so that label
 * entries can tell their scope by identity. It also holds the last scrape's
 * points of each metric of the scope.
 */
export interface ScopeLabels {
  text: string;
  /** By instrument (name, point type, unit, value type): the attributes objects of the last scrape, in order, and their entries. */
  seen: Map<string, Seen>;
}

interface Seen {
  attrs: Attributes[];
  entries: LabelEntry[];
  /** The last scrape's blocks by object, made on this scrape's first point found away from its last place. */
  moved: Map<Attributes, LabelEntry> | undefined;
  /** An observable instrument's: its callbacks' objects, which they may fill anew for each collection. */
  mutable: boolean;
}

/**
 * Labels no attribute may take, by kind: the scope's on every series, and
 * `le` on histogram buckets, `quantile` on summary quantiles (a repeated
 * label fails the whole scrape in Prometheus). A gauge the sidecar re-exposes
 * from a gauge histogram keeps its `le`.
 */
const SCOPE_LABELS = ['otel_scope_name', 'otel_scope_version', 'otel_scope_schema_url'];
export const RESERVED_PLAIN: ReadonlySet<string> = new Set(SCOPE_LABELS);
export const RESERVED_HISTOGRAM: ReadonlySet<string> = new Set([...SCOPE_LABELS, 'le']);
export const RESERVED_SUMMARY: ReadonlySet<string> = new Set([...SCOPE_LABELS, 'quantile']);
const ALL_RESERVED: ReadonlySet<string> = new Set([...SCOPE_LABELS, 'le', 'quantile']);
// One pass over a block rules out any reserved label, as nearly always; a match may also be the end of
// a value (`k="a,le="`), so the attributes' keys decide.
const ANY_RESERVED = new RegExp(`(?:^|,)(?:${[...ALL_RESERVED].join('|')})="`);

/** The encoded label block of one attribute set in one scope: `k="v",...,otel_scope_name="..."`. */
export interface LabelEntry {
  scope: ScopeLabels;
  /**
   * The reserved set it was encoded for, when its attributes hold any reserved
   * label (then a histogram and a counter sharing the object need their own
   * encodings); undefined when they hold none, as nearly always: valid for every kind.
   */
  reserved: ReadonlySet<string> | undefined;
  bytes: Uint8Array;
  overflow: boolean;
  /** For a mutable object (see Seen): a copy of the attributes the block was encoded from. */
  values: Attributes | undefined;
}

const scopes = new Map<string, ScopeLabels>();

export function scopeLabels(scope: { name: string; version?: string; schemaUrl?: string }): ScopeLabels {
  let text = `otel_scope_name="${escapeLabelValue(scope.name)}"`;
  if (scope.version) text += `,otel_scope_version="${escapeLabelValue(scope.version)}"`;
  // As the Go SDK and the Collector write it: meters that differ only by schema URL are two scopes, and their series must differ.
  if (scope.schemaUrl) text += `,otel_scope_schema_url="${escapeLabelValue(scope.schemaUrl)}"`;
  let labels = scopes.get(text);
  if (labels === undefined) {
    if (scopes.size >= 10_000) scopes.clear();
    labels = { text, seen: new Map() };
    scopes.set(text, labels);
  }
  return labels;
}

/** The last scrape's points of a metric, to be passed to labelEntry() with each point's index, then to forgetBeyond(). */
export function seenPoints(scope: ScopeLabels, metric: MetricData): Seen {
  // sdk-metrics keeps two instruments of one name apart when their kind, unit or value type differ (after a
  // duplicate-registration warning): by name alone they would take each other's places and be encoded
  // again on every scrape.
  const { name, unit, valueType } = metric.descriptor;
  const key = `${name}\0${metric.dataPointType}\0${unit}\0${valueType}`;
  let seen = scope.seen.get(key);
  if (seen === undefined) {
    seen = { attrs: [], entries: [], moved: undefined, mutable: (metric.descriptor as { type?: string }).type?.startsWith('OBSERVABLE') === true };
    scope.seen.set(key, seen);
  }
  return seen;
}

/** Drops what the last scrape had past `count` points, so that gone series are not kept alive. */
export function forgetBeyond(seen: Seen, count: number): void {
  seen.moved = undefined;
  if (seen.attrs.length > count) {
    seen.attrs.length = count;
    seen.entries.length = count;
  }
}

/**
 * The label block of the point at `index`, scope labels included, as bytes;
 * encoded on first sight of the attributes object. An attribute that maps
 * onto a reserved label (`otel_scope_name`, `le`, ...) is renamed `key_...`.
 */
export function labelEntry(attrs: Attributes, scope: ScopeLabels, reserved: ReadonlySet<string>, seen: Seen, index: number, metric: MetricData, onProblem: ((key: string, message: string) => void) | undefined): LabelEntry {
  const last = seen.attrs[index];
  let entry = last === attrs ? seen.entries[index] : undefined;
  if (fits(entry, scope, reserved, attrs)) return entry;
  // Another series stood here: the places from here on still hold the last scrape's points, those before it are unchanged.
  if (last !== undefined && seen.moved === undefined) seen.moved = new Map(seen.attrs.map((a, i) => [a, seen.entries[i]!]));
  entry = seen.moved?.get(attrs);
  if (!fits(entry, scope, reserved, attrs)) entry = encode(attrs, scope, reserved, metric, onProblem, seen.mutable && !Object.isFrozen(attrs));
  seen.attrs[index] = attrs;
  seen.entries[index] = entry;
  return entry;
}

/**
 * Whether an entry was encoded for this scope, for this kind's reserved labels if its attributes touch
 * any, and, for a mutable object, from the values it holds now.
 */
function fits(entry: LabelEntry | undefined, scope: ScopeLabels, reserved: ReadonlySet<string>, attrs: Attributes): entry is LabelEntry {
  return entry !== undefined && entry.scope === scope && (entry.reserved === undefined || entry.reserved === reserved) && (entry.values === undefined || sameValues(entry.values, attrs));
}

/** Shallow: an array value is never the same, since it may have been filled anew too. */
function sameValues(values: Attributes, attrs: Attributes): boolean {
  let n = 0;
  for (const key in attrs) {
    const v = attrs[key];
    if (v !== values[key] || (typeof v === 'object' && v !== null)) return false;
    n++;
  }
  return n === Object.keys(values).length;
}

function encode(attrs: Attributes, scope: ScopeLabels, reserved: ReadonlySet<string>, metric: MetricData, onProblem: ((key: string, message: string) => void) | undefined, mutable: boolean): LabelEntry {
  let own = fastLabelBlock(attrs) ?? foldedLabelBlock(attrs);
  const labels = ANY_RESERVED.test(own) ? labelNames(attrs) : [];
  const touched = labels.some((label) => ALL_RESERVED.has(label));
  const clashing = touched ? [...reserved].filter((label) => labels.includes(label)) : [];
  if (clashing.length > 0) {
    own = fastLabelBlock(attrs, reserved) ?? foldedLabelBlock(attrs, reserved);
    onProblem?.(`reserved:${metric.descriptor.name}:${clashing.join(',')}`, `metric ${metric.descriptor.name} has attributes that map to ${clashing.join(', ')}, labels the exposition sets itself on such series; they are exposed as ${clashing.map((l) => `key_${l}`).join(', ')}: rename the attributes`);
  }
  const bytes = Buffer.from(own === '' ? scope.text : `${own},${scope.text}`, 'utf8');
  return { scope, reserved: touched ? reserved : undefined, bytes, overflow: attrs[OVERFLOW_ATTRIBUTE] === true, values: mutable ? { ...attrs } : undefined };
}

/** The label names the attributes become, as the block builders skip and sanitize them. */
function labelNames(attrs: Attributes): string[] {
  return Object.keys(attrs).filter((key) => attrs[key] != null).map(sanitizeLabelName);
}
