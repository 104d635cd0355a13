// What a module.registerHooks resolve hook costs an app at start-up: promotel
// registers one for ES-module apps on Node 22.15+ (src/builtin-load.ts), so
// that a named `import { connect } from 'node:http2'` is measured. While any
// resolve hook is registered, every require() takes Node's slower path, so the
// cost grows with the CommonJS modules an app loads, whatever its entry.
//
// Each row alternates two preloads over the same entry, in fresh processes:
// an empty one and one that registers a pass-through hook (a hook that only
// calls the next one: promotel's adds one string comparison). Each process
// times itself (performance.now() and CPU at the end of its entry), so that
// spawning costs nothing to the difference. The entries load
// auto-instrumentations-node and @grpc/grpc-js (devDependencies), about 500
// CommonJS modules, as a require() from a .cjs file and as an import from a .mjs file.
//   node bench/resolve-hook.mjs [--node PATH] [--pairs N]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, option } from './peers.mjs';

const node = option('node', process.execPath);
const pairs = Number(option('pairs', '30'));

const probe = spawnSync(node, ['-p', 'process.version + " " + typeof require("node:module").registerHooks'], { encoding: 'utf8' });
if (probe.status !== 0) {
  console.error(`--node ${node} did not run (${probe.error?.message ?? probe.stderr.trim()}): pass the path of a node binary, such as .tmp/node/24.22.3/bin/node from bash .ci/node-versions`);
  process.exit(1);
}
const version = probe.stdout.trim();
if (!version.endsWith(' function')) {
  console.log(`${version.split(' ')[0]} has no module.registerHooks (22.15+, 23.5+): nothing to measure; pass --node PATH`);
  process.exit(0);
}

const require = createRequire(import.meta.url);
const deps = ['@opentelemetry/auto-instrumentations-node', '@grpc/grpc-js'].map((d) => JSON.stringify(require.resolve(d)));
const dir = mkdtempSync(join(tmpdir(), 'promotel-resolve-hook-'));
const report = 'console.log(Object.keys(req.cache).length, performance.now(), (process.cpuUsage().user + process.cpuUsage().system) / 1000);';
const files = {
  'empty.cjs': '',
  'hook.cjs': "require('node:module').registerHooks({ resolve: (specifier, context, next) => next(specifier, context) });",
  'app.cjs': `${deps.map((d) => `require(${d});`).join(' ')}\nconst req = require;\n${report}`,
  'app.mjs': `${deps.map((d) => `import ${d};`).join(' ')}\nimport { createRequire } from 'node:module';\nconst req = createRequire(import.meta.url);\n${report}`,
};
for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);

/** [CommonJS modules loaded, ms to the end of the entry, CPU ms] of one fresh process. */
function run(preload, entry) {
  const r = spawnSync(node, ['--require', join(dir, preload), join(dir, entry)], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${entry} with ${preload} failed: ${r.stderr}`);
  return r.stdout.trim().split(' ').map(Number);
}

try {
  console.log(`Node.js ${version.split(' ')[0]}, ${pairs} alternating pairs per row\n`);
  console.log('| entry | CommonJS modules | ms to the end of the entry, no hook | added by the hook, ms (median) | CPU ms added (median) |');
  console.log('|---|---|---|---|---|');
  for (const entry of ['app.cjs', 'app.mjs']) {
    for (let i = 0; i < 3; i++) run('empty.cjs', entry); // the files into the page cache
    const base = [];
    const wall = [];
    const cpu = [];
    let modules = 0;
    for (let i = 0; i < pairs; i++) {
      const order = i % 2 ? ['hook.cjs', 'empty.cjs'] : ['empty.cjs', 'hook.cjs'];
      const t = Object.fromEntries(order.map((p) => [p, run(p, entry)]));
      modules = t['empty.cjs'][0];
      base.push(t['empty.cjs'][1]);
      wall.push(t['hook.cjs'][1] - t['empty.cjs'][1]);
      cpu.push(t['hook.cjs'][2] - t['empty.cjs'][2]);
    }
    console.log(`| ${entry} | ${modules} | ${median(base).toFixed(0)} | ${median(wall).toFixed(1)} | ${median(cpu).toFixed(1)} |`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
