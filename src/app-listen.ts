// Tells the metrics server when the application is about to listen(), before
// it binds, so that the agent can hand over a port the app wants. Node 20.16+
// and 22.3+ publish every net.Server.listen() on a diagnostics channel; older
// versions (20.6-20.15, 21, 22.0-22.2) publish nothing, and there one wrapper
// of net.Server.prototype.listen says the same. Without it, an app on the
// metrics port would die of EADDRINUSE on those versions.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Server } from 'node:net';

/** What node:net publishes: the server and listen()'s arguments as one options object. */
export interface ListenOptions {
  port?: unknown;
  host?: unknown;
  ipv6Only?: unknown;
  path?: unknown;
}
export interface ListenMessage {
  server?: object;
  options?: ListenOptions;
}
type Watcher = (message: ListenMessage) => void;

const LISTEN_START = 'tracing:net.server.listen:asyncStart';

/** Whether this Node.js publishes `tracing:net.server.listen` (added in 22.3.0, backported to 20.16.0). */
export function publishesListen(version: string = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major === 20) return minor >= 16;
  if (major === 22) return minor >= 3;
  return major > 22;
}

/**
 * listen()'s arguments as node:net normalizes them: an options object as given, a string that
 * is not a number >= 0 as a pipe path, anything else as a port with an optional host string after it.
 */
export function listenOptions(args: readonly unknown[]): ListenOptions {
  if (args.length === 0) return {};
  const first = args[0];
  if (typeof first === 'object' && first !== null) return first as ListenOptions;
  if (typeof first === 'string' && !(Number(first) >= 0)) return { path: first };
  return typeof args[1] === 'string' ? { port: first, host: args[1] } : { port: first };
}

const watchers = new Set<Watcher>();
let wrapped = false;

function wrapListen(): void {
  if (wrapped) return;
  wrapped = true;
  type Listen = (this: Server & { _handle?: unknown }, ...args: unknown[]) => unknown;
  const proto = Server.prototype as unknown as { listen: Listen };
  const listen = proto.listen;
  proto.listen = function (this: Server & { _handle?: unknown }, ...args: unknown[]) {
    // A server already listening throws ERR_SERVER_ALREADY_LISTEN in the original: nothing to announce.
    if (watchers.size > 0 && this._handle == null) {
      const message: ListenMessage = { server: this, options: listenOptions(args) };
      for (const watch of watchers) {
        try {
          watch(message);
        } catch {
          // A watcher reports its own failures; the app's listen() goes on whatever happens.
        }
      }
    }
    return listen.apply(this, args);
  };
}

/** Calls `watch` before each listen() of any server in this thread; returns the function that stops it. */
export function watchListen(watch: Watcher, nodeVersion?: string): () => void {
  if (publishesListen(nodeVersion)) {
    const onMessage = (message: unknown): void => watch(message as ListenMessage);
    subscribe(LISTEN_START, onMessage);
    return () => unsubscribe(LISTEN_START, onMessage);
  }
  // The wrapper stays once installed (another library may have wrapped it since); with no watcher it only forwards.
  wrapListen();
  watchers.add(watch);
  return () => watchers.delete(watch);
}
