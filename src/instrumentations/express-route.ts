// The route template of a request Express handled (`/shops/:shop/orders/:id`),
// read after the response from what Express leaves on the request, with no
// patching: `req.route.path` is the template of the matched route, but
// `req.baseUrl` is the *concrete* path the enclosing routers were mounted on
// (`/shops/7`). A mount path with parameters would put raw values in the
// label, so such a prefix is turned back into its template by matching it
// against the mount layers that lead to the route: `router.stack`,
// `layer.match()` and `app.parent`, which Express 4 and 5 share. Express 5's
// match() also names the template it matched; Express 4's leaves only the
// concrete path and the parameters on the layer, so the template is worked
// out from those.
//
// `req.baseUrl` is put back as the request leaves each router: a response
// sent from outside the route's router (an error handler of the app after
// `next(err)`, the final 404 after `next()`) finds it shorter than the
// route's prefix, often ''. Then the whole path is matched along the route's
// chains, the route's own layer included, instead.
//
// What it cannot see: a router that passes a request on with
// `next('router')`, or a `router.param` callback that skips with
// `next('route')`; the label then names the first chain whose paths match.

interface Layer {
  route?: unknown;
  name?: string;
  handle?: { stack?: unknown };
  /** Express 4: true, with `path` and `params` set on the layer; Express 5: the match itself. */
  match(path: string): boolean | LayerMatch;
  path?: string;
  params?: Record<string, string>;
  /** Express 4: the path compiled, or the RegExp the app mounted on as given. */
  regexp?: RegExp;
}

interface LayerMatch {
  path?: string;
  params?: Record<string, string>;
  /** Express 5: the mount path (template) that matched. */
  pattern?: unknown;
}

interface App {
  _router?: { stack?: unknown };
  router?: { stack?: unknown };
  parent?: App;
}

interface ExpressRequest {
  route?: { path?: unknown };
  baseUrl?: unknown;
  originalUrl?: unknown;
  app?: App;
}

/** Layers listed per app, and match attempts per request: bounds on the cost for large apps. */
const LAYERS_LISTED = 4096;
const MATCHES_PER_REQUEST = 64;
/** Distinct mount chains kept per route (a router mounted on several paths has one per path). */
const MAX_CHAINS = 16;

// Per route, the last prefix worked out and the base URL it came from: with
// mount paths free of parameters (the usual case) the base URL is the same
// for every request of a route, and nothing is matched again.
const lastPrefix = new WeakMap<object, { baseUrl: string; prefix: string | undefined }>();

/**
 * For the app that handled a request: per route, every chain of mount layers
 * (routers and sub-apps) from the outermost app down to the stack holding the
 * route, in the order Express tries them. Listed once per app, so that a
 * request under mount paths with parameters matches only its own chain's
 * layers instead of searching the app; listed again when a stack on the way
 * has changed (an app that mounts more routers after serving). Past the
 * bounds above the listing stops: the chains found by then come first in
 * Express' order, so they stay right, and a request through one not listed
 * gets no label.
 */
interface Chains {
  readonly byRoute: Map<object, Layer[][]>;
  /** The layer that holds each route, to match the rest of a path once its chain has taken its part. */
  readonly routeLayers: Map<object, Layer>;
  /** Each stack visited, the object holding it, and its length then. */
  readonly stacks: Array<[{ stack?: unknown }, Layer[], number]>;
}
// Keyed by `req.app`, the innermost app: its `parent` line decides which
// sub-app a `mounted_app` layer leads to.
const chainsByApp = new WeakMap<App, Chains>();

/**
 * The template Express matched, or undefined when no route matched or the
 * prefix could not be explained: then no `http.route` label at all, never a
 * raw path.
 */
export function expressRoute(request: unknown): string | undefined {
  const req = request as ExpressRequest;
  const route = req.route;
  if (route === undefined || typeof route.path !== 'string') return undefined;
  const base = typeof req.baseUrl === 'string' ? req.baseUrl : '';
  let cached = lastPrefix.get(route);
  if (cached?.baseUrl !== base) {
    const found = mountTemplate(req, route, base);
    // A prefix worked out from the whole path (a stale base) is the request's, not the route's.
    if (!found.stale) lastPrefix.set(route, found);
    cached = found;
  }
  return cached.prefix === undefined ? undefined : cached.prefix + route.path || '/';
}

/**
 * `base` (a concrete mount prefix) spelled as the templates it was mounted on; `stale` when `base`
 * was not the route's prefix and the whole path told it instead.
 */
