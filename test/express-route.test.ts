// http.route from Express without patching it: the matched route's template,
// with the mount paths of routers and sub-apps spelled as templates too, and
// no label at all when the prefix cannot be explained, never a raw path.
// Each case runs on Express 4 and Express 5 (devDependency `express5`).
import assert from 'node:assert/strict';
import { get as httpGet, type IncomingMessage, type Server } from 'node:http';
import { test } from 'node:test';
import { expressRoute } from '../src/instrumentations/express-route';

const VERSIONS = [
  ['Express 4', require('express')],
  ['Express 5', require('express5')],
] as Array<[string, any]>; // devDependencies without bundled types

/** Serves `app` on loopback, sends `path`, and returns what expressRoute made of that request. */
async function routeOf(express: any, app: any, path: string): Promise<string | undefined> {
  let seen: string | undefined | null = null;
  const outer = express();
  outer.use((req: IncomingMessage, res: { on(e: string, f: () => void): void }, next: () => void) => {
    res.on('finish', () => (seen = expressRoute(req)));
    next();
  });
  outer.use(app);
  const server: Server = await new Promise((resolve) => {
    const s = outer.listen(0, '127.0.0.1', () => resolve(s));
  });
  try {
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve, reject) =>
      httpGet({ host: '127.0.0.1', port, path, agent: false }, (res) => res.resume().on('end', resolve)).on('error', reject),
    );
    assert.notEqual(seen, null, 'the response finished without expressRoute being called');
    return seen ?? undefined;
  } finally {
    server.close();
  }
}

const ok = (_req: unknown, res: { send(s: string): void }): void => res.send('ok');

for (const [version, express] of VERSIONS) {
  test(`${version}: a mount parameter whose value equals a plain segment still lands on the parameter`, async () => {
    const app = express();
    const r = express.Router();
    r.get('/items', ok);
    app.use('/v1/:version', r);
    assert.equal(await routeOf(express, app, '/v1/v1/items'), '/v1/:version/items');
    assert.equal(await routeOf(express, app, '/v1/v2/items'), '/v1/:version/items');
  });

  test(`${version}: two mount parameters with the same value`, async () => {
    const app = express();
    const pair = express.Router();
    pair.get('/x', ok);
    app.use('/:a/:b', pair);
    assert.equal(await routeOf(express, app, '/same/same/x'), '/:a/:b/x');
  });

  test(`${version}: routers mounted on / are searched through; percent-encoded values are matched decoded`, async () => {
    const app = express();
    const outer = express.Router();
    const shop = express.Router();
    shop.get('/orders/:id', ok);
    outer.use('/shops/:shop', shop);
    app.use(outer);
    assert.equal(await routeOf(express, app, '/shops/a%20b/orders/3'), '/shops/:shop/orders/:id');
  });

  test(`${version}: a router mounted on / inside a mount with parameters`, async () => {
    const app = express();
    const shop = express.Router();
    const inner = express.Router();
    inner.get('/orders', ok);
    shop.use(inner);
    app.use('/shops/:shop', shop);
    assert.equal(await routeOf(express, app, '/shops/7/orders'), '/shops/:shop/orders');
  });

  test(`${version}: one router on two mount paths: each request gets the path Express routed it through`, async () => {
    const app = express();
    const r = express.Router();
    r.get('/x', ok);
    app.use('/shops/special', r);
    app.use('/shops/:shop', r);
    assert.equal(await routeOf(express, app, '/shops/7/x'), '/shops/:shop/x');
    assert.equal(await routeOf(express, app, '/shops/special/x'), '/shops/special/x');
    assert.equal(await routeOf(express, app, '/shops/8/x'), '/shops/:shop/x');
  });

  test(`${version}: a router mounted again after requests were served is found on its new path`, async () => {
    const app = express();
    const r = express.Router();
    r.get('/x', ok);
    app.use('/a/:first', r);
    assert.equal(await routeOf(express, app, '/a/1/x'), '/a/:first/x');
    app.use('/b/:second', r);
    assert.equal(await routeOf(express, app, '/b/2/x'), '/b/:second/x');
    assert.equal(await routeOf(express, app, '/a/3/x'), '/a/:first/x');
  });

  test(`${version}: one router inside two sub-apps: each request is spelled through its own app`, async () => {
    const app = express();
    const [a, b] = [express(), express()];
    const r = express.Router();
    r.get('/x', ok);
    a.use('/:shop', r);
    b.use('/:org', r);
    app.use('/a', a);
    app.use('/b', b);
    assert.equal(await routeOf(express, app, '/a/1/x'), '/a/:shop/x');
    assert.equal(await routeOf(express, app, '/b/2/x'), '/b/:org/x');
  });

  test(`${version}: sub-apps, on a plain path and on a path with a parameter inside it`, async () => {
    const app = express();
    const admin = express();
    admin.get('/stats', ok);
    const tenant = express();
    tenant.get('/settings/:key', ok);
    admin.use('/tenants/:tenant', tenant);
    app.use('/admin', admin);
    assert.equal(await routeOf(express, app, '/admin/stats'), '/admin/stats');
    assert.equal(await routeOf(express, app, '/admin/tenants/t1/settings/k'), '/admin/tenants/:tenant/settings/:key');
  });

  test(`${version}: Express matches without regard to case; the label keeps one spelling per mount`, async () => {
    const app = express();
    const r = express.Router();
    r.get('/x', ok);
    app.use('/api', r);
    app.use('/shops/:shop', r);
    assert.equal(await routeOf(express, app, '/api/x'), '/api/x');
    assert.equal(await routeOf(express, app, '/API/x'), '/api/x');
    assert.equal(await routeOf(express, app, '/shops/1/x'), '/shops/:shop/x');
    assert.equal(await routeOf(express, app, '/SHOPS/2/x'), '/shops/:shop/x');
    assert.equal(await routeOf(express, app, '/Shops/3/x'), '/shops/:shop/x');
  });

  test(`${version}: a response sent after the request left its route's router (an error handler of the app or of an outer router) keeps the whole template`, async () => {
    const app = express();
    const api = express.Router();
    api.get('/users/:id', (req: any, res: any, next: (err?: unknown) => void) => {
      if (req.params.id === 'err') return next(new Error('boom'));
      if (req.params.id === 'later') return setTimeout(() => next(new Error('boom')), 5);
      if (req.params.id === 'fall') return next();
      res.send('ok');
    });
    api.get('/throw/:id', () => {
      throw new Error('thrown');
    });
    const shop = express.Router({ mergeParams: true });
    shop.get('/orders/:oid', (_req: unknown, _res: unknown, next: (err: unknown) => void) => next(new Error('x')));
    const v1 = express.Router();
    v1.get('/items/:id', (_req: unknown, _res: unknown, next: (err: unknown) => void) => next(new Error('x')));
    api.use('/v1', v1);
    // Handled by the api router's own error handler: the base is `/api` there, not the route's `/api/v1`.
    api.use((err: Error, req: any, res: any, next: (err: unknown) => void) => (req.path.startsWith('/v1') ? res.status(502).send(err.message) : next(err)));
    app.use('/api', api);
    app.use('/shops/:shop', shop);
    app.use((err: Error, _req: unknown, res: any, _next: unknown) => res.status(500).send(err.message));
    const got: Array<string | undefined> = [];
    for (const path of ['/api/users/1', '/api/users/err', '/api/users/later', '/api/users/fall', '/api/throw/1', '/shops/7/orders/3', '/api/v1/items/9']) got.push(await routeOf(express, app, path));
    // `fall` leaves this app altogether: routeOf mounts it as a sub-app, and the final 404 is the outer
    // app's, where Express has put req.app back to the outer app, which cannot see into its sub-apps:
    // no label rather than a wrong one.
    assert.deepEqual(got, ['/api/users/:id', '/api/users/:id', '/api/users/:id', undefined, '/api/throw/:id', '/shops/:shop/orders/:oid', '/api/v1/items/:id']);
  });

  test(`${version}: no matched route: no label; a plain mount path is kept as it is`, async () => {
    const app = express();
    const r = express.Router();
    r.get('/list', ok);
    app.use('/static/mount', r);
    assert.equal(await routeOf(express, app, '/static/mount/list'), '/static/mount/list');
    assert.equal(await routeOf(express, app, '/static/mount/list'), '/static/mount/list');
    assert.equal(await routeOf(express, app, '/nothing/here'), undefined);
  });
}

