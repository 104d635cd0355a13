// The JSON selector syntax, a small subset of JSONPath:
//
//   $              the document (inside `each`: the element being read)
//   .name          a field (letters, digits, _ and -)
//   ["any key"]    a field whose name has other characters
//   [3]            an array element, counted from 0
//   [*]  or  .*    every element of an array, or every value of an object
//   @key           (alone) the field name or index the last * of `each` stood for
//
// It is compiled once at config load, so a typo is a config error with a line
// number, not a failure at every poll.

type Step = { kind: 'field'; name: string } | { kind: 'index'; index: number } | { kind: 'all' };

export interface Selector {
  source: string;
  steps: Step[];
  /** `@key`: the key of the element, not a value inside it. */
  key: boolean;
}

export interface Match {
  value: unknown;
  /** Key or index of the element the last `*` stood for, '' when none. */
  key: string;
}

export function compileSelector(source: string): Selector {
  const s = source.trim();
  if (s === '@key') return { source: s, steps: [], key: true };
  if (!s.startsWith('$')) throw new Error('does not start with $: write selectors like $.field, $.list[*].field or @key');
  const steps: Step[] = [];
  let i = 1;
  while (i < s.length) {
    const rest = s.slice(i);
    let m: RegExpExecArray | null;
    if ((m = /^\.([A-Za-z0-9_-]+)/.exec(rest))) steps.push({ kind: 'field', name: m[1]! });
    else if ((m = /^(\.\*|\[\*\])/.exec(rest))) steps.push({ kind: 'all' });
    else if ((m = /^\[(\d+)\]/.exec(rest))) steps.push({ kind: 'index', index: Number(m[1]) });
    else if ((m = /^\[("(?:[^"\\]|\\.)*")\]/.exec(rest))) steps.push({ kind: 'field', name: JSON.parse(m[1]!) as string });
    else throw new Error(`cannot be read at ${JSON.stringify(rest)} (position ${i + 1}): use .name, ["name"], [N] or [*]`);
    i += m[0].length;
  }
  return { source: s, steps, key: false };
}

/** Every value the selector reaches from `root`; `key` is inherited from the element for `@key`. */
export function select(selector: Selector, root: unknown, key = ''): Match[] {
  if (selector.key) return [{ value: key, key }];
  let current: Match[] = [{ value: root, key }];
  for (const step of selector.steps) {
    const next: Match[] = [];
    for (const { value, key: k } of current) {
      if (value === null || typeof value !== 'object') continue;
      if (step.kind === 'field') {
        if (!Array.isArray(value) && Object.prototype.hasOwnProperty.call(value, step.name)) next.push({ value: (value as Record<string, unknown>)[step.name], key: k });
      } else if (step.kind === 'index') {
        if (Array.isArray(value) && step.index < value.length) next.push({ value: value[step.index], key: k });
      } else if (Array.isArray(value)) {
        value.forEach((v, idx) => next.push({ value: v, key: String(idx) }));
      } else {
        for (const [name, v] of Object.entries(value)) next.push({ value: v, key: name });
      }
    }
    current = next;
  }
  return current;
}
