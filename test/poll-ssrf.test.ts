// /probe must not let whoever reaches the metrics port make the poller fetch
// arbitrary URLs (server-side request forgery). Only configured target names
// and URLs matching an allow: pattern are polled, judged after the URL parser
// has normalised them, and redirects obey the same rule. Each attempt below
// is checked twice: by the answer, and by the hit counters of the servers
// that must not have been reached.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { get } from './helpers';
import { startPoller, startTargets, value, type Poller, type Targets } from './poll-helpers';

let t: Targets;
let poller: Poller;
/** An internal service nothing may reach through the poller (think cloud metadata). */
let secret: Server;
let secretUrl: string;
let secretHits = 0;

before(async () => {
  t = await startTargets();
  secret = createServer((_req, res) => {
    secretHits++;
    res.end('credentials\n');
  });
  await new Promise<void>((r) => secret.listen(0, '127.0.0.1', r));
  secretUrl = `http://127.0.0.1:${(secret.address() as AddressInfo).port}`;
  poller = await startPoller(`
interval: 0s
allow:
  - ${t.base}/public/**
modules:
  secret: { headers: { authorization: "Bearer s3cret" } }
targets:
  - { name: ok, url: "${t.base}/ok" }
`);
});

after(async () => {
  await poller?.stop();
  await t?.close();
  secret?.closeAllConnections();
  await new Promise((r) => secret?.close(r));
});

const probe = (target: string, module?: string): ReturnType<typeof get> =>
  get(`${poller.url}/probe?target=${encodeURIComponent(target)}${module ? `&module=${encodeURIComponent(module)}` : ''}`);

test('a configured target name and an allowed URL are polled', async () => {
  const named = await probe('ok');
  assert.equal(named.status, 200);
  assert.equal(value(named.body, 'promotel_probe_success', { target: 'ok' }), 1);

  const before = t.hits.get('/public/ok') ?? 0;
  const url = await probe(`${t.base}/public/ok`);
  assert.equal(url.status, 200);
  assert.equal(value(url.body, 'promotel_probe_success', { target: `${t.base}/public/ok`, job: 'probe' }), 1);
  assert.equal(t.hits.get('/public/ok'), before + 1);

  // Callers choose these URLs, so promotel's own series name the allow: pattern, not each URL.
  await probe(`${t.base}/public/ok?page=2`);
  const metrics = await get(`${poller.url}/metrics`);
  assert.equal(value(metrics.body, 'promotel_poll_duration_seconds_count', { target: `${t.base}/public/**` }), 2);
  assert.equal(value(metrics.body, 'promotel_poll_duration_seconds_count', { target: `${t.base}/public/ok` }), undefined);
  assert.equal(value(metrics.body, 'promotel_poll_duration_seconds_count', { target: 'ok' }), 1);
});

test('URLs given to /probe are logged once per allow: pattern and reason, whatever succeeds in between', async () => {
  const line = /target \S+\/public\/fail \(\S+\) failed: status_code: .*counts it \(logged once\)$/m;
  const logged = () => poller.stderr().split('\n').filter((l) => line.test(l)).length;
  for (let i = 0; i < 3; i++) {
    assert.equal(value((await probe(`${t.base}/public/fail`)).body, 'promotel_probe_success', { target: `${t.base}/public/fail` }), 0);
    assert.equal(value((await probe(`${t.base}/public/ok`)).body, 'promotel_probe_success', { target: `${t.base}/public/ok` }), 1);
  }
  await poller.waitFor(line);
  assert.equal(logged(), 1, poller.stderr());
  const metrics = await get(`${poller.url}/metrics`);
  assert.equal(value(metrics.body, 'promotel_poll_errors_total', { target: `${t.base}/public/**`, reason: 'status_code' }), 3, 'each failure is still counted');
});

