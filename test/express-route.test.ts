// http.route from Express without patching it: the matched route's template,
// with the mount paths of routers and sub-apps spelled as templates too, and
// no label at all when the prefix cannot be explained, never a raw path.
import assert from 'node:assert/strict';
import { get as httpGet, type IncomingMessage, type Server } from 'node:http';
import { test } from 'node:test';
import { expressRoute } from '../src/instrumentations/express-route';

const express = require('express') as any; // a devDependency without bundled types

/** Serves `app` on loopback, sends `path`, and returns what expressRoute made of that request. */
async function routeOf(app: any, path: string): Promise<string | undefined> {
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

test('a mount parameter whose value equals a plain segment still lands on the parameter', async () => {
  const app = express();
  const r = express.Router();
  r.get('/items', ok);
  app.use('/v1/:version', r);
  assert.equal(await routeOf(app, '/v1/v1/items'), '/v1/:version/items');
  assert.equal(await routeOf(app, '/v1/v2/items'), '/v1/:version/items');
});

test('two mount parameters with the same value, and a parameter restricted by a pattern', async () => {
  const app = express();
  const pair = express.Router();
  pair.get('/x', ok);
  app.use('/:a/:b', pair);
  const numeric = express.Router();
  numeric.get('/x', ok);
  const top = express();
  top.use('/n/:id(\\d+)', numeric);
  assert.equal(await routeOf(app, '/same/same/x'), '/:a/:b/x');
  assert.equal(await routeOf(top, '/n/5/x'), '/n/:id/x');
});

test('routers mounted on / are searched through; percent-encoded values are matched decoded', async () => {
  const app = express();
  const outer = express.Router();
  const shop = express.Router();
  shop.get('/orders/:id', ok);
  outer.use('/shops/:shop', shop);
  app.use(outer);
  assert.equal(await routeOf(app, '/shops/a%20b/orders/3'), '/shops/:shop/orders/:id');
});

test('a wildcard mount path spans segments: no route rather than a raw path', async () => {
  const app = express();
  const r = express.Router();
  r.get('/leaf', ok);
  app.use('/files/*', r);
  const route = await routeOf(app, '/files/a/b/leaf');
  assert.equal(route, undefined);
});

test('no matched route: no label; a plain mount path is kept as it is', async () => {
  const app = express();
  const r = express.Router();
  r.get('/list', ok);
  app.use('/static/mount', r);
  assert.equal(await routeOf(app, '/static/mount/list'), '/static/mount/list');
  assert.equal(await routeOf(app, '/static/mount/list'), '/static/mount/list');
  assert.equal(await routeOf(app, '/nothing/here'), undefined);
});
