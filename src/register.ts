// The preload entry: `node --require promotel/register` or
// `node --import promotel/register`. It may run twice (NODE_OPTIONS plus a
// flag, or both loaders); it starts the agent once. Nothing here may throw:
// a failing agent is a warning, never a failing application.
//
// It stays out of processes that are not the service, although NODE_OPTIONS
// preloads it there too: a package manager or watcher that starts the app as
// a child (`npm start` in a container) would otherwise take the port for as
// long as it lives and leave the app without its endpoint; and a
// worker_threads thread is not a process of its own, its process is measured
// by the main thread.
import { isLauncher } from './launchers';
import { isMainThread } from 'node:worker_threads';

const LOADED = Symbol.for('promotel.register');
const state = globalThis as { [LOADED]?: boolean };

if (!state[LOADED] && isMainThread && !isLauncher(process.argv[1])) {
  state[LOADED] = true;
  // OTEL_SDK_DISABLED=true must load nothing, so it is read before any require.
  if (process.env.OTEL_SDK_DISABLED?.trim().toLowerCase() !== 'true') {
    try {
      (require('./agent') as typeof import('./agent')).start();
    } catch (err) {
      try {
        process.stderr.write(`promotel warn: the agent could not start: ${err instanceof Error ? err.message : String(err)}; the application runs without metrics (set OTEL_SDK_DISABLED=true to skip the agent)\n`);
      } catch {
        // nowhere to report
      }
    }
  }
}
