// The resource becomes target_info: service.name from OTEL_SERVICE_NAME, else
// the app's package.json name, else the script name.
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { detectServiceName, resourceAttributes } from '../src/resource';

test('service.name: OTEL_SERVICE_NAME, then OTEL_RESOURCE_ATTRIBUTES, then package.json, then the script', () => {
  const dir = mkdtempSync(join(tmpdir(), 'promotel-res-'));
  mkdirSync(join(dir, 'app', 'lib'), { recursive: true });
  writeFileSync(join(dir, 'app', 'package.json'), JSON.stringify({ name: 'checkout' }));
  writeFileSync(join(dir, 'app', 'lib', 'main.js'), '');
  writeFileSync(join(dir, 'loose.mjs'), '');
  const script = join(dir, 'app', 'lib', 'main.js');

  assert.equal(detectServiceName(script), 'checkout');
  assert.equal(detectServiceName(join(dir, 'loose.mjs')), 'loose');
  assert.equal(detectServiceName(undefined), 'unknown_service:node');

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
