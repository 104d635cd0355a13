// Plumbing of the sidecar tests: real target servers on 127.0.0.1 (healthy,
// slow, failing, garbage, JSON, Prometheus text, TLS with a certificate made
// at test time) and the `promotel poll` command as a child process.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { freePort, get, ROOT, startApp, type App } from './helpers';

export const CLI = join(ROOT, 'dist', 'src', 'cli.js');

export const PROM_TEXT = [
  '# HELP app_requests_total Requests served.',
  '# TYPE app_requests_total counter',
  'app_requests_total{code="200",job="inner"} 1027',
  'app_requests_total{code="500",job="inner"} 3',
  '# HELP app_temperature Current temperature.',
  '# TYPE app_temperature gauge',
  'app_temperature -1.5',
  '# HELP app_latency_seconds Latency.',
  '# TYPE app_latency_seconds histogram',
  'app_latency_seconds_bucket{le="0.1"} 4',
  'app_latency_seconds_bucket{le="0.5"} 9',
  'app_latency_seconds_bucket{le="+Inf"} 10',
  'app_latency_seconds_sum 2.5',
  'app_latency_seconds_count 10',
  '# TYPE app_rpc_seconds summary',
  'app_rpc_seconds{quantile="0.5"} 0.05',
  'app_rpc_seconds_sum 7',
  'app_rpc_seconds_count 70',
  'app_untyped{path="a\\"b"} 42 1700000000000',
  '',
].join('\n');

/** Valid-looking text that a naive re-exposure would turn into invalid or misleading output. */
export const TRICKY_TEXT = [
  '# TYPE foo counter',
  'foo 5', // a counter of text 0.0.4 without _total
  'dup 1',
  'dup 2', // the same series twice
  'clash{target="t1",exported_target="orig"} 3',
  '# TYPE s summary',
  's{quantile="0.5"} 1', // a summary with neither _sum nor _count
  's{quantile="0.5"} 1.5', // ... and a quantile given twice
  '# TYPE c counter',
  'c_total{a="1",b="2"} 1',
  'c_total{b="2",a="1"} 2', // a counter given twice, its labels in another order
  '# TYPE h histogram',
  'h_bucket{le="1"} 1',
  'h_bucket{le="1"} 2', // a bucket given twice
  'h_bucket{le="+Inf"} 3',
  'h_count 3',
  'h_sum 1.5',
  '# TYPE gh gaugehistogram',
  'gh_bucket{le="0.5"} 3', // re-exposed as a gauge: its le stays le
  'untyped_series{x__y="1",otel_scope_schema_url="s"} 1', // a valid label name stays; ours is moved aside
  'm{job="a"} 1',
  'm{exported_job="a"} 2', // the same series once the target's job moves to exported_job
  '# TYPE q__r gauge',
  'q__r 1', // a valid name with a run of _: re-exposed as it is, not as q_r
  '# TYPE q_r gauge',
  'q_r 2',
  '# TYPE n__x_total counter',
  'n__x_total 4',
  '# TYPE promotel_probe_success gauge',
  'promotel_probe_success 7', // a target faking its own health
  '',
].join('\n');

export const OPENMETRICS_TEXT = [
  '# TYPE om_jobs counter',
  '# HELP om_jobs Jobs run.',
  'om_jobs_total{queue="mail"} 17 # {trace_id="abc"} 1 1700000000',
  'om_jobs_created{queue="mail"} 1700000000.5',
  '# TYPE om_build info',
  'om_build_info{version="1.2.3"} 1',
  '# TYPE om_up gauge',
  'om_up 1',
  '# EOF',
  '',
].join('\n');

export interface Targets {
  base: string;
  /** Port where nothing listens. */
  refusedPort: number;
  garbagePort: number;
  tlsPort: number;
  /** The TLS server's certificate (PEM file) and its notAfter as unix seconds. */
  certFile: string;
  certExpiry: number;
  /** Requests each path received. */
  hits: Map<string, number>;
  /** The next bodies /json answers, in turn (the last one repeats). */
  jsonBodies: string[];
  close(): Promise<void>;
}

let BIG: string | undefined;
let PYTHON_TEXT: string | undefined;

/**
 * What the Python reference client writes in text 0.0.4 (`generate_latest`, as an app's own /metrics
 * route serves it whatever the scraper asks for): each creation time is a gauge family of its own.
 */
function pythonText(): string {
  const script = [
    'import sys',
    'from prometheus_client import CollectorRegistry, Counter, Histogram, Summary, generate_latest',
    'r = CollectorRegistry()',
    "Counter('py_jobs', 'Jobs run.', ['queue'], registry=r).labels('mail').inc(17)",
    "Histogram('py_latency_seconds', 'Latency.', registry=r, buckets=[0.1, 1]).observe(0.5)",
    "Summary('py_rpc_seconds', 'RPC.', registry=r).observe(2)",
    'sys.stdout.write(generate_latest(r).decode())',
  ].join('\n');
  const res = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8', timeout: 60_000 });
  if (res.status !== 0) throw new Error(`python3 with prometheus_client could not write the body: ${res.stderr}`);
  return res.stdout;
}

