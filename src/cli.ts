#!/usr/bin/env node
// The `promotel` command. `promotel poll` is the sidecar: it polls services
// over HTTP and serves what it finds, with its own and the runtime metrics,
// on the same endpoint as the preload agent. It is a long-running service, so
// nothing that goes wrong after start-up ends it: a bad reload keeps the old
// config, a failing target is a metric, and only SIGTERM or SIGINT stop it
// (exit 0, promptly).
import { unwatchFile, watchFile } from 'node:fs';
import { parseArgs } from 'node:util';
import { readConfig } from './config';
import * as log from './log';
import { isLogLevel } from './log';
import { VERSION } from './resource';
import { ConfigError, loadConfig, parseConfig, durationProblem, parseDuration, type Flags, type PollConfig } from './poll/config';

export const HELP = `Usage:
  promotel poll --config FILE [options]     poll the targets of FILE, serve metrics on :9000
  promotel poll --target URL [options]      poll URL (repeatable), no config file needed
  promotel poll --check FILE                validate FILE and exit (0 valid, 1 invalid)
  promotel --help | --version

Serves /metrics (the latest poll of every target, plus promotel's own and the
Node.js runtime metrics) and /probe?target=NAME&module=M (polls one target now,
like blackbox_exporter). /probe only polls configured targets, or URLs that an
allow: pattern (or --allow) matches.

Options:
  -c, --config FILE        YAML config (see examples/promotel.yaml); reloaded on SIGHUP and when the file changes
      --check FILE         validate FILE, print every problem with its line, and exit
      --target URL         poll this http(s) URL (repeatable); its name and target label are the URL
      --module NAME        module for --target URLs: http (probe only, default), prometheus, or one of FILE
      --interval DURATION  time between polls of a target, e.g. 15s (default 15s; 0 polls only on /probe)
      --timeout DURATION   give up on a poll after this long (default 5s)
      --jitter DURATION    random delay added to each poll so targets do not poll in step (default: each target's interval/10)
      --concurrency N      polls running at once, at most (default 8)
      --allow PATTERN      URL pattern /probe?target=URL may poll (repeatable); * is one path segment, a trailing ** the rest
      --host ADDRESS       address to listen on (default $OTEL_EXPORTER_PROMETHEUS_HOST or 0.0.0.0)
      --port PORT          port to listen on (default $OTEL_EXPORTER_PROMETHEUS_PORT or 9000; 0 picks a free one)
      --log-level LEVEL    none, error, warn, info (default), debug
  -h, --help               this text
  -v, --version            print the version

Environment: OTEL_EXPORTER_PROMETHEUS_HOST, OTEL_EXPORTER_PROMETHEUS_PORT, OTEL_LOG_LEVEL,
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, PROMOTEL_RUNTIME_METRICS, PROMOTEL_HOST_METRICS and
PROMOTEL_CARDINALITY_LIMIT work as for the preload agent; flags win over them.
`;

