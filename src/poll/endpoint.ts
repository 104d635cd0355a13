// GET /probe?target=NAME[&module=M]: polls one target now and answers with
// that poll's metrics only, like blackbox_exporter's multi-target endpoint.
//
// The endpoint is reachable by whoever can reach the metrics port, so it must
// not become a way to make the poller fetch arbitrary URLs (SSRF): `target` is
// the name of a configured target, or a URL that an `allow:` pattern matches
// after normalisation; anything else is refused with 403 before any request
// is made. Redirects obey the same rule (see poll.ts), and `module` only
// names modules of the config, so it cannot carry a URL or options either.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { serialize } from '../exposition/serialize';
import { OPENMETRICS_CONTENT_TYPE, scrapeTimeoutMs, TEXT_CONTENT_TYPE, wantsOpenMetrics } from '../server';
import { matching, normalise } from './allow';
import type { Module, PollConfig, Target } from './config';
import { toScopeMetrics, type Family } from './families';

export interface ProbeDeps {
  config(): PollConfig;
  /**
   * Polls when a slot is free. `deadline` (performance.now() ms) bounds the
   * wait for the slot and the probe together; past it, rejects with a
   * SlotTimeout instead of polling.
   */
  poll(target: Target, module: Module, deadline: number): Promise<Family[]>;
  /** True when so many /probe requests wait already that another would only hold a connection open. */
  busy(): boolean;
}

/** No poll slot came free before the /probe request's deadline. */
export class SlotTimeout extends Error {}

export function handleProbe(req: IncomingMessage, res: ServerResponse, deps: ProbeDeps): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return plain(res, 405, `method ${req.method} not allowed: use GET\n`);
  }
  const query = new URL(req.url ?? '/', 'http://localhost').searchParams;
  const config = deps.config();
  const resolved = resolveTarget(config, query.get('target'), query.get('module'));
  if ('status' in resolved) return plain(res, resolved.status, `${resolved.message}\n`);
  const { target, module } = resolved;
  if (deps.busy()) {
    res.setHeader('Retry-After', '1');
    return plain(res, 503, 'too many probes are waiting already: probe less often, or raise concurrency: in the config\n');
  }
  // Finish before the scraper gives up, as blackbox_exporter does (half a second of margin),
  // counting from now: the wait for a free poll slot is part of it.
  target.timeoutMs = scrapeTimeoutMs(req.headers['x-prometheus-scrape-timeout-seconds'], target.timeoutMs);
  const deadline = performance.now() + target.timeoutMs;
  const openMetrics = wantsOpenMetrics(req.headers.accept);
  deps.poll(target, module, deadline).then(
    (families) => {
      const body = serialize({ resource: { attributes: {} } as never, scopeMetrics: [toScopeMetrics([families], () => undefined)] }, { openMetrics });
      res.statusCode = 200;
      res.setHeader('Content-Type', openMetrics ? OPENMETRICS_CONTENT_TYPE : TEXT_CONTENT_TYPE);
      res.setHeader('Content-Length', Buffer.byteLength(body));
      res.end(req.method === 'HEAD' ? undefined : body);
    },
    (err: unknown) => {
      if (!(err instanceof SlotTimeout)) return plain(res, 500, `probe failed: ${err instanceof Error ? err.message : String(err)}\n`);
      res.setHeader('Retry-After', '1');
      plain(res, 503, `no poll slot came free in time for a ${target.timeoutMs} ms probe (all ${deps.config().concurrency} were busy): raise concurrency: in the config, or probe less often\n`);
    },
  );
}

type Resolved = { target: Target; module: Module } | { status: number; message: string };

/** The target and module a /probe request may poll, or the refusal. Exported for tests. */
export function resolveTarget(config: PollConfig, name: string | null, moduleName: string | null): Resolved {
  if (!name) return { status: 400, message: 'the target parameter is missing: use /probe?target=NAME with a target name from the config' };
  if (moduleName !== null && !config.modules.has(moduleName)) {
    return { status: 400, message: `module ${JSON.stringify(moduleName)} is not defined: use one of ${[...config.modules.keys()].join(', ')}` };
  }
  const named = config.targets.find((t) => t.name === name);
  if (named) {
    const module = config.modules.get(moduleName ?? named.module)!;
    if (module.name !== named.module && sendsOwnRequest(module)) {
      return { status: 403, message: `module ${module.name} sends configured headers or a body, so it only polls the targets configured with it, not ${named.name}: set module: ${module.name} on that target in the config` };
    }
    return { target: { ...named, timeoutMs: moduleName && module.timeoutMs ? module.timeoutMs : named.timeoutMs }, module };
  }
  const url = normalise(name);
  if (!url || !/^https?:\/\//i.test(name)) {
    return { status: 400, message: `target ${JSON.stringify(name)} is neither a configured target name nor an http(s) URL without credentials` };
  }
  const pattern = matching(url, config.allow);
  if (!pattern) {
    return { status: 403, message: `target ${JSON.stringify(name)} is not a configured target and no allow: pattern matches ${url.href}: add it to targets: or allow: in the config` };
  }
  const module = config.modules.get(moduleName ?? 'http')!;
  if (sendsOwnRequest(module)) {
    return { status: 403, message: `module ${module.name} sends configured headers or a body, so it only polls configured targets: add ${url.href} to targets:` };
  }
  return { target: { name: url.href, url: url.href, module: module.name, job: 'probe', labels: {}, intervalMs: 0, timeoutMs: module.timeoutMs ?? config.timeoutMs, adHoc: pattern.source }, module };
}

/** Its headers may carry credentials (Authorization) meant for its own targets, not for ones a caller picks. */
function sendsOwnRequest(module: Module): boolean {
  return Object.keys(module.headers).length > 0 || module.body !== undefined;
}

function plain(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