function route(req: IncomingMessage, res: ServerResponse, t: Targets): void {
  const path = (req.url ?? '/').split('?')[0]!;
  t.hits.set(path, (t.hits.get(path) ?? 0) + 1);
  const send = (status: number, body: string, type = 'text/plain'): void => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  switch (path) {
    case '/ok':
    case '/public/ok':
      return send(200, 'hello\n');
    case '/big': // 200,000 series, sent at once: converting them takes longer than sending them
      BIG ??= `# TYPE big gauge\n${Array.from({ length: 200_000 }, (_, i) => `big{i="${i}"} ${i}\n`).join('')}`;
      return send(200, BIG);
    case '/slow': {
      const timer = setTimeout(() => send(200, 'late\n'), 2000);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    case '/fail':
    case '/public/fail':
      return send(503, 'unavailable\n');
    case '/public/redirect': // an open redirect, the classic way to widen an SSRF allow-list
      res.writeHead(302, { location: new URL(req.url ?? '/', 'http://x').searchParams.get('to') ?? '/', 'content-length': 0 });
      return void res.end();
    case '/redirect':
      res.writeHead(302, { location: '/ok', 'content-length': 0 });
      return void res.end();
    case '/json': {
      const body = t.jsonBodies.length > 1 ? t.jsonBodies.shift()! : t.jsonBodies[0] ?? '{}';
      return send(200, body, 'application/json');
    }
    case '/metrics':
      return send(200, PROM_TEXT, 'text/plain; version=0.0.4');
    case '/metrics-gzip': { // compressed when the client asks for it, as exporters do
      const zipped = /gzip/.test(String(req.headers['accept-encoding'])) ? gzipSync(PROM_TEXT) : undefined;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-length': (zipped ?? Buffer.from(PROM_TEXT)).length, ...(zipped ? { 'content-encoding': 'gzip' } : {}) });
      return void res.end(zipped ?? PROM_TEXT);
    }
    case '/gzip-bomb': { // 1 MB of text in about 1 kB
      const zipped = gzipSync(`# TYPE pad gauge\n${'pad 1\n'.repeat(170_000)}`);
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-encoding': 'gzip', 'content-length': zipped.length });
      return void res.end(zipped);
    }
    case '/tricky':
      return send(200, TRICKY_TEXT, 'text/plain; version=0.0.4');
    case '/latin1': // a label value in ISO-8859-1, as an old exporter may send it
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      return void res.end(Buffer.from('# TYPE city_up gauge\ncity_up{city="M\u00fcnchen"} 1\n', 'latin1'));
    case '/python-text':
      return send(200, (PYTHON_TEXT ??= pythonText()), 'text/plain; version=0.0.4');
    case '/om':
      return send(200, OPENMETRICS_TEXT, 'application/openmetrics-text; version=1.0.0');
    case '/bad-lines': // over 100,000 unreadable lines: one error each, and one good sample
      return send(200, `# TYPE ok gauge\nok 1\n${'a b c\n'.repeat(130_000)}`);
    case '/html':
      return send(200, '<html><body>not metrics</body></html>\n', 'text/html');
    default:
      return send(404, 'not found\n');
  }
}

export async function startTargets(): Promise<Targets> {
  const dir = mkdtempSync(join(tmpdir(), 'promotel-poll-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '30', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8', timeout: 30_000 });
  if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr}`);
  const cert = readFileSync(certFile, 'utf8');
  const t = { hits: new Map<string, number>(), jsonBodies: ['{}'], certFile, certExpiry: Date.parse(new X509Certificate(cert).validTo) / 1000 } as Targets;

  const servers: Array<Server | NetServer> = [];
  const sockets = new Set<Socket>();
  const listen = async (s: Server | NetServer): Promise<number> => {
    servers.push(s);
    s.on('connection', (c: Socket) => {
      sockets.add(c);
      c.on('close', () => sockets.delete(c));
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return (s.address() as AddressInfo).port;
  };
  const port = await listen(createServer((req, res) => route(req, res, t)));
  t.base = `http://127.0.0.1:${port}`;
  // Answers anything with bytes that are not HTTP.
  // It waits for the request, so the client always reads the garbage rather than sometimes a reset.
  t.garbagePort = await listen(createNetServer((c) => c.once('data', () => c.end('SSH-2.0-OpenSSH_9.2 garbage\r\n\r\n'))));
  t.tlsPort = await listen(createHttpsServer({ key: readFileSync(keyFile), cert }, (req, res) => route(req, res, t)));
  t.refusedPort = await freePort();
  writeFileSync(join(dir, 'README'), 'promotel poll test certificates\n');
  t.close = async () => {
    for (const c of sockets) c.destroy();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    rmSync(dir, { recursive: true, force: true });
  };
  return t;
}

export interface Poller extends App {
  url: string;
  dir: string;
  configFile: string;
  stop(): Promise<{ code: number | null; ms: number }>;
}

/** Starts `promotel poll` on a free port with the config text (written to a temp file), waiting until it serves. */
export async function startPoller(configYaml: string | undefined, args: string[] = []): Promise<Poller> {
  const dir = mkdtempSync(join(tmpdir(), 'promotel-pollcfg-'));
  const configFile = join(dir, 'promotel.yaml');
  if (configYaml !== undefined) writeFileSync(configFile, configYaml);
  const port = await freePort();
  const app = startApp(CLI, {
    preload: 'none',
    args: ['poll', ...(configYaml !== undefined ? ['--config', configFile] : []), '--host', '127.0.0.1', '--port', String(port), ...args],
    env: { PROMOTEL_HOST_METRICS: 'false' },
  });
  const url = `http://127.0.0.1:${port}`;
  await app.waitFor(/polling \d+ target/, 15_000);
  return Object.assign(app, {
    url,
    dir,
    configFile,
    async stop() {
      const started = Date.now();
      app.kill('SIGTERM');
      const timer = setTimeout(() => app.kill('SIGKILL'), 8000);
      const { code } = await app.exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      return { code, ms: Date.now() - started };
    },
  });
}

/** The value of the one sample of `name` whose labels include `labels`, from exposition text; undefined when absent. */
export function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return m[3] === '+Inf' ? Infinity : m[3] === 'NaN' ? NaN : Number(m[3]);
  }
  return undefined;
}

export async function scrape(url: string): Promise<string> {
  const res = await get(url);
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${res.body}`);
  return res.body;
}