test('Express 4: a parameter restricted by a pattern; a wildcard mount spans segments, so no route rather than a raw path', async () => {
  const express = VERSIONS[0]![1];
  const app = express();
  const numeric = express.Router();
  numeric.get('/x', ok);
  app.use('/n/:id(\\d+)', numeric);
  const files = express.Router();
  files.get('/leaf', ok);
  app.use('/files/*', files);
  assert.equal(await routeOf(express, app, '/n/5/x'), '/n/:id/x');
  assert.equal(await routeOf(express, app, '/files/a/b/leaf'), undefined);
});

test('Express 4: a value that could be either of two segments, under a pattern the probe cannot satisfy: no label, not a guess, until a plain match shows where it sits', async () => {
  const express = VERSIONS[0]![1];
  const app = express();
  const r = express.Router();
  r.get('/x', ok);
  app.use('/en/:lang([a-z]{2})', r);
  assert.equal(await routeOf(express, app, '/en/en/x'), undefined);
  assert.equal(await routeOf(express, app, '/en/de/x'), '/en/:lang/x');
  assert.equal(await routeOf(express, app, '/en/en/x'), '/en/:lang/x');
});

test('Express 5: the mount path its matcher reports is the template, optional segments included', async () => {
  const express = VERSIONS[1]![1];
  const app = express();
  const docs = express.Router();
  docs.get('/page', ok);
  app.use('/docs{/:lang}', docs);
  assert.equal(await routeOf(express, app, '/docs/en/page'), '/docs{/:lang}/page');
});

test('Express 5: a mount whose optional segment would swallow the route is the one Express left; the next mount is named', async () => {
  const express = VERSIONS[1]![1];
  const app = express();
  const docs = express.Router();
  docs.get('/page', ok);
  app.use('/docs{/:lang}', docs);
  app.use('/docs', docs);
  assert.equal(await routeOf(express, app, '/docs/page?x=1'), '/docs/page');
  assert.equal(await routeOf(express, app, '/docs/en/page'), '/docs{/:lang}/page');
});

for (const [version, express] of VERSIONS) {
  test(`${version}: a router mounted on a RegExp gets no label, never the first path it matched`, async () => {
    const app = express();
    const api = express.Router();
    api.get('/users/:id', ok);
    app.use(/^\/v\d+/, api);
    const grouped = express.Router();
    grouped.get('/profile', ok);
    app.use(/^\/u\/(\d+)/, grouped);
    for (const path of ['/v2/users/1', '/v1/users/2', '/v3/users/3', '/u/123/profile', '/u/456/profile']) {
      assert.equal(await routeOf(express, app, path), undefined, path);
    }
  });
}
