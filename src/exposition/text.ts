// The text pieces of the exposition formats: label blocks, escaping and
// numbers as Prometheus and OpenMetrics spell them. Kept apart from the
// serializer so that the writers of other outputs (/probe, tests) share them.
import type { Attributes } from '@opentelemetry/api';
import { sanitizeLabelName } from './names';

const labelBlocks = new WeakMap<Attributes, string>();

/** `k="v",...` for an attribute set, without braces; '' when it has none. */
export function labelBlock(attrs: Attributes): string {
  let block = labelBlocks.get(attrs);
  if (block !== undefined) return block;
  block = fastLabelBlock(attrs) ?? foldedLabelBlock(attrs);
  labelBlocks.set(attrs, block);
  return block;
}

// The common case: no two keys fold onto one label name, so no sorting or joining is needed.
// `reserved`: label names the exposition sets itself (`le`, `otel_scope_name`);
// an attribute mapping onto one gets a `key_` prefix, as a leading digit does.
export function fastLabelBlock(attrs: Attributes, reserved?: ReadonlySet<string>): string | undefined {
  let block = '';
  const seen: string[] = [];
  for (const key in attrs) {
    const value = attrs[key];
    if (value === undefined || value === null) continue;
    const label = reservedLabel(sanitizeLabelName(key), reserved);
    if (seen.includes(label)) return undefined;
    seen.push(label);
    const text = typeof value === 'string' ? value : Array.isArray(value) ? JSON.stringify(value) : String(value);
    block += `${block === '' ? '' : ','}${label}="${escapeLabelValue(text)}"`;
  }
  return block;
}

export function foldedLabelBlock(attrs: Attributes, reserved?: ReadonlySet<string>): string {
  const byLabel = new Map<string, string[]>();
  // Sorted so that keys which fold onto one label name join their values in a stable order, as the spec asks.
  for (const key of Object.keys(attrs).sort()) {
    const value = attrs[key];
    if (value === undefined || value === null) continue;
    const label = reservedLabel(sanitizeLabelName(key), reserved);
    const text = Array.isArray(value) ? JSON.stringify(value) : String(value);
    const list = byLabel.get(label);
    if (list) list.push(text);
    else byLabel.set(label, [text]);
  }
  let block = '';
  for (const [label, values] of byLabel) {
    block += `${block === '' ? '' : ','}${label}="${escapeLabelValue(values.join(';'))}"`;
  }
  return block;
}

function reservedLabel(label: string, reserved: ReadonlySet<string> | undefined): string {
  return reserved?.has(label) ? `key_${label}` : label;
}

const LABEL_SPECIAL = /[\\"\n]/;
export function escapeLabelValue(value: string): string {
  if (!LABEL_SPECIAL.test(value)) return value;
  return value.replace(/[\\"\n]/g, (c) => (c === '\\' ? '\\\\' : c === '"' ? '\\"' : '\\n'));
}

export function escapeHelp(text: string, om: boolean): string {
  // Text 0.0.4 escapes backslash and newline in HELP; OpenMetrics escapes double quotes too.
  return text.replace(om ? /[\\"\n]/g : /[\\\n]/g, (c) => (c === '\\' ? '\\\\' : c === '"' ? '\\"' : '\\n'));
}

/**
 * A bucket bound or quantile as the Go client writes label values (`strconv.FormatFloat(v, 'g', -1,
 * 64)`), the Python client too: exponent form from 1e6 up and below 1e-4, with at least two exponent
 * digits (`1e+06`, `1.048576e+06`, `1e-05`). Prometheus 2 keeps `le` as sent, so the same bound spelled
 * otherwise would be another series than the one a Go or Python service's rules and dashboards name.
 */
export function formatBound(value: number): string {
  if (!Number.isFinite(value) || value === 0) return formatNumber(value);
  const [mantissa, exponent] = value.toExponential().split('e') as [string, string];
  const exp = Number(exponent);
  if (exp >= -4 && exp < 6) return String(value);
  return `${mantissa}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}

export function formatNumber(value: number): string {
  if (Number.isFinite(value)) return String(value);
  if (Number.isNaN(value)) return 'NaN';
  return value > 0 ? '+Inf' : '-Inf';
}
