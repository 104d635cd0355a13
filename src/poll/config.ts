// The sidecar's configuration: a YAML file, validated in full before anything
// runs. Every problem is reported at once, each as `file:line: field: what is
// wrong; the fix`, so one run of `promotel poll --check` finds them all.
import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Node } from 'yaml';
import { bool, duration, entries, fail, int, keyOf, seq, str, type Ctx } from './yaml';

export { durationProblem, parseDuration } from './yaml';
import { compileSelector, type Selector } from './selector';
import { compilePattern, type UrlPattern } from './allow';

export type Format = 'none' | 'json' | 'prometheus';

export interface JsonMetric {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  each: Selector | undefined;
  value: Selector;
  labels: Array<[string, Selector]>;
}

export interface Module {
  name: string;
  format: Format;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
  /** Exact codes; empty means any 2xx. */
  validStatusCodes: number[];
  followRedirects: boolean;
  maxRedirects: number;
  timeoutMs: number | undefined;
  maxBodyBytes: number;
  tls: { ca: string | undefined; insecureSkipVerify: boolean; serverName: string | undefined };
  metrics: JsonMetric[];
}

export interface Target {
  name: string;
  url: string;
  module: string;
  job: string;
  labels: Record<string, string>;
  intervalMs: number;
  timeoutMs: number;
  /**
   * Set for a URL given to /probe?target=URL rather than a configured target: the allow: pattern
   * it matched. Its redirects must match allow: too, and promotel's own metrics of the poll are
   * labelled with the pattern, not the URL, so that callers cannot grow their series.
   */
  adHoc?: string;
}

export interface PollConfig {
  file: string | undefined;
  intervalMs: number;
  timeoutMs: number;
  /** Random delay added to each poll; -1 (not set) means a tenth of each target's own interval. */
  jitterMs: number;
  concurrency: number;
  allow: UrlPattern[];
  modules: Map<string, Module>;
  targets: Target[];
}

export const DEFAULT_INTERVAL_MS = 15_000;
export const DEFAULT_TIMEOUT_MS = 5_000;
export const DEFAULT_CONCURRENCY = 8;
const DEFAULT_MAX_BODY = 10 * 1024 * 1024;

export function defaultModule(name: string, format: Format): Module {
  return {
    name, format, method: 'GET', headers: {}, body: undefined, validStatusCodes: [], followRedirects: true, maxRedirects: 10,
    timeoutMs: undefined, maxBodyBytes: DEFAULT_MAX_BODY, tls: { ca: undefined, insecureSkipVerify: false, serverName: undefined }, metrics: [],
  };
}

/** Modules every config has; a config may redefine them. */
export function builtinModules(): Map<string, Module> {
  return new Map([
    ['http', defaultModule('http', 'none')],
    ['prometheus', defaultModule('prometheus', 'prometheus')],
  ]);
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

/** What the command line sets: it wins over the file's top-level keys, and its targets join the file's. */
export interface Flags {
  intervalMs?: number;
  timeoutMs?: number;
  jitterMs?: number;
  concurrency?: number;
  allow?: string[];
  targets?: string[];
  module?: string;
}

/** Reads and validates a file; throws ConfigError listing every problem. */
export function loadConfig(file: string, flags: Flags = {}): PollConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`${file}: cannot read the config file (${(err as NodeJS.ErrnoException).code ?? String(err)}): check the path given to --config`]);
  }
  return parseConfig(text, file, flags);
}

const MODULE_KEYS = ['format', 'method', 'headers', 'body', 'valid_status_codes', 'follow_redirects', 'max_redirects', 'timeout', 'max_body_size', 'tls', 'metrics'];
const TARGET_KEYS = ['name', 'url', 'module', 'job', 'labels', 'interval', 'timeout'];
const TOP_KEYS = ['interval', 'timeout', 'jitter', 'concurrency', 'allow', 'modules', 'targets'];
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
// Labels promotel sets itself (target, job; the scope's on every series; le and quantile on buckets and quantiles).
const TAKEN_LABELS = new Set(['target', 'job', 'otel_scope_name', 'otel_scope_version', 'otel_scope_schema_url', 'le', 'quantile']);

