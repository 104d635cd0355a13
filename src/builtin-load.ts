// Tells the agent when the app has loaded a builtin module that the agent
// must not load itself because most apps never need it (node:http2 costs
// 9 ms and 2.3 MiB on Node 20.20).
//
// A CommonJS require() is seen as it happens, through one wrapper of
// Module.prototype.require (not Module._load, which also runs the main module:
// its stack traces would show the agent). The caller gets the module only
// after `onLoad` has run, so even `const { connect } = require('node:http2')`
// gets what `onLoad` put there. The wrapper is removed once the module is
// seen, unless something wrapped it since (instrumentation-http's
// require-in-the-middle does, one turn after start): then it stays, one
// comparison per require.
//
// An ES module's `import` (and process.getBuiltinModule) goes through no hook
// the agent can use on Node 20 (module.register hooks run on a thread of their
// own, too dear to start for this), so process.moduleLoadList is read at the
// checkpoints the caller picks.
type Require = (this: unknown, id: string) => unknown;
const proto = (require('node:module') as { prototype: { require: Require } }).prototype;

export interface BuiltinWatch {
  /** Looks at process.moduleLoadList now: for an ES module's `import`, which no hook sees. */
  check(): void;
  stop(): void;
}

/** Calls `onLoad(exports)` once, as soon as the app has loaded node:`name`. */
export function onBuiltinLoad(name: string, onLoad: (exports: unknown) => void): BuiltinWatch {
  const entry = `NativeModule ${name}`;
  let seen = false;
  let scanned = 0;
  const original = proto.require;

  const found = (exports: unknown): void => {
    if (seen) return;
    seen = true;
    unwrap();
    onLoad(exports);
  };
  // Named so that a stack trace through it reads `Module.require`, as without it.
  const wrapper: Require = function require(this: unknown, id) {
    // eslint-disable-next-line prefer-rest-params
    const exports = original.apply(this, arguments as unknown as Parameters<Require>);
    if (!seen && (id === name || id === `node:${name}`)) found(exports);
    return exports;
  };
  // Only if nothing wrapped it since; otherwise ours stays and passes every call through.
  const unwrap = (): void => {
    if (proto.require === wrapper) proto.require = original;
  };

  const check = (): void => {
    if (seen) return;
    const list = (process as unknown as { moduleLoadList: readonly string[] }).moduleLoadList;
    // The list only grows: each check reads only what was added since the last.
    for (; scanned < list.length; scanned++) {
      if (list[scanned] === entry) return found(require(`node:${name}`));
    }
  };
  check();
  if (!seen) proto.require = wrapper;
  return {
    check,
    stop: () => {
      seen = true;
      unwrap();
    },
  };
}
