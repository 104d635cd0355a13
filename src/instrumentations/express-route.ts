// The route template of a request Express handled (`/shops/:shop/orders/:id`),
// read after the response from what Express leaves on the request, with no
// patching: `req.route.path` is the template of the matched route, but
// `req.baseUrl` is the *concrete* path the enclosing routers were mounted on
// (`/shops/7`). A mount path with parameters would put raw values in the
// label, so such a prefix is turned back into its template by matching it
// against the app's router stack again: `router.stack`, `layer.match()` and
// `app.parent`, which Express 4 and 5 share. Express 5's match() also names
// the template it matched; Express 4's leaves only the concrete path and
// the parameters on the layer, so the template is worked out from those.

interface Layer {
  route?: unknown;
  name?: string;
  handle?: { stack?: unknown };
  /** Express 4: true, with `path` and `params` set on the layer; Express 5: the match itself. */
  match(path: string): boolean | LayerMatch;
  path?: string;
  params?: Record<string, string>;
}

interface LayerMatch {
  path?: string;
  params?: Record<string, string>;
  /** Express 5: the mount path (template) that matched. */
  pattern?: unknown;
}

interface App {
  _router?: { stack?: Layer[] };
  router?: { stack?: Layer[] };
  parent?: App;
}

interface ExpressRequest {
  route?: { path?: unknown };
  baseUrl?: unknown;
  app?: App;
}

/** Layers tried per request before giving up: a bound on the cost for large apps. */
const BUDGET = 64;

// Per route, the last prefix worked out and the base URL it came from: with
// mount paths free of parameters (the usual case) the base URL is the same
// for every request of a route, and the stack is not walked again.
const lastPrefix = new WeakMap<object, { baseUrl: string; prefix: string | undefined }>();

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
  if (base === '') return route.path || '/';
  let cached = lastPrefix.get(route);
  if (cached?.baseUrl !== base) {
    cached = { baseUrl: base, prefix: mountTemplate(req, route, base) };
    lastPrefix.set(route, cached);
  }
  return cached.prefix === undefined ? undefined : cached.prefix + route.path || '/';
}

/** `base` (a concrete mount prefix) spelled as the templates it was mounted on. */
function mountTemplate(req: ExpressRequest, route: object, base: string): string | undefined {
  // The apps from the outermost down to the one that handled the request (sub-apps mounted with app.use).
  const apps: App[] = [];
  for (let app = req.app; app !== undefined && apps.length < 8; app = app.parent) apps.unshift(app);
  if (apps.length === 0) return undefined;
  const budget = { left: BUDGET };
  return walk(stackOf(apps[0]!), base, route, apps, 0, budget);
}

function stackOf(app: App): Layer[] | undefined {
  // Express 4 keeps the router in `_router` (its `router` getter throws); Express 5 in `router`.
  const router = '_router' in app ? app._router : app.router;
  return Array.isArray(router?.stack) ? router.stack : undefined;
}

/** Depth-first over the mounted routers and sub-apps whose mount path matches the start of `rest`. */
function walk(stack: Layer[] | undefined, rest: string, route: object, apps: App[], appIndex: number, budget: { left: number }): string | undefined {
  if (stack === undefined) return undefined;
  if (rest === '') return stack.some((layer) => layer.route === route) ? '' : undefined;
  for (const layer of stack) {
    if (layer.route !== undefined || typeof layer.match !== 'function') continue;
    const inner = layer.handle?.stack;
    const subApp = layer.name === 'mounted_app' ? apps[appIndex + 1] : undefined;
    if (!Array.isArray(inner) && subApp === undefined) continue;
    if (--budget.left < 0) return undefined;
    const m = matchLayer(layer, rest);
    if (m === undefined) continue;
    const matched = withoutTrailingSlash(m.path ?? '');
    // '' is a router mounted on '/': it consumes nothing, the search goes on inside it.
    if (!rest.startsWith(matched)) continue;
    const template = typeof m.pattern === 'string' ? withoutTrailingSlash(m.pattern) : templateOf(layer, matched, m.params ?? {}, budget);
    if (template === undefined) continue;
    const tail = Array.isArray(inner)
      ? walk(inner as Layer[], rest.slice(matched.length), route, apps, appIndex, budget)
      : walk(stackOf(subApp!), rest.slice(matched.length), route, apps, appIndex + 1, budget);
    if (tail !== undefined) return template + tail;
  }
  return undefined;
}

/**
 * `/shops/7` with params {shop: '7'} -> `/shops/:shop`. Each parameter takes
 * a segment whose decoded text is its value, in order; when a value also
 * appears as a plain segment (`/v1/:version` seen as `/v1/v1`), each
 * placement is checked by matching the layer against a probe path with
 * stand-in values. Undefined when a value spans segments (wildcards).
 */
function templateOf(layer: Layer, matched: string, params: Record<string, string>, budget: { left: number }): string | undefined {
  const names = Object.keys(params);
  if (names.length === 0) return matched;
  const segments = matched.split('/');
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
  let found = placements[0]!;
  if (placements.length > 1) {
    // Digits, so that parameters restricted to numbers (`:id(\\d+)`) accept the stand-ins too.
    for (const chosen of placements) {
      if (--budget.left < 0) break;
      const probe = spell(chosen, (k) => `9${k}7`);
      const m = matchLayer(layer, probe);
      if (m !== undefined && names.every((name, k) => m.params?.[name] === `9${k}7`)) {
        found = chosen;
        break;
      }
    }
  }
  return spell(found, (k) => `:${names[k]}`);
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
