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
// An ES module's `import` passes no such wrapper. Where Node has
// module.registerHooks (22.15+, 23.5+) and the caller asks for it (an app
// whose entry is an ES module, see `entryIsModule`), one resolve hook sees
// every require() and import instead, before the app gets the module: a named
// import (`import { connect } from 'node:http2'`) is bound to what `onLoad`
// put there, since Node builds a builtin's ES-module view when it is first
// imported, after resolving it. A resolution alone counts too
// (import.meta.resolve, and require.resolve on Node 24+): the module is then
// loaded for `onLoad`. Not for CommonJS apps: any resolve hook makes every
// require() slower (bench/resolve-hook.mjs; the README has its numbers), and the wrapper sees
// their require()s anyway. The hook deregisters once it has seen the module.
// On Node 20 the only hooks run on a thread of their own (module.register),
// too dear for this.
//
// Neither sees process.getBuiltinModule(), an import on Node 20, nor a load
// before the agent's own (an earlier --import), so process.moduleLoadList is
// also read at the checkpoints the caller picks.
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';

type Require = (this: unknown, id: string) => unknown;
interface ResolveResult {
  url?: string;
}
type Resolve = (specifier: string, context: object, next: (specifier: string, context: object) => ResolveResult) => ResolveResult;
interface ModuleApi {
  prototype: { require: Require };
  registerHooks?: (hooks: { resolve: Resolve }) => { deregister(): void };
}
const Module = require('node:module') as ModuleApi;
const proto = Module.prototype;
/** Whether this Node has module.registerHooks (22.15+, 23.5+). */
export const hasResolveHooks = typeof Module.registerHooks === 'function';

export interface BuiltinWatch {
  /** Looks at process.moduleLoadList now: for an ES module's `import`, which no hook sees. */
  check(): void;
  stop(): void;
}

/**
 * Calls `onLoad(exports)` once, as soon as the app has loaded node:`name`. `onLoad` must not throw:
 * it runs inside the app's require() or import. `resolveHooks`: a resolve hook where Node has
 * module.registerHooks, instead of the require wrapper.
 */
export function onBuiltinLoad(name: string, onLoad: (exports: unknown) => void, options: { resolveHooks: boolean }): BuiltinWatch {
  const entry = `NativeModule ${name}`;
  const url = `node:${name}`;
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
    if (!seen && (id === name || id === url)) found(exports);
    return exports;
  };
  let hooks: { deregister(): void } | undefined;
  // Only if nothing wrapped it since; otherwise ours stays and passes every call through.
  const unwrap = (): void => {
    hooks?.deregister();
    hooks = undefined;
    if (proto.require === wrapper) proto.require = original;
  };
  // Only looks at what resolved: the app's resolution is whatever the next hook (or Node) says, and
  // nothing here may throw into it. process.getBuiltinModule (22.3+, so wherever registerHooks is)
  // resolves nothing: require() would run every hook registered after this one a second time, and
  // one that serves the module some other way could fail where the app's own import would not.
  const resolve: Resolve = (specifier, context, next) => {
    const result = next(specifier, context);
    if (!seen && result?.url === url) {
      try {
        found((process as unknown as { getBuiltinModule(id: string): unknown }).getBuiltinModule(url));
      } catch {
        // onLoad reports its own failures; the app's import goes on as without the agent.
      }
    }
    return result;
  };

  const check = (): void => {
    if (seen) return;
    const list = (process as unknown as { moduleLoadList: readonly string[] }).moduleLoadList;
    // The list only grows: each check reads only what was added since the last.
    for (; scanned < list.length; scanned++) {
      if (list[scanned] === entry) return found(require(url));
    }
  };
  check();
  if (!seen) {
    if (options.resolveHooks && hasResolveHooks) {
      try {
        hooks = Module.registerHooks!({ resolve });
      } catch {
        // A Node whose hooks refuse this one: the require wrapper sees as much as on Node 20.
      }
    }
    if (hooks === undefined) proto.require = wrapper;
  }
  return {
    check,
    stop: () => {
      seen = true;
      unwrap();
    },
  };
}

/**
 * Whether the app's entry script is an ES module, as Node decides by its name: .mjs and .mts are,
 * .cjs and .cts are not, and any other file is one if the nearest package.json says
 * `"type": "module"`. The entry is first found as Node finds it (`node .` is the package's main or
 * index.js; a symlink is followed unless --preserve-symlinks-main). A .js file that Node 22+ finds
 * to be an ES module only by its syntax is not told apart (false), nor is an entry that is not a
 * file (`-e`, stdin).
 */
export function entryIsModule(main: string | undefined = process.argv[1]): boolean {
  if (!main) return false;
  const file = entryFile(main);
  if (/\.m[jt]s$/.test(file)) return true;
  if (/\.c[jt]s$/.test(file)) return false;
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    let text: string | undefined;
    try {
      text = readFileSync(join(dir, 'package.json'), 'utf8');
    } catch {
      // none here (or unreadable): Node looks further up too
    }
    if (text !== undefined) {
      try {
        return (JSON.parse(text) as { type?: unknown }).type === 'module';
      } catch {
        return false;
      }
    }
    if (dirname(dir) === dir) return false;
  }
}

function entryFile(main: string): string {
  let file = resolvePath(main);
  try {
    // A directory (`node .`), or a name without its extension.
    file = require.resolve(file);
  } catch {
    // Not a CommonJS path (an extensionless .mjs, say): Node's ES loader takes the name as it is.
  }
  const preserve = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].includes('--preserve-symlinks-main');
  if (preserve) return file;
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}
