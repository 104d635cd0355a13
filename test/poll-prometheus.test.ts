// The README's Prometheus job for the sidecar's /probe, run for real: a
// Prometheus server started with that job (only the sidecar's address put in)
// scrapes /probe?target=NAME for each listed target, and its query API
// returns each target's probe result, labelled by target.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { eventually, ROOT, startPrometheus } from './helpers';
import { startPoller, startTargets } from './poll-helpers';

test('Prometheus with the README\'s /probe job gets every listed target\'s probe result', async () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /A Prometheus job for the multi-target endpoint[^\n]*\n\n```yaml\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'the README has the /probe job');
  const t = await startTargets();
  const poller = await startPoller(`
interval: 0s
targets:
  - { name: demo, url: "${t.base}/ok" }
  - { name: shop-api, url: "${t.base}/fail" }
`);
  const config = parse(block[1]!) as { scrape_configs: Array<Record<string, unknown> & { relabel_configs: Array<Record<string, string>> }> };
  const job = config.scrape_configs[0]!;
  // The one thing a user changes: where the sidecar is.
  for (const rule of job.relabel_configs) if (rule.replacement === 'promotel-sidecar:9000') rule.replacement = new URL(poller.url).host;
  Object.assign(job, { scrape_interval: '1s', scrape_timeout: '900ms' });
  const prom = await startPrometheus(stringify(config));
  try {
    const results = await eventually(async () => {
      const r = await prom.query('promotel_probe_success{job="promotel-probe"}');
      return r.length === 2 ? r : undefined;
    }, 20_000, 250);
    const byTarget = Object.fromEntries(results.map((r) => [r.metric.target, r.value[1]]));
    assert.deepEqual(byTarget, { demo: '1', 'shop-api': '0' });
    const status = await prom.query('promotel_probe_http_status_code{job="promotel-probe"}');
    assert.deepEqual(Object.fromEntries(status.map((r) => [r.metric.target, r.value[1]])), { demo: '200', 'shop-api': '503' });
    // __param_target made instance the target name as well, the blackbox convention for one series per target.
    assert.deepEqual(results.map((r) => r.metric.instance).sort(), ['demo', 'shop-api']);
  } finally {
    await prom.stop();
    await poller.stop();
    await t.close();
  }
});
