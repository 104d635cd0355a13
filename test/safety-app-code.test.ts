// What the application's own code may do to the things the agent hooks, and
// what it sees then: the same results as without the agent, and at most one
// line from the agent that names the cause and the fix.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, freePort, startApp } from './helpers';

const agentLines = (stderr: string): string[] => stderr.split('\n').filter((l) => l.startsWith('promotel '));

async function run(script: string, preload: 'none' | 'require'): Promise<{ code: number | null; stdout: string; lines: string[] }> {
  const app = startApp(join(FIXTURES, script), { preload, env: { OTEL_EXPORTER_PROMETHEUS_PORT: '0', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1' } });
  const exit = await Promise.race([app.exited, new Promise<{ code: null }>((r) => setTimeout(() => r({ code: null }), 15_000))]);
  app.kill();
  return { code: exit.code, stdout: app.stdout(), lines: agentLines(app.stderr()) };
}

test('an app that freezes node:http and node:https: its requests behave as without the agent, which says once that it cannot measure them', async () => {
  const bare = await run('frozen-http.js', 'none');
  const agent = await run('frozen-http.js', 'require');
  assert.deepEqual(bare, { code: 0, stdout: 'request error ECONNREFUSED\nok 200\n', lines: [] });
  assert.deepEqual([agent.code, agent.stdout], [bare.code, bare.stdout]);
  assert.equal(agent.lines.length, 1, agent.lines.join('\n'));
  assert.match(agent.lines[0]!, /^promotel warn: HTTP client metrics could not start: .*; the application runs without them \(set PROMOTEL_HTTP_METRICS=false to skip them quietly\)$/);
});

test('an app that registers its own MeterProvider after the preload is told, once, that its readers get none of the API metrics, and how to choose', async () => {
  const bare = await run('app-sdk-after.js', 'none');
  const agent = await run('app-sdk-after.js', 'require');
  assert.deepEqual(bare, { code: 0, stdout: 'app exporter got: ["orders"]\n', lines: [] });
  assert.deepEqual([agent.code, agent.stdout], [0, 'app exporter got: []\n']);
  assert.deepEqual(agent.lines, [
    'promotel warn: the application registered its own MeterProvider after promotel had registered one, so metrics made with @opentelemetry/api still go to promotel\'s endpoint and the application\'s own readers and exporters get none of them: to use the application\'s SDK instead, set OTEL_SDK_DISABLED=true (or drop the preload)',
  ]);
});

test("an app that traces its own HTTP with instrumentation-http gets no span for the agent's scrapes, and its own requests traced as before", async () => {
  const port = await freePort();
  const app = startApp(join(FIXTURES, 'app-traces-http.js'), { env: { OTEL_EXPORTER_PROMETHEUS_PORT: String(port), OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', METRICS_PORT: String(port) } });
  const exit = await Promise.race([app.exited, new Promise<{ code: null }>((r) => setTimeout(() => r({ code: null }), 20_000))]);
  app.kill();
  assert.equal(exit.code, 0, app.stderr());
  // The app's client span for the scrape is its own request, and stays; the server side is the agent's.
  assert.equal(app.stdout(), ['metrics 200', 'client GET /hello', 'client GET /metrics', 'server GET /hello', ''].join('\n'));
  assert.deepEqual(agentLines(app.stderr()), []);
});