/** Why `k` cannot be a configured label name, or undefined when it can. */
function labelNameProblem(k: string): string | undefined {
  if (!LABEL_NAME.test(k) || k.startsWith('__')) return 'is not a usable label name: use letters, digits and _, not starting with __';
  if (TAKEN_LABELS.has(k)) return `is a label promotel sets itself: use another name (not ${[...TAKEN_LABELS].join(', ')})`;
  return undefined;
}
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
// Aliases (*name) followed in one config at most.
const MAX_ALIASES = 10_000;

/** The key a DUPLICATE_KEY error points at: the text from its offset up to the colon. */
function duplicateKey(text: string, offset: number): string | undefined {
  const key = /^\s*("[^"]*"|'[^']*'|[^:\n]+?)\s*:/.exec(text.slice(offset))?.[1];
  return key?.replace(/^["']|["']$/g, '');
}

export function parseConfig(text: string, file = '<config>', flags: Flags = {}): PollConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  const ctx: Ctx = { file, lc, problems: [] };
  for (const e of doc.errors) {
    const line = e.linePos?.[0].line ?? 1;
    const message = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    const key = e.code === 'DUPLICATE_KEY' ? duplicateKey(text, e.pos[0]) : undefined;
    ctx.problems.push(`${file}:${line}: YAML syntax: ${key !== undefined ? `${key} is given twice in one map: keep one of them` : message}`);
  }
  // A duplicate key leaves a readable document (the last value wins): go on, so that one run lists every problem.
  if (doc.errors.some((e) => e.code !== 'DUPLICATE_KEY')) throw new ConfigError(ctx.problems);
  // Anchors and aliases (`labels: *common`), as any YAML reader takes them: each alias stands for the
  // node it names, shared, not copied. Each mapping or list is visited once, so that one that holds an
  // alias to itself, or aliases of aliases many levels deep, cost no more than the file's size. Anchors
  // are looked up as the walk meets them, in document order, which is YAML's rule for a name anchored
  // twice (Alias.resolve would walk the whole document again for each alias).
  let aliases = 0;
  const visited = new Set<unknown>();
  const anchored = new Map<string, Node>();
  const anchor = (node: Node): void => void (node.anchor && anchored.set(node.anchor, node));
  visit(doc, {
    Collection(_key, node) {
      if (visited.has(node)) return visit.SKIP;
      visited.add(node);
      anchor(node);
      return undefined;
    },
    Scalar: (_key, node) => anchor(node),
    Alias(_key, alias) {
      if (++aliases > MAX_ALIASES) {
        ctx.problems.push(`${file}:1: YAML: more than ${MAX_ALIASES} aliases (*name): write some of those parts out`);
        return visit.BREAK;
      }
      return anchored.get(alias.source) ?? visit.REMOVE;
    },
  });
  if (aliases > MAX_ALIASES) throw new ConfigError(ctx.problems);

  const config: PollConfig = {
    file, intervalMs: DEFAULT_INTERVAL_MS, timeoutMs: DEFAULT_TIMEOUT_MS, jitterMs: -1, concurrency: DEFAULT_CONCURRENCY,
    allow: [], modules: builtinModules(), targets: [],
  };
  const root = doc.contents as Node | null;
  if ((root === null || (isScalar(root) && root.value === null)) && (flags.targets ?? []).length > 0) return parseConfig('targets: []', file, flags);
  if (root === null || (isScalar(root) && root.value === null)) {
    throw new ConfigError([`${file}:1: the file is empty: it needs at least a targets: list (see examples/promotel.yaml)`]);
  }
  const top = entries(ctx, root, '(top level)', TOP_KEYS);
  if (!top) throw new ConfigError(ctx.problems);

  const d = (key: string, fallback: number): number => (top.has(key) ? duration(ctx, top.get(key)!, key, fallback) : fallback);
  config.intervalMs = d('interval', DEFAULT_INTERVAL_MS);
  config.timeoutMs = d('timeout', DEFAULT_TIMEOUT_MS);
  if (config.timeoutMs === 0) fail(ctx, top.get('timeout')!, 'timeout', 'must be above 0: give a duration such as 5s');
  if (top.has('jitter')) config.jitterMs = duration(ctx, top.get('jitter')!, 'jitter', 0);
  if (top.has('concurrency')) config.concurrency = int(ctx, top.get('concurrency')!, 'concurrency', 1, 1000, DEFAULT_CONCURRENCY);
  if (flags.intervalMs !== undefined) config.intervalMs = flags.intervalMs;
  if (flags.timeoutMs !== undefined) config.timeoutMs = flags.timeoutMs;
  if (flags.jitterMs !== undefined) config.jitterMs = flags.jitterMs;
  if (flags.concurrency !== undefined) config.concurrency = flags.concurrency;
  for (const s of flags.allow ?? []) {
    try {
      config.allow.push(compilePattern(s));
    } catch (err) {
      ctx.problems.push(`--allow ${JSON.stringify(s)}: ${(err as Error).message}`);
    }
  }

  const allow = top.get('allow');
  if (allow) {
    for (const [i, item] of seq(ctx, allow, 'allow')) {
      const s = str(ctx, item, `allow[${i}]`);
      if (s === undefined) continue;
      try {
        config.allow.push(compilePattern(s));
      } catch (err) {
        fail(ctx, item, `allow[${i}]`, `${JSON.stringify(s)} ${(err as Error).message}`);
      }
    }
  }

  const modules = top.get('modules');
  if (modules) {
    const m = entries(ctx, modules, 'modules', undefined);
    for (const [name, node] of m ?? []) config.modules.set(name, readModule(ctx, node, name));
  }

  const targets = top.get('targets');
  for (const raw of flags.targets ?? []) {
    const problem = checkUrl(raw);
    const module = flags.module ?? 'http';
    if (problem) ctx.problems.push(`--target ${JSON.stringify(raw)}: ${problem}`);
    else if (!config.modules.has(module)) ctx.problems.push(`--module ${JSON.stringify(module)}: not defined: use one of ${[...config.modules.keys()].join(', ')}`);
    else {
      const url = new URL(raw).href;
      config.targets.push({ name: url, url, module, job: url, labels: {}, intervalMs: config.intervalMs, timeoutMs: config.modules.get(module)!.timeoutMs ?? config.timeoutMs });
    }
  }
  if (!targets && (flags.targets ?? []).length === 0) fail(ctx, root, 'targets', 'is missing: list what to poll, e.g. targets: [{ name: demo, url: http://localhost:8080/q }]');
  else if (targets) {
    const names = new Set<string>(config.targets.map((t) => t.name));
    for (const [i, item] of seq(ctx, targets, 'targets')) {
      // Checked apart from readTarget, so that a target with other problems still claims its name.
      const name = isMap(item) ? item.get('name') : undefined;
      if (typeof name === 'string' && names.has(name)) fail(ctx, item, `targets[${i}].name`, `${JSON.stringify(name)} is used by an earlier target: target names must be unique`);
      if (typeof name === 'string') names.add(name);
      const t = readTarget(ctx, item, `targets[${i}]`, config);
      if (t) config.targets.push(t);
    }
  }
  if (ctx.problems.length > 0) throw new ConfigError(byLine(ctx.problems));
  return config;
}

function readModule(ctx: Ctx, node: Node, name: string): Module {
  const f = `modules.${name}`;
  const mod = defaultModule(name, 'none');
  const m = entries(ctx, node, f, MODULE_KEYS);
  if (!m) return mod;
  const format = m.get('format');
  if (format) {
    const v = str(ctx, format, `${f}.format`);
    if (v === 'none' || v === 'json' || v === 'prometheus') mod.format = v;
    else if (v !== undefined) fail(ctx, format, `${f}.format`, `${JSON.stringify(v)} is not a format: use none, json or prometheus`);
  }
  if (m.has('method')) {
    const v = str(ctx, m.get('method')!, `${f}.method`);
    if (v !== undefined && /^[A-Z]+$/.test(v)) mod.method = v;
    else if (v !== undefined) fail(ctx, m.get('method')!, `${f}.method`, `${JSON.stringify(v)} is not an HTTP method: use GET, HEAD, POST...`);
  }
  if (m.has('headers')) {
    for (const [k, v] of entries(ctx, m.get('headers')!, `${f}.headers`, undefined) ?? []) {
      const s = str(ctx, v, `${f}.headers.${k}`);
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(k)) fail(ctx, keyOf(v) ?? v, `${f}.headers.${k}`, 'is not an HTTP header name: use letters, digits and - (no spaces)');
      else if (s !== undefined && /[\r\n]/.test(s)) fail(ctx, v, `${f}.headers.${k}`, 'has a line break: header values are one line');
      else if (s !== undefined) mod.headers[k] = s;
    }
  }
  if (m.has('body')) mod.body = str(ctx, m.get('body')!, `${f}.body`);
  if (m.has('valid_status_codes')) {
    for (const [i, item] of seq(ctx, m.get('valid_status_codes')!, `${f}.valid_status_codes`)) {
      mod.validStatusCodes.push(int(ctx, item, `${f}.valid_status_codes[${i}]`, 100, 599, 200));
    }
  }
  if (m.has('follow_redirects')) mod.followRedirects = bool(ctx, m.get('follow_redirects')!, `${f}.follow_redirects`, true);
  if (m.has('max_redirects')) mod.maxRedirects = int(ctx, m.get('max_redirects')!, `${f}.max_redirects`, 0, 100, 10);
  if (m.has('timeout')) {
    mod.timeoutMs = duration(ctx, m.get('timeout')!, `${f}.timeout`, DEFAULT_TIMEOUT_MS);
    if (mod.timeoutMs === 0) fail(ctx, m.get('timeout')!, `${f}.timeout`, 'must be above 0: give a duration such as 5s');
  }
  if (m.has('max_body_size')) mod.maxBodyBytes = int(ctx, m.get('max_body_size')!, `${f}.max_body_size`, 1, 1 << 30, DEFAULT_MAX_BODY);
  if (m.has('tls')) {
    const t = entries(ctx, m.get('tls')!, `${f}.tls`, ['ca_file', 'insecure_skip_verify', 'server_name']);
    if (t?.has('insecure_skip_verify')) mod.tls.insecureSkipVerify = bool(ctx, t.get('insecure_skip_verify')!, `${f}.tls.insecure_skip_verify`, false);
    if (t?.has('server_name')) mod.tls.serverName = str(ctx, t.get('server_name')!, `${f}.tls.server_name`);
    const ca = t?.get('ca_file');
    const path = ca && str(ctx, ca, `${f}.tls.ca_file`);
    if (ca && path) {
      try {
        mod.tls.ca = readFileSync(path, 'utf8');
      } catch (err) {
        fail(ctx, ca, `${f}.tls.ca_file`, `cannot read ${JSON.stringify(path)} (${(err as NodeJS.ErrnoException).code ?? String(err)}): give the path of a PEM file`);
      }
    }
  }
  const metrics = m.get('metrics');
  if (metrics) {
    if (mod.format !== 'json') fail(ctx, metrics, `${f}.metrics`, 'is only read with format: json: add format: json or remove metrics');
    for (const [i, item] of seq(ctx, metrics, `${f}.metrics`)) {
      const jm = readJsonMetric(ctx, item, `${f}.metrics[${i}]`);
      // Metrics of one name are one family (their series told apart by labels), so one type.
      const same = jm && mod.metrics.find((other) => other.name === jm.name);
      if (jm && same && same.type !== jm.type) fail(ctx, item, `${f}.metrics[${i}].type`, `${JSON.stringify(jm.type)} differs from the ${same.type} of an earlier metric named ${JSON.stringify(jm.name)}: one name is one family of one type; rename one of them`);
      else if (jm) mod.metrics.push(jm);
    }
  }
  if (mod.format === 'json' && (!metrics || (isSeq(metrics) && metrics.items.length === 0))) fail(ctx, node, `${f}.metrics`, 'is empty: a json module needs at least one metric (name, value selector)');
  return mod;
}