export const OPTIONS = {
  config: { type: 'string', short: 'c' },
  check: { type: 'string' },
  target: { type: 'string', multiple: true },
  module: { type: 'string' },
  interval: { type: 'string' },
  timeout: { type: 'string' },
  jitter: { type: 'string' },
  concurrency: { type: 'string' },
  allow: { type: 'string', multiple: true },
  host: { type: 'string' },
  port: { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

function usage(message: string): never {
  process.stderr.write(`promotel: ${message}\nRun promotel --help for the options.\n`);
  process.exit(2);
}

export function main(argv: string[]): void {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    usage((err as Error).message);
  }
  const { values: v, positionals } = parsed;
  if (v.help) return void process.stdout.write(HELP);
  if (v.version) return void process.stdout.write(`promotel ${VERSION}\n`);
  if (positionals[0] !== 'poll' || positionals.length > 1) usage(positionals.length === 0 ? 'a command is missing: use promotel poll' : `unknown command ${JSON.stringify(positionals.join(' '))}: use promotel poll`);

  const flags: Flags = {};
  const dur = (name: 'interval' | 'timeout' | 'jitter'): number | undefined => {
    const raw = v[name];
    if (raw === undefined) return undefined;
    const value = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw;
    const ms = parseDuration(value);
    if (ms === undefined) usage(`--${name} ${JSON.stringify(raw)} ${durationProblem(value)}`);
    return ms;
  };
  flags.intervalMs = dur('interval');
  flags.timeoutMs = dur('timeout');
  if (flags.timeoutMs === 0) usage('--timeout must be above 0');
  flags.jitterMs = dur('jitter');
  if (v.concurrency !== undefined) {
    flags.concurrency = Number(v.concurrency);
    if (!/^\d+$/.test(v.concurrency) || flags.concurrency < 1 || flags.concurrency > 1000) usage(`--concurrency ${JSON.stringify(v.concurrency)} must be a whole number from 1 to 1000`);
  }
  flags.allow = v.allow;
  flags.targets = v.target;
  flags.module = v.module;

  if (v.check !== undefined) {
    try {
      const config = loadConfig(v.check, flags);
      process.stdout.write(`${v.check}: valid: ${config.targets.length} target(s), ${config.modules.size} module(s), ${config.allow.length} allow pattern(s)\n`);
      process.exit(0);
    } catch (err) {
      process.stderr.write(`${describe(err)}\n`);
      process.exit(1);
    }
  }
  if (v.config === undefined && (v.target ?? []).length === 0) usage('nothing to poll: give --config FILE or --target URL');

  const { config: env, warnings } = readConfig(process.env);
  const level = v['log-level'] ?? (process.env.OTEL_LOG_LEVEL?.trim() ? env.logLevel : 'info');
  if (!isLogLevel(level)) usage(`--log-level ${JSON.stringify(level)} is not a level: use none, error, warn, info or debug`);
  log.setLogLevel(level);
  for (const w of warnings) log.warn(w);
  let port = env.port;
  if (v.port !== undefined) {
    port = Number(v.port);
    if (!/^\d+$/.test(v.port) || port > 65535) usage(`--port ${JSON.stringify(v.port)} must be a port number from 0 to 65535`);
  }

  const file = v.config;
  const build = (): PollConfig => (file !== undefined ? loadConfig(file, flags) : parseConfig('targets: []', '--target', flags));
  let config: PollConfig;
  try {
    config = build();
  } catch (err) {
    const fix = file !== undefined ? `fix the config (promotel poll --check ${file} lists every problem)` : 'fix the flags named above';
    process.stderr.write(`${describe(err)}\npromotel: not started: ${fix}\n`);
    process.exit(1);
  }

  // A long-running service: report, never die of, what escaped a guard.
  process.on('uncaughtException', (err) => log.error(`unexpected error, polling goes on: ${err.stack ?? log.describeError(err)}`));
  process.on('unhandledRejection', (err) => log.error(`unexpected rejection, polling goes on: ${log.describeError(err)}`));

  const { startPoller } = require('./poll/service') as typeof import('./poll/service');
  const poller = startPoller(config, { ...env, host: v.host ?? env.host, port });
  // The endpoint and the timers are unref'd (they are the agent's); this holds the process open until a signal.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  poller.listening.then((address) => {
    if (!address) return stop(1);
    log.info(`polling ${config.targets.length} target(s)${file ? ` from ${file}` : ''}; metrics on http://${address.address}:${address.port}/metrics, probes on /probe?target=NAME`);
  }, () => undefined);

  const reload = (why: string): void => {
    if (file === undefined) return;
    try {
      const next = build();
      poller.apply(next);
      poller.reloaded(true);
      log.info(`reloaded ${file} (${why}): ${next.targets.length} target(s)`);
    } catch (err) {
      poller.reloaded(false);
      log.error(`reloading ${file} (${why}) failed; the previous config stays in use:\n${describe(err)}`.replace(/\n/g, ' | '));
    }
  };
  process.on('SIGHUP', () => reload('SIGHUP'));
  if (file !== undefined) {
    // Polling the file's stat survives editors that replace the file rather than write it.
    watchFile(file, { interval: 500, persistent: false }, (now, before) => {
      if (now.mtimeMs !== before.mtimeMs || now.size !== before.size || now.ino !== before.ino) reload('the file changed');
    });
  }

  let stopping = false;
  function stop(code: number): void {
    if (stopping) return process.exit(code);
    stopping = true;
    log.info('shutting down');
    if (file !== undefined) unwatchFile(file);
    clearInterval(keepAlive);
    const force = setTimeout(() => process.exit(code), 3000);
    force.unref();
    poller.shutdown().then(
      () => process.exit(code),
      () => process.exit(code),
    );
  }
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
}

function describe(err: unknown): string {
  if (err instanceof ConfigError) return err.problems.join('\n');
  return `promotel: ${log.describeError(err)}`;
}

if (require.main === module) main(process.argv.slice(2));