test('URLs outside the allow-list are refused before any request is made', async () => {
  const okHits = t.hits.get('/ok') ?? 0;
  const attempts: Array<[string, number]> = [
    [`${secretUrl}/`, 403], // another port of the same host
    [`${t.base}/ok`, 403], // the allowed host, a path outside /public/
    [`${t.base}/public/../ok`, 403], // dot segments are resolved before matching
    [`${t.base}/public/%2e%2e/ok`, 403], // so are encoded ones
    [`${t.base}/PUBLIC/ok`, 403], // paths are case-sensitive
    [`http://169.254.169.254/latest/meta-data/`, 403],
    [`http://user:pw@${t.base.slice(7)}/public/ok`, 400], // credentials
    [`http://${t.base.slice(7)}@127.0.0.1:${new URL(secretUrl).port}/public/ok`, 400], // userinfo hiding the real host
    ['file:///etc/passwd', 400],
    ['gopher://127.0.0.1:25/', 400],
    ['ok/../../etc', 400], // neither a name nor a URL
  ];
  for (const [target, status] of attempts) {
    const res = await probe(target);
    assert.equal(res.status, status, `${target}: ${res.body}`);
    assert.doesNotMatch(res.body, /promotel_probe/, `${target} must not be probed`);
  }
  const missing = await get(`${poller.url}/probe`);
  assert.equal(missing.status, 400);
  assert.match(missing.body, /target parameter is missing/);
  const module = await probe('ok', 'http://evil/');
  assert.equal(module.status, 400, 'module names a module of the config, nothing else');
  const secretHeaders = await probe(`${t.base}/public/ok`, 'secret');
  assert.equal(secretHeaders.status, 403, 'a module with headers (credentials) is not lent to caller-chosen URLs');
  assert.match(secretHeaders.body, /module secret sends configured headers/);
  const lent = await probe('ok', 'secret');
  assert.equal(lent.status, 403, 'nor to a configured target that does not use it');
  assert.match(lent.body, /module secret sends configured headers or a body, so it only polls the targets configured with it, not ok: set module: secret on that target in the config/);
  assert.equal(secretHits, 0);
  assert.equal(t.hits.get('/ok') ?? 0, okHits);
});

test('a redirect from an allowed URL is followed only where allow: permits', async () => {
  const inside = await probe(`${t.base}/public/redirect?to=/public/ok`);
  assert.equal(value(inside.body, 'promotel_probe_success'), 1);
  assert.equal(value(inside.body, 'promotel_probe_http_redirects'), 1);

  const okHits = t.hits.get('/ok') ?? 0;
  for (const to of [`${secretUrl}/`, '/ok', `${t.base}/public/%2e%2e/ok`]) {
    const res = await probe(`${t.base}/public/redirect?to=${encodeURIComponent(to)}`);
    assert.equal(res.status, 200, 'the probe ran; its redirect was refused');
    assert.equal(value(res.body, 'promotel_probe_success'), 0, to);
    assert.equal(value(res.body, 'promotel_probe_failure', { reason: 'redirect_not_allowed' }), 1, to);
    assert.equal(value(res.body, 'promotel_probe_http_status_code'), 302);
  }
  assert.equal(secretHits, 0);
  assert.equal(t.hits.get('/ok') ?? 0, okHits, 'the same origin outside allow: is off limits to an ad-hoc URL');
});

test('a configured module\'s headers go to its target\'s origin only, not along a redirect to another origin allow: permits', async () => {
  // Two origins that record the Authorization header each request brought; /hop redirects to ?to=.
  const seen: string[] = [];
  const handler = (origin: string) => (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    seen.push(`${origin} ${url.pathname} ${req.headers.authorization ?? '(none)'}`);
    if (url.pathname === '/hop') res.writeHead(302, { location: url.searchParams.get('to') ?? '/', 'content-length': 0 }).end();
    else res.end('ok\n');
  };
  const servers = [createServer(handler('a')), createServer(handler('b'))];
  const [a, b] = await Promise.all(servers.map(async (s) => {
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  }));
  const own = await startPoller(`
interval: 0s
allow: ["${b}/**"]
modules:
  auth: { headers: { authorization: "Bearer s3cret" } }
targets:
  - { name: same, url: "${a}/hop?to=${encodeURIComponent(`${a}/end`)}", module: auth }
  - { name: other, url: "${a}/hop?to=${encodeURIComponent(`${b}/end`)}", module: auth }
`);
  try {
    for (const target of ['same', 'other']) {
      const res = await get(`${own.url}/probe?target=${target}`);
      assert.equal(value(res.body, 'promotel_probe_success', { target }), 1, res.body);
      assert.equal(value(res.body, 'promotel_probe_http_redirects', { target }), 1);
    }
    assert.deepEqual(seen, [
      'a /hop Bearer s3cret',
      'a /end Bearer s3cret',
      'a /hop Bearer s3cret',
      'b /end (none)',
    ]);
  } finally {
    await own.stop();
    for (const s of servers) s.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
});