function mountTemplate(req: ExpressRequest, route: object, base: string): { baseUrl: string; prefix: string | undefined; stale?: true } {
  const app = req.app;
  if (app === undefined) return { baseUrl: base, prefix: base === '' ? '' : undefined };
  let listed = chainsByApp.get(app);
  if (listed === undefined || listed.stacks.some(([owner, stack, length]) => owner.stack !== stack || stack.length !== length)) {
    listed = listChains(app);
    chainsByApp.set(app, listed);
  }
  const chains = listed.byRoute.get(route) ?? [];
  // A route on the outermost app itself, the common case: nothing to spell.
  if (base === '' && chains.some((chain) => chain.length === 0)) return { baseUrl: base, prefix: '' };
  // Each layer sees what Express showed it: the rest of the request's path,
  // not just of `base`. A mount that would take more than `base` (an optional
  // parameter swallowing the route's own segment) is then one Express left.
  const url = typeof req.originalUrl === 'string' ? req.originalUrl : '';
  const query = url.indexOf('?');
  const pathname = query === -1 ? url : url.slice(0, query);
  const path = pathname.startsWith(base) ? pathname : base;
  const budget = { left: MATCHES_PER_REQUEST };
  for (const chain of chains) {
    const spelled = spellChain(chain, path, budget);
    if (spelled?.consumed === base.length) return { baseUrl: base, prefix: spelled.template };
    if (budget.left < 0) return { baseUrl: base, prefix: undefined };
  }
  // No chain takes exactly `base`: the request had left the route's router. The chain whose
  // mounts take a start of the path, and whose route's own layer takes the rest, is the one.
  const layer = listed.routeLayers.get(route);
  for (const chain of layer === undefined ? [] : chains) {
    const spelled = spellChain(chain, pathname, budget);
    if (spelled !== undefined && matchLayer(layer!, pathname.slice(spelled.consumed) || '/') !== undefined) return { baseUrl: base, prefix: spelled.template, stale: true };
    if (budget.left < 0) break;
  }
  return { baseUrl: base, prefix: undefined, stale: true };
}

/** Every route's chains of mount layers, depth-first in stack order, from the outermost app above `app`. */
function listChains(app: App): Chains {
  // The apps from the outermost down to `app` (sub-apps mounted with app.use).
  const apps: App[] = [];
  for (let a: App | undefined = app; a !== undefined && apps.length < 8; a = a.parent) apps.unshift(a);
  const out: Chains = { byRoute: new Map(), routeLayers: new Map(), stacks: [] };
  let layersLeft = LAYERS_LISTED;
  const seen = new Set<unknown>();
  const visit = (owner: { stack?: unknown } | undefined, appIndex: number, chain: Layer[]): boolean => {
    const stack = owner?.stack;
    if (!Array.isArray(stack) || chain.length > 16) return true;
    // A router mounted on several paths is visited once per path, and checked for changes once.
    if (!seen.has(stack)) {
      seen.add(stack);
      out.stacks.push([owner!, stack, stack.length]);
    }
    for (const layer of stack as Layer[]) {
      if (--layersLeft < 0) return false;
      if (layer.route !== undefined) {
        let chains = out.byRoute.get(layer.route as object);
        if (chains === undefined) out.byRoute.set(layer.route as object, (chains = []));
        if (chains.length < MAX_CHAINS && chains[chains.length - 1] !== chain) chains.push(chain);
        if (!out.routeLayers.has(layer.route as object)) out.routeLayers.set(layer.route as object, layer);
        continue;
      }
      if (typeof layer.match !== 'function') continue;
      const inner = layer.handle;
      const next = Array.isArray(inner?.stack) ? visit(inner, appIndex, [...chain, layer])
        : layer.name === 'mounted_app' && apps[appIndex + 1] !== undefined ? visit(routerOf(apps[appIndex + 1]!), appIndex + 1, [...chain, layer])
        : true;
      if (!next) return false;
    }
    return true;
  };
  visit(routerOf(apps[0]!), 0, []);
  return out;
}

function routerOf(app: App): { stack?: unknown } | undefined {
  // Express 4 keeps the router in `_router` (its `router` getter throws); Express 5 in `router`.
  return '_router' in app ? app._router : app.router;
}

