// The resource describes this process; the exposition turns it into
// `target_info`. Everything here is read locally: no cloud metadata lookups,
// so start-up never waits on the network.
import { randomUUID } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { Config } from './config';

export const VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')).version as string;
  } catch {
    return '0.0.0';
  }
})();

export type ResourceAttributes = Record<string, string | number>;

/** The sdk-metrics version in use, from its package.json: requiring the package itself would load the SDK at preload time. */
export function sdkVersion(): string {
  try {
    return JSON.parse(readFileSync(require.resolve('@opentelemetry/sdk-metrics/package.json'), 'utf8')).version as string;
  } catch {
    return 'unknown';
  }
}

export function resourceAttributes(config: Pick<Config, 'serviceName' | 'resourceAttributes'>, script = process.argv[1], env: NodeJS.ProcessEnv = process.env): ResourceAttributes {
  const fromEnv = config.resourceAttributes;
  return {
    'host.name': hostname(),
    'process.pid': process.pid,
    'process.runtime.name': 'nodejs',
    'process.runtime.version': process.versions.node,
    'telemetry.sdk.name': 'opentelemetry',
    'telemetry.sdk.language': 'nodejs',
    'telemetry.sdk.version': sdkVersion(),
    'telemetry.distro.name': 'promotel',
    'telemetry.distro.version': VERSION,
    ...fromEnv,
    // OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES, as the spec says; an empty one names nothing.
    'service.name': config.serviceName || fromEnv['service.name'] || detectServiceName(script, env),
    'service.instance.id': fromEnv['service.instance.id'] || randomUUID(),
  };
}

/**
 * The app's package.json name, else the script's name, else the OTel default.
 * A launcher's own package is never the app's: pm2 runs the app from its
 * ProcessContainer and names the app's script in pm_exec_path, and a script
 * under node_modules is a CLI (pm2-runtime, `node node_modules/x/bin/cli.js
 * app.js`) whose package, and whatever project installed it, says nothing of
 * the app; the directory the app was started in does.
 */
export function detectServiceName(script: string | undefined, env: NodeJS.ProcessEnv = process.env, cwd = workingDirectory()): string {
  // Only a launcher's process takes pm_exec_path: a child the app starts inherits the variable, not the name.
  const launched = script === undefined || underNodeModules(dirname(resolveLinks(script)));
  const target = (launched && env.pm_exec_path?.trim()) || script;
  // `node -` reads its script from stdin: like `node -e`, there is no file to name it by.
  if (!target || target === '-') return 'unknown_service:node';
  // argv[1] may be relative (an app that rewrites it, a relative pm_exec_path): from the working directory.
  const real = resolveLinks(cwd === undefined ? target : resolve(cwd, target));
  const fromPackage = (underNodeModules(dirname(real)) ? undefined : packageNameAbove(real)) ?? (cwd === undefined ? undefined : packageNameIn(cwd));
  if (fromPackage) return fromPackage;
  const name = basename(target).replace(/\.[cm]?[jt]s$/, '');
  return name || 'unknown_service:node';
}

// An app started in a directory that was deleted since runs fine, and process.cwd() throws (uv_cwd ENOENT).
function workingDirectory(): string | undefined {
  try {
    return process.cwd();
  } catch {
    return undefined;
  }
}

const underNodeModules = (dir: string): boolean => dir.split(sep).includes('node_modules');

function resolveLinks(script: string): string {
  try {
    return realpathSync(script);
  } catch {
    return script;
  }
}

function packageNameAbove(script: string): string | undefined {
  // Up to the directory that is its own parent: the root of an absolute path, '.' of a relative one.
  for (let dir = dirname(script), parent = dirname(dir); ; dir = parent, parent = dirname(dir)) {
    const name = packageNameIn(dir);
    if (name) return name;
    if (parent === dir) return undefined;
  }
}

function packageNameIn(dir: string): string | undefined {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    return typeof pkg.name === 'string' && pkg.name ? pkg.name : undefined;
  } catch {
    return undefined; // no package.json here, or unreadable
  }
}
