// Processes that start the service as a child. Package managers, watchers and
// supervisors preloaded through NODE_OPTIONS stay out, so that the service
// gets the endpoint; any other parent keeps it, and a child that wants that
// port for itself is told who holds it, not that promotel let it go.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isLauncher } from '../src/launchers';
import { freePort, startApp } from './helpers';

test('launchers are known by their entry script or bin name; an app is not a launcher', () => {
  for (const script of ['/usr/lib/node_modules/npm/bin/npm-cli.js', '/app/node_modules/.bin/nodemon', '/app/node_modules/.bin/tsx', '/app/node_modules/.bin/ts-node-dev', '/app/node_modules/.bin/node-dev', '/usr/local/bin/concurrently', '/usr/local/bin/forever', '/usr/local/bin/yarn-1.22.22.cjs']) {
    assert.equal(isLauncher(script), true, script);
  }
  for (const script of ['/app/server.js', '/app/tsx-app.js', '/app/node_modules/.bin/ts-node', undefined]) assert.equal(isLauncher(script), false, String(script));
});

test('a child that listens on the port its parent\'s promotel serves is told the parent holds it, not that promotel let it go', async () => {
  const port = await freePort();
  // A supervisor of its own making: runs the service as a child and exits with its code.
  const child = `require('node:http').createServer().listen(${port}, '127.0.0.1').on('error', (e) => { console.log('child', e.code); process.exit(3); })`;
  const script = `setTimeout(() => { const r = require('node:child_process').spawnSync(process.execPath, [...process.execArgv, '-e', ${JSON.stringify(child)}], { stdio: 'inherit' }); console.log('parent', process.pid, r.status); }, 500);`;
  const app = startApp('-e', { args: [script], env: { OTEL_EXPORTER_PROMETHEUS_PORT: String(port), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  const [, parent] = /^parent (\d+) 3$/m.exec(app.stdout()) ?? [];
  assert.ok(parent, app.stdout());
  assert.match(app.stdout(), /^child EADDRINUSE$/m);
  // One line, though promotel in the child never got to try the port: the app's listen() came first.
  assert.deepEqual(app.stderr().split('\n').filter((l) => l.startsWith('promotel ')), [
    `promotel warn: the application listens on port ${port}, the metrics port, which is held by its parent process (pid ${parent}), whose promotel serves metrics there: the application's listen() fails with EADDRINUSE unless that process lets the port go; give the application another port, or set OTEL_EXPORTER_PROMETHEUS_PORT to another port for that process`,
  ]);
});
