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
  // Per original that was still covered by its stand-in (and so swapped back before `enable` wrapped
  // it): what `enable` put in its place. Stand-ins kept by callers go there, not to whatever the
  // module holds by the time they are called.
  const instrumented = new Map<Fn, Fn>();
  const restored: Array<[typeof Http, (typeof NAMES)[number], Fn]> = [];
  let done = false;
  const restore = (): void => {
    for (const [mod, name, fn] of originals) {
      if (!(mod[name] as unknown as { promotelStandIn?: true }).promotelStandIn) continue;
      try {
        (mod as unknown as Record<string, Fn>)[name] = fn;
        restored.push([mod, name, fn]);
      } catch {
        // The app froze the module since (Object.freeze, hardening): the stand-in stays and passes
        // each call to the original. `enable` cannot patch a frozen module either, and says so.
      }
    }
  };
  const run = (): void => {
    if (done) return;
    done = true;
    clearImmediate(timer);
    restore();
    enable();
    for (const [mod, name, fn] of restored) instrumented.set(fn, (mod as unknown as Record<string, Fn>)[name] as Fn);
  };
  for (const mod of modules) {
    for (const name of NAMES) {
      const original = mod[name] as unknown as Fn;
      originals.push([mod, name, original]);
      const standIn = function (this: unknown, ...args: unknown[]): unknown {
        run();
        // Put back in time, the original was wrapped by `enable`: that instrumented function serves
        // callers that kept the stand-in. If the app had wrapped the stand-in itself before (nock, an
        // OTel SDK set up in code), `enable` wrapped the app's wrapper, which calls this: the request
        // is measured out there, and the original serves it. Never the module's current function: an
        // app wrapper installed around a kept stand-in would make that a loop.
        return (instrumented.get(original) ?? original).apply(this, args);
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
