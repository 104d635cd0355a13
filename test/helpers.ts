// Shared test plumbing: real child processes, real ports on 127.0.0.1, and
// the reference tools (promtool, the Python client's parser, a Prometheus
// server). Everything started here is bounded in time and killed at the end.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export const ROOT = resolve(__dirname, '..', '..');
export const REGISTER = join(ROOT, 'dist', 'src', 'register.js');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
export const DEMO = join(ROOT, 'examples', 'demo', 'server.js');

/** A self-signed certificate for 127.0.0.1 and localhost, made by openssl, removed as the test process exits. */
export function selfSignedCert(): { KEY_FILE: string; CERT_FILE: string } {
  const dir = mkdtempSync(join(tmpdir(), 'promotel-cert-'));
  const files = { KEY_FILE: join(dir, 'key.pem'), CERT_FILE: join(dir, 'cert.pem') };
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', files.KEY_FILE, '-out', files.CERT_FILE, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8', timeout: 30_000 });
  if (made.status !== 0) throw new Error(`openssl could not make a test certificate: ${made.stderr}`);
  // Not a top-level after(): Node 20.6's runner would wait for it until the event loop is empty (.ci/node-versions).
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return files;
}

/**
 * A port free now, below Linux's ephemeral range (32768-60999): a port the kernel handed out with
 * listen(0) goes back to that range, where the source port of any test's next connection could take
 * it before the test's server binds it (EADDRINUSE, seen once in CI across 7 Node.js versions).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_768);
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

export interface App {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout or stderr has matched, rejects after the timeout with what was seen. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code and signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

export interface StartOptions {
  env?: Record<string, string | undefined>;
  /** How the agent is preloaded; 'none' runs the script bare. */
  preload?: 'require' | 'import' | 'none';
  args?: string[];
  cwd?: string;
  /** Node flags before the preload, e.g. --max-semi-space-size=1 to make GC happen soon. */
  execArgv?: string[];
}

/** Starts `node [preload] script`, with a clean environment apart from what the test gives. */
export function startApp(script: string, options: StartOptions = {}): App {
  const preload = options.preload ?? 'require';
  const nodeArgs = preload === 'require' ? ['--require', REGISTER] : preload === 'import' ? ['--import', `file://${REGISTER}`] : [];
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
  for (const [k, v] of Object.entries(options.env ?? {})) if (v !== undefined) env[k] = v;
  const child = spawn(process.execPath, [...(options.execArgv ?? []), ...nodeArgs, script, ...(options.args ?? [])], {
    cwd: options.cwd ?? ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters: Array<() => void> = [];
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    waiters.forEach((w) => w());
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    waiters.forEach((w) => w());
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.on('exit', (code, signal) => {
      res({ code, signal });
      waiters.forEach((w) => w());
    }),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    kill: (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    waitFor(pattern, timeoutMs = 10_000) {
      return new Promise((res, rej) => {
        const check = (): boolean => {
          const m = pattern.exec(out) ?? pattern.exec(err);
          if (m) {
            res(m[0]);
            return true;
          }
          if (child.exitCode !== null || child.signalCode !== null) {
            rej(new Error(`process exited before ${pattern}; stdout: ${out} stderr: ${err}`));
            return true;
          }
          return false;
        };
        if (check()) return;
        const timer = setTimeout(() => rej(new Error(`timed out waiting for ${pattern}; stdout: ${out} stderr: ${err}`)), timeoutMs);
        waiters.push(() => {
          if (check()) clearTimeout(timer);
        });
      });
    },
  };
}

export async function get(url: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: string }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

/** Collects the chunks written to stderr (the agent's warning lines) until `restore()`. */
export function captureStderr(): { lines: string[]; restore(): void } {
  const lines: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => (lines.push(String(chunk)), true)) as typeof process.stderr.write;
  return { lines, restore: () => void (process.stderr.write = write) };
}

/** Polls until fn returns a truthy value or the time is up. */
export async function eventually<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 10_000, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

/** Parses exposition text with the Python reference client (`prometheus_client`), returning its view of every family. */
export function pythonParse(text: string, openMetrics = false): Family[] {
  const parser = openMetrics ? 'prometheus_client.openmetrics.parser' : 'prometheus_client.parser';
  const script = [
    'import sys, json, math',
    `from ${parser} import text_string_to_metric_families`,
    'def num(v):',
    '    return v if math.isfinite(v) else str(v)',
    'out = [{"name": f.name, "type": f.type, "help": f.documentation,',
    '        "samples": [{"name": s.name, "labels": s.labels, "value": num(s.value)} for s in f.samples]}',
    '       for f in text_string_to_metric_families(sys.stdin.buffer.read().decode("utf-8"))]',
    'json.dump(out, sys.stdout)',
  ].join('\n');
  const res = spawnSync('/usr/bin/python3', ['-c', script], { input: text, encoding: 'utf8', timeout: 60_000, maxBuffer: 256 * 1024 * 1024 });
  if (res.status !== 0) throw new Error(`python parser rejected the exposition: ${res.stderr}`);
  return JSON.parse(res.stdout) as Family[];
}

/** Runs `promtool check metrics`; returns its complaints ('' when clean). */
export function promtoolCheck(text: string): string {
  const res = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 60_000 });
  if (res.error) throw res.error;
  return (res.stdout + res.stderr).trim();
}

/** Every sample of a family name (as the Python parser names samples), by labels. */
export function samplesOf(families: Family[], sampleName: string): Sample[] {
  return families.flatMap((f) => f.samples).filter((s) => s.name === sampleName);
}

export function sampleValue(families: Family[], sampleName: string, labels: Record<string, string> = {}): number | undefined {
  const hit = samplesOf(families, sampleName).find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hit?.value;
}

export interface Prometheus {
  url: string;
  query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  stop(): Promise<void>;
}

/** Starts a real Prometheus server on 127.0.0.1 with the given config (YAML text), storage in a temp dir. */
export async function startPrometheus(configYaml: string, extraArgs: string[] = []): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'promotel-prom-'));
  writeFileSync(join(dir, 'prometheus.yml'), configYaml);
  const port = await freePort();
  const child = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      ...extraArgs,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-20_000)));
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await eventually(async () => (await get(`${url}/-/ready`)).status === 200, 30_000, 200);
  } catch (err) {
    await stop();
    throw new Error(`prometheus did not become ready: ${String(err)}\n${log}`);
  }
  return {
    url,
    stop,
    async query(expr) {
      const res = await get(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = JSON.parse(res.body) as { status: string; error?: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      if (body.status !== 'success') throw new Error(`query ${expr} failed: ${body.error}`);
      return body.data.result;
    },
  };
}

/** V8's gc(), for tests that check what memory is let go of (WeakRef): --expose-gc set at run time. */
export function exposedGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
