// Typed reads of a parsed YAML document for config.ts. Each records a
// problem located by line (`file:line: field: message`) and returns a
// fallback, so that validation goes on and reports every problem at once.
import { isMap, isScalar, isSeq, type LineCounter, type Node, type YAMLMap } from 'yaml';

export interface Ctx {
  file: string;
  lc: LineCounter;
  problems: string[];
}

export function fail(ctx: Ctx, node: unknown, field: string, message: string): void {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  const line = range ? ctx.lc.linePos(range[0]).line : 1;
  ctx.problems.push(`${ctx.file}:${line}: ${field}: ${message}`);
}

// The key of each value entries() returned, so that a problem with a key (a bad label name) names its line.
const keys = new WeakMap<object, Node>();

/** The key node of a value read by entries(), when it has one. */
export function keyOf(value: Node): Node | undefined {
  return keys.get(value);
}

export function entries(ctx: Ctx, node: unknown, field: string, known: string[] | undefined): Map<string, Node> | undefined {
  if (!isMap(node)) {
    fail(ctx, node, field, `must be a mapping (key: value lines), not ${describe(node)}`);
    return undefined;
  }
  const out = new Map<string, Node>();
  // `<<: *defaults` (or a list of them): the mappings' entries, where this one does not give its own.
  const merged: Array<YAMLMap['items'][number]> = [];
  const take = (pair: YAMLMap['items'][number], fromMerge: boolean): void => {
    const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
    if (key === undefined) return fail(ctx, pair.key, field, 'has a key that is not plain text');
    if (key === '<<' && !fromMerge && isScalar(pair.key) && pair.key.type === 'PLAIN') {
      for (const source of isSeq(pair.value) ? pair.value.items : [pair.value]) {
        if (isMap(source)) merged.push(...source.items);
        else fail(ctx, source ?? pair.key, field, `<< must name a mapping (<<: *anchor), not ${describe(source)}`);
      }
      return;
    }
    if (fromMerge && out.has(key)) return;
    if (known && !known.includes(key)) {
      return fail(ctx, pair.key, field === '(top level)' ? key : `${field}.${key}`, `is not a known field: use one of ${known.join(', ')}`);
    }
    const value = (pair.value ?? pair.key) as Node;
    if (value !== null && typeof value === 'object' && !keys.has(value)) keys.set(value, pair.key as Node);
    out.set(key, value);
  };
  for (const pair of node.items) take(pair, false);
  for (const pair of merged) take(pair, true);
  return out;
}

export function seq(ctx: Ctx, node: Node, field: string): Array<[number, Node]> {
  if (!isSeq(node)) {
    fail(ctx, node, field, `must be a list (lines starting with -), not ${describe(node)}`);
    return [];
  }
  return node.items.map((item, i) => [i, item as Node]);
}

function scalar(node: unknown): unknown {
  return isScalar(node) ? node.value : undefined;
}

export function str(ctx: Ctx, node: Node, field: string): string | undefined {
  const v = scalar(node);
  if (typeof v === 'string') return v;
  // Text as the file wrote it: a label value `1.10`, a build `007`, a target named `0x10` (not 16, which
  // another target may be called) stay as they are, as Prometheus keeps them in its own config.
  if (typeof v === 'number' || typeof v === 'boolean') return (node as { source?: string }).source ?? String(v);
  fail(ctx, node, field, `must be text, not ${describe(node)}`);
  return undefined;
}

export function bool(ctx: Ctx, node: Node, field: string, fallback: boolean): boolean {
  const v = scalar(node);
  if (typeof v === 'boolean') return v;
  fail(ctx, node, field, `${JSON.stringify(v ?? describe(node))} must be true or false`);
  return fallback;
}

export function int(ctx: Ctx, node: Node, field: string, min: number, max: number, fallback: number): number {
  const v = scalar(node);
  if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
  fail(ctx, node, field, `${JSON.stringify(v ?? describe(node))} must be a whole number from ${min} to ${max}`);
  return fallback;
}

export function duration(ctx: Ctx, node: Node, field: string, fallback: number): number {
  const v = scalar(node);
  const ms = parseDuration(v);
  if (ms !== undefined) return ms;
  fail(ctx, node, field, `${JSON.stringify(v ?? describe(node))} ${durationProblem(v)}`);
  return fallback;
}

/** Why `v` is no usable duration (for a value parseDuration refused). */
export function durationProblem(v: unknown): string {
  return parse(v) !== undefined ? 'is longer than 596h, the longest a timer can wait: give a shorter duration' : 'is not a duration: write it like 500ms, 15s, 1m or 1m30s';
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

// The longest a Node.js timer can wait; a longer one would fire at once, every time.
const MAX_MS = 2 ** 31 - 1;

/** `1m30s`, `500ms`, `15s`, or a bare number of seconds, up to 596h; undefined when it is none of these. */
export function parseDuration(v: unknown): number | undefined {
  const ms = parse(v);
  return ms !== undefined && ms <= MAX_MS ? ms : undefined;
}

function parse(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : undefined;
  if (typeof v !== 'string' || !/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(v.trim())) return undefined;
  let total = 0;
  for (const [, n, unit] of v.trim().matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(n) * UNIT_MS[unit!]!;
  return Math.round(total);
}

function describe(node: unknown): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  const v = scalar(node);
  return v === null || v === undefined ? 'nothing' : JSON.stringify(v);
}
