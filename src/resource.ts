// The resource describes this process; the exposition turns it into
// `target_info`. Everything here is read locally: no cloud metadata lookups,
// so start-up never waits on the network.
import { randomUUID } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, parse } from 'node:path';
import type { Config } from './config';

export const VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')).version as string;
  } catch {
    return '0.0.0';
  }
})();

export type ResourceAttributes = Record<string, string | number>;

export function resourceAttributes(config: Pick<Config, 'serviceName' | 'resourceAttributes'>, script = process.argv[1]): ResourceAttributes {
  const fromEnv = config.resourceAttributes;
  return {
    'host.name': hostname(),
    'process.pid': process.pid,
    'process.runtime.name': 'nodejs',
    'process.runtime.version': process.versions.node,
    'telemetry.sdk.name': 'opentelemetry',
    'telemetry.sdk.language': 'nodejs',
    'telemetry.distro.name': 'promotel',
    'telemetry.distro.version': VERSION,
    ...fromEnv,
    // OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES, as the spec says.
    'service.name': config.serviceName ?? fromEnv['service.name'] ?? detectServiceName(script),
    'service.instance.id': fromEnv['service.instance.id'] ?? randomUUID(),
  };
}

/** The app's package.json name, else the script's name, else the OTel default. */
export function detectServiceName(script: string | undefined): string {
  if (!script) return 'unknown_service:node';
  let dir: string;
  try {
    dir = dirname(realpathSync(script));
  } catch {
    dir = dirname(script);
  }
  const root = parse(dir).root;
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (typeof pkg.name === 'string' && pkg.name) return pkg.name;
    } catch {
      // no package.json here, or unreadable: keep walking up
    }
    if (dir === root) break;
    dir = dirname(dir);
  }
  const name = basename(script).replace(/\.[cm]?[jt]s$/, '');
  return name || 'unknown_service:node';
}