function readJsonMetric(ctx: Ctx, node: Node, f: string): JsonMetric | undefined {
  const m = entries(ctx, node, f, ['name', 'type', 'help', 'each', 'value', 'labels']);
  if (!m) return undefined;
  const name = m.has('name') ? str(ctx, m.get('name')!, `${f}.name`) : undefined;
  if (!m.has('name')) fail(ctx, node, `${f}.name`, 'is missing: give the Prometheus name of the metric');
  else if (name !== undefined && !METRIC_NAME.test(name)) fail(ctx, m.get('name')!, `${f}.name`, `${JSON.stringify(name)} is not a Prometheus metric name: use letters, digits, _ and :, not starting with a digit`);
  else if (name !== undefined && /^promotel_(probe|poll)_/.test(name)) fail(ctx, m.get('name')!, `${f}.name`, `${JSON.stringify(name)} is a name promotel uses for its own metrics: choose another`);
  let type: JsonMetric['type'] = 'gauge';
  if (m.has('type')) {
    const t = str(ctx, m.get('type')!, `${f}.type`);
    if (t === 'gauge' || t === 'counter') type = t;
    else fail(ctx, m.get('type')!, `${f}.type`, `${JSON.stringify(t)} is not a metric type: use gauge or counter`);
  }
  const sel = (key: string): Selector | undefined => {
    const n = m.get(key);
    const s = n && str(ctx, n, `${f}.${key}`);
    if (!n || s === undefined) return undefined;
    try {
      return compileSelector(s);
    } catch (err) {
      fail(ctx, n, `${f}.${key}`, `${JSON.stringify(s)} ${(err as Error).message}`);
      return undefined;
    }
  };
  const value = m.has('value') ? sel('value') : undefined;
  if (!m.has('value')) fail(ctx, node, `${f}.value`, 'is missing: give a selector such as $.requests or, with each, $.count');
  // One value per series: a wildcard in value would silently keep the first of many.
  else if (value?.steps.some((step) => step.kind === 'all')) {
    fail(ctx, m.get('value')!, `${f}.value`, `${JSON.stringify(value.source)} may reach several values: put the list part in each (each: $.queues[*], value: $.depth) and keep value to one field`);
  }
  const labels: Array<[string, Selector]> = [];
  for (const [k, v] of (m.has('labels') && entries(ctx, m.get('labels')!, `${f}.labels`, undefined)) || []) {
    const problem = labelNameProblem(k);
    if (problem) {
      fail(ctx, keyOf(v) ?? v, `${f}.labels.${k}`, problem);
      continue;
    }
    const s = str(ctx, v, `${f}.labels.${k}`);
    if (s === undefined) continue;
    try {
      labels.push([k, compileSelector(s)]);
    } catch (err) {
      fail(ctx, v, `${f}.labels.${k}`, `${JSON.stringify(s)} ${(err as Error).message}`);
    }
  }
  if (name === undefined || value === undefined) return undefined;
  const help = m.has('help') ? str(ctx, m.get('help')!, `${f}.help`) ?? name : name;
  return { name, type, help, each: m.has('each') ? sel('each') : undefined, value, labels };
}

