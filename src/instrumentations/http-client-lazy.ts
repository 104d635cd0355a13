// instrumentation-http (with @opentelemetry/instrumentation under it) is the
// dearest thing the preload would load, and most services make no outgoing
// request in their first milliseconds. So it is loaded on the next turn of
// the event loop, or at once by the first http(s).request/get made before
// that: stand-ins sit on those four functions until then, so no request goes
// unmeasured.
import { syncBuiltinESMExports } from 'node:module';
import type * as Http from 'node:http';

type Fn = (...args: unknown[]) => unknown;
const NAMES = ['request', 'get'] as const;

/** Calls `enable` once: at the next turn of the event loop or at the first outgoing request, whichever comes first. Returns the function that cancels it. */
export function enableOnFirstRequest(enable: () => void): () => void {
  const modules = [require('node:http'), require('node:https')] as Array<typeof Http>;
  const originals: Array<[typeof Http, (typeof NAMES)[number], Fn]> = [];
  // The stand-ins that were still in place, and so were swapped back for the originals before `enable` wrapped them.
  const restored = new Set<Fn>();
  let done = false;
  const restore = (): void => {
    for (const [mod, name, fn] of originals) {
      if ((mod[name] as unknown as { promotelStandIn?: true }).promotelStandIn) {
        (mod as unknown as Record<string, Fn>)[name] = fn;
        restored.add(fn);
      }
    }
  };
  const run = (): void => {
    if (done) return;
    done = true;
    clearImmediate(timer);
    restore();
    enable();
  };
  for (const mod of modules) {
    for (const name of NAMES) {
      const original = mod[name] as unknown as Fn;
      originals.push([mod, name, original]);
      const standIn = function (this: unknown, ...args: unknown[]): unknown {
        run();
        // Put back in time, the original was wrapped by `enable`: the instrumented function serves
        // callers that kept the stand-in. If the app had wrapped the stand-in itself (nock, an OTel
        // SDK set up in code), `enable` wrapped the app's wrapper, which calls this: going back to
        // the module would loop forever, and the request is measured out there already.
        const next = restored.has(original) ? ((mod as unknown as Record<string, Fn>)[name] as Fn) : original;
        return next.apply(this, args);
      };
      (standIn as unknown as { promotelStandIn: true }).promotelStandIn = true;
      (mod as unknown as Record<string, Fn>)[name] = standIn;
    }
  }
  syncBuiltinESMExports();
  // Unref'd: a script that never reaches a second turn never pays for it.
  const timer = setImmediate(run);
  timer.unref();
  return () => {
    done = true;
    clearImmediate(timer);
    restore();
    syncBuiltinESMExports();
  };
}
