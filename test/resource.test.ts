// The resource becomes target_info: service.name from OTEL_SERVICE_NAME, else
// the app's package.json name, else the script name.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { detectServiceName, resourceAttributes } from '../src/resource';
import { REGISTER, eventually, freePort, get, startApp } from './helpers';

test('service.name: OTEL_SERVICE_NAME, then OTEL_RESOURCE_ATTRIBUTES, then package.json, then the script', () => {
  const dir = mkdtempSync(join(tmpdir(), 'promotel-res-'));
  mkdirSync(join(dir, 'app', 'lib'), { recursive: true });
  writeFileSync(join(dir, 'app', 'package.json'), JSON.stringify({ name: 'checkout' }));
  writeFileSync(join(dir, 'app', 'lib', 'main.js'), '');
  writeFileSync(join(dir, 'loose.mjs'), '');
  const script = join(dir, 'app', 'lib', 'main.js');

  assert.equal(detectServiceName(script), 'checkout');
  // cwd: a directory without a package.json, or it would name the script.
  assert.equal(detectServiceName(join(dir, 'loose.mjs'), {}, dir), 'loose');
  assert.equal(detectServiceName(undefined, {}), 'unknown_service:node');

  assert.equal(resourceAttributes({ serviceName: 'env-name', resourceAttributes: { 'service.name': 'attr-name' } }, script)['service.name'], 'env-name');
  assert.equal(resourceAttributes({ serviceName: undefined, resourceAttributes: { 'service.name': 'attr-name' } }, script)['service.name'], 'attr-name');
  assert.equal(resourceAttributes({ serviceName: undefined, resourceAttributes: {} }, script)['service.name'], 'checkout');
});

test('service.instance.id is a fresh UUID unless given; host.name and the runtime are described', () => {
  const a = resourceAttributes({ serviceName: 's', resourceAttributes: {} });
  const b = resourceAttributes({ serviceName: 's', resourceAttributes: {} });
  assert.match(String(a['service.instance.id']), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(a['service.instance.id'], b['service.instance.id']);
  assert.equal(resourceAttributes({ serviceName: 's', resourceAttributes: { 'service.instance.id': 'pod-7' } })['service.instance.id'], 'pod-7');
  assert.equal(a['process.runtime.name'], 'nodejs');
  assert.equal(a['process.runtime.version'], process.versions.node);
  assert.equal(typeof a['host.name'], 'string');
});

// A launcher's package is not the app's: a CLI under node_modules, or pm2's ProcessContainer.
function project(): { dir: string; cli: string } {
  const dir = mkdtempSync(join(tmpdir(), 'promotel-launch-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'shop' }));
  mkdirSync(join(dir, 'node_modules', 'fakecli', 'bin'), { recursive: true });
  writeFileSync(join(dir, 'node_modules', 'fakecli', 'package.json'), JSON.stringify({ name: 'fakecli' }));
  // The CLI runs the app given as its argument, as nodemon-likes and pm2 do.
  const cli = join(dir, 'node_modules', 'fakecli', 'bin', 'cli.js');
  writeFileSync(cli, "require(require('path').resolve(process.argv[2]));\n");
  writeFileSync(join(dir, 'app.js'), "setTimeout(() => {}, 3000);\n");
  return { dir, cli };
}

test('service.name: a CLI under node_modules is skipped; pm_exec_path names the app; then the package.json of the working directory', () => {
  const { dir, cli } = project();
  assert.equal(detectServiceName(cli, {}, dir), 'shop');
  assert.equal(detectServiceName(cli, {}, tmpdir()), 'cli');
  const elsewhere = mkdtempSync(join(tmpdir(), 'promotel-app-'));
  writeFileSync(join(elsewhere, 'package.json'), JSON.stringify({ name: 'inventory' }));
  writeFileSync(join(elsewhere, 'srv.js'), '');
  assert.equal(detectServiceName(cli, { pm_exec_path: join(elsewhere, 'srv.js') }, dir), 'inventory');
  // A script of its own, started by that app (it inherits pm_exec_path): its own package.
  assert.equal(detectServiceName(join(dir, 'app.js'), { pm_exec_path: join(elsewhere, 'srv.js') }, tmpdir()), 'shop');
});

test('`node node_modules/fakecli/bin/cli.js app.js` under the preload: target_info names the app\'s package', async () => {
  const { dir, cli } = project();
  const port = await freePort();
  const app = startApp(cli, { args: ['app.js'], cwd: dir, env: { OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(port) } });
  try {
    const body = (await eventually(() => get(`http://127.0.0.1:${port}/metrics`))).body;
    const info = /^target_info\{(.*)\} 1$/m.exec(body)?.[1] ?? '';
    assert.match(info, /(^|,)service_name="shop"(,|$)/);
    assert.match(info, /(^|,)telemetry_sdk_version="2\.12\.0"(,|$)/);
  } finally {
    app.kill();
  }
});

test('a relative script path (`node -`, an app that rewrites argv[1]) names the service and never stalls the app', async () => {
  // Outside any package: the search for a package.json goes all the way up.
  const dir = mkdtempSync(join(tmpdir(), 'promotel-rel-'));
  const ownName = (port: number) => [
    'setTimeout(async () => {',
    `  const body = await (await fetch('http://127.0.0.1:${port}/metrics')).text();`,
    "  console.log(/service_name=\"([^\"]*)\"/.exec(body)[1]);",
    '}, 300);',
  ].join('\n');
  const run = async (args: string[], input?: string) => {
    const port = await freePort();
    const script = ownName(port);
    if (input === undefined) writeFileSync(join(dir, 'rewrites.js'), `process.argv[1] = 'mytool';\n${script}`);
    const res = spawnSync(process.execPath, ['--require', REGISTER, ...args], {
      cwd: dir, input: input === undefined ? undefined : script, encoding: 'utf8', timeout: 15_000,
      env: { PATH: process.env.PATH, OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(port) },
    });
    return `${res.status} ${res.stdout.trim()} ${res.stderr.trim()}`;
  };
  assert.equal(await run(['-'], ''), '0 unknown_service:node ');
  assert.equal(await run(['rewrites.js']), '0 mytool ');
  // And in-process, the pure function: a relative path is taken from the working directory.
  mkdirSync(join(dir, 'svc'));
  writeFileSync(join(dir, 'svc', 'package.json'), JSON.stringify({ name: 'relative-svc' }));
  assert.equal(detectServiceName(join('svc', 'main.js'), {}, dir), 'relative-svc');
});

test('an empty service.name or service.instance.id in OTEL_RESOURCE_ATTRIBUTES falls back to the detected name and a fresh id', () => {
  const dir = mkdtempSync(join(tmpdir(), 'promotel-res-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'billing' }));
  writeFileSync(join(dir, 'main.js'), '');
  const a = resourceAttributes({ serviceName: undefined, resourceAttributes: { 'service.name': '', 'service.instance.id': '' } }, join(dir, 'main.js'), {});
  assert.equal(a['service.name'], 'billing');
  assert.match(String(a['service.instance.id']), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test('telemetry.sdk.version is the version of the sdk-metrics in use', () => {
  const a = resourceAttributes({ serviceName: 's', resourceAttributes: {} });
  assert.equal(a['telemetry.sdk.version'], JSON.parse(readFileSync(require.resolve('@opentelemetry/sdk-metrics/package.json'), 'utf8')).version);
  assert.equal(a['telemetry.sdk.version'], '2.12.0');
});