function readTarget(ctx: Ctx, node: Node, f: string, config: PollConfig): Target | undefined {
  const m = entries(ctx, node, f, TARGET_KEYS);
  if (!m) return undefined;
  const name = m.has('name') ? str(ctx, m.get('name')!, `${f}.name`) : undefined;
  if (!m.has('name')) fail(ctx, node, `${f}.name`, 'is missing: give each target a short unique name, used as the target label and in /probe?target=NAME');
  else if (name !== undefined && !/^[A-Za-z0-9_.:\-]+$/.test(name)) fail(ctx, m.get('name')!, `${f}.name`, `${JSON.stringify(name)} has characters other than letters, digits, _ . : -`);
  const rawUrl = m.has('url') ? str(ctx, m.get('url')!, `${f}.url`) : undefined;
  let url: string | undefined;
  if (!m.has('url')) fail(ctx, node, `${f}.url`, 'is missing: give the http:// or https:// URL to poll');
  else if (rawUrl !== undefined) {
    const problem = checkUrl(rawUrl);
    if (problem) fail(ctx, m.get('url')!, `${f}.url`, `${JSON.stringify(rawUrl)} ${problem}`);
    else url = new URL(rawUrl).href;
  }
  let module = 'http';
  if (m.has('module')) {
    const v = str(ctx, m.get('module')!, `${f}.module`);
    if (v !== undefined && !config.modules.has(v)) fail(ctx, m.get('module')!, `${f}.module`, `${JSON.stringify(v)} is not defined: use one of ${[...config.modules.keys()].join(', ')} or define it under modules:`);
    else if (v !== undefined) module = v;
  }
  const job = m.has('job') ? str(ctx, m.get('job')!, `${f}.job`) : name;
  const labels: Record<string, string> = {};
  for (const [k, v] of (m.has('labels') && entries(ctx, m.get('labels')!, `${f}.labels`, undefined)) || []) {
    const problem = labelNameProblem(k);
    if (problem) fail(ctx, keyOf(v) ?? v, `${f}.labels.${k}`, problem);
    else {
      const s = str(ctx, v, `${f}.labels.${k}`);
      if (s !== undefined) labels[k] = s;
    }
  }
  const intervalMs = m.has('interval') ? duration(ctx, m.get('interval')!, `${f}.interval`, config.intervalMs) : config.intervalMs;
  const modTimeout = config.modules.get(module)?.timeoutMs;
  let timeoutMs = m.has('timeout') ? duration(ctx, m.get('timeout')!, `${f}.timeout`, config.timeoutMs) : modTimeout ?? config.timeoutMs;
  if (timeoutMs === 0) {
    // A 0 inherited from the top level or the module was reported there.
    if (m.has('timeout')) fail(ctx, m.get('timeout')!, `${f}.timeout`, 'must be above 0: give a duration such as 5s');
    timeoutMs = DEFAULT_TIMEOUT_MS;
  }
  if (name === undefined || url === undefined || job === undefined) return undefined;
  return { name, url, module, job, labels, intervalMs, timeoutMs };
}

/** Why a URL cannot be polled, or undefined when it can. */
export function checkUrl(raw: string): string | undefined {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return 'is not a URL: write it as http://host:port/path';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `has scheme ${u.protocol.slice(0, -1)}: only http and https can be polled`;
  if (u.username || u.password) return 'carries credentials: put them in the module headers (Authorization) instead';
  return undefined;
}

/** Problems in file order, so the first one printed is the first one to fix. */
function byLine(problems: string[]): string[] {
  const line = (p: string): number => Number(/^[^\n]*?:(\d+): /.exec(p)?.[1] ?? 0);
  return problems.map((p, i) => [p, i] as const).sort((a, b) => line(a[0]) - line(b[0]) || a[1] - b[1]).map(([p]) => p);
}
