// The route template of a request Fastify handled (`/users/:id`), from the
// `tracing:fastify.request.handler` channel that Fastify 5 publishes as it
// calls a route's handler: the message names the route's URL (its plugins'
// prefixes included) and carries Fastify's request, whose `raw` is the
// node:http request the HTTP hook sees. The template is kept there for the
// hook to read as the response ends; no patching, and nothing runs for apps
// that are not Fastify's.
//
// What it cannot see: Fastify 4, which publishes nothing; and a request
// answered before its handler runs (an onRequest hook that refuses it, a
// failed schema validation, Fastify's 404), which then has no label.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { warnSkipped } from '../log';

const HANDLER_START = 'tracing:fastify.request.handler:start';
const ROUTE = Symbol('promotel.fastifyRoute');

interface HandlerStart {
  request?: { raw?: { [ROUTE]?: string } };
  route?: { url?: unknown };
}

/** The template Fastify matched for this node:http request, if its handler ran. */
export function fastifyRoute(req: object | undefined): string | undefined {
  return (req as { [ROUTE]?: string } | undefined)?.[ROUTE];
}

export function watchFastifyRoutes(): () => void {
  // A throw inside a diagnostics_channel subscriber would reach the app (see http-server.ts).
  const onStart = (message: unknown): void => {
    try {
      const { request, route } = message as HandlerStart;
      if (request?.raw && typeof route?.url === 'string') request.raw[ROUTE] = route.url;
    } catch (err) {
      warnSkipped('HTTP server metrics (Fastify route)', err, 'was served');
    }
  };
  subscribe(HANDLER_START, onStart);
  return () => unsubscribe(HANDLER_START, onStart);
}