/** `path` matched layer by layer along `chain`, each matched part spelled as its template, and how much of `path` the chain took. */
function spellChain(chain: Layer[], path: string, budget: { left: number }): { template: string; consumed: number } | undefined {
  let rest = path;
  let template = '';
  for (const layer of chain) {
    if (--budget.left < 0) return undefined;
    const m = matchLayer(layer, rest);
    if (m === undefined) return undefined;
    const matched = withoutTrailingSlash(m.path ?? '');
    // '' is a router mounted on '/': it consumes nothing.
    if (!rest.startsWith(matched)) return undefined;
    // A RegExp mount (`app.use(/^\/v\d+/, api)`) has no template to spell: what it matched is the raw path.
    if (m.pattern !== undefined && typeof m.pattern !== 'string') return undefined;
    const part = typeof m.pattern === 'string' ? withoutTrailingSlash(m.pattern) : templateOf(layer, matched, m.params ?? {}, budget);
    if (part === undefined) return undefined;
    template += part;
    rest = rest.slice(matched.length);
  }
  return { template, consumed: path.length - rest.length };
}

/**
 * `/shops/7` with params {shop: '7'} -> `/shops/:shop`. Each parameter takes
 * a segment whose decoded text is its value, in order; when a value also
 * appears as a plain segment (`/v1/:version` seen as `/v1/v1`), each
 * placement is checked by matching the layer against a probe path with
 * stand-in values. Undefined when a value spans segments (wildcards).
 */
function templateOf(layer: Layer, matched: string, params: Record<string, string>, budget: { left: number }): string | undefined {
  // Express 4 compiles a mount path into a RegExp ending in this lookahead (in a group of
  // alternatives for an array of paths, before path-to-regexp 0.1.10); one that does not is the
  // app's own RegExp, whose matched text is a raw path and whose groups are no template's parameters.
  if (layer.regexp !== undefined && !COMPILED_MOUNT.test(layer.regexp.source)) return undefined;
  const names = Object.keys(params);
  const segments = matched.split('/');
  const placed = placedBefore.get(layer)?.get(segments.length);
  if (placed !== undefined && placed.chosen.length === names.length && placed.chosen.every((i, k) => decode(segments[i]!) === params[names[k]!])) return placed.template;
  if (names.length === 0) return remember(layer, segments.length, [], matched);
  const placements: number[][] = [];
  const place = (k: number, from: number, chosen: number[]): void => {
    if (placements.length > 8) return;
    if (k === names.length) {
      placements.push(chosen.slice());
      return;
    }
    for (let i = from; i < segments.length; i++) {
      if (decode(segments[i]!) !== params[names[k]!]) continue;
      chosen[k] = i;
      place(k + 1, i + 1, chosen);
    }
  };
  place(0, 1, []);
  if (placements.length === 0) return undefined;
  const spell = (chosen: number[], value: (k: number) => string): string => {
    const out = segments.slice();
    chosen.forEach((i, k) => (out[i] = value(k)));
    return out.join('/');
  };
  let found = placements.length === 1 ? placements[0] : undefined;
  // Digits, so that parameters restricted to numbers (`:id(\\d+)`) accept the
  // stand-ins too. A placement no probe confirms (a pattern that refuses
  // digits) gets no label rather than a guess.
  for (let i = 0; found === undefined && i < placements.length && --budget.left >= 0; i++) {
    const probe = spell(placements[i]!, (k) => `9${k}7`);
    const m = matchLayer(layer, probe);
    if (m !== undefined && names.every((name, k) => m.params?.[name] === `9${k}7`)) found = placements[i];
  }
  return found === undefined ? undefined : remember(layer, segments.length, found, spell(found, (k) => `:${names[k]}`));
}

// Per Express 4 mount layer and number of segments matched, where its
// parameters sat: in a path without optional parts or wildcards a parameter
// always takes the same segment, so a later match whose values sit there is
// spelled the same, with no search and no probe. It also keeps the letter
// case of the first match: Express matches paths case-insensitively by
// default, and `/SHOPS/7` and `/shops/7` must not become two labels.
const COMPILED_MOUNT = /\(\?=\\\/\|\$\)\)?$/;

const placedBefore = new WeakMap<Layer, Map<number, { chosen: number[]; template: string }>>();

function remember(layer: Layer, segments: number, chosen: number[], template: string): string {
  let bySegments = placedBefore.get(layer);
  if (bySegments === undefined) placedBefore.set(layer, (bySegments = new Map()));
  if (bySegments.size < 8) bySegments.set(segments, { chosen, template });
  return template;
}

function matchLayer(layer: Layer, path: string): LayerMatch | undefined {
  const m = layer.match(path);
  if (!m) return undefined;
  // Copies: Express 4 overwrites the layer's own at its next match.
  return m === true ? { path: layer.path, params: { ...layer.params } } : { path: m.path, params: { ...m.params }, pattern: m.pattern };
}

function withoutTrailingSlash(path: string): string {
  return path.endsWith('/') ? path.slice(0, -1) : path;
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
