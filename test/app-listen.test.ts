// How the agent sees the application's listen() before it binds: Node's own
// diagnostics channel where there is one, a wrapper of net.Server.prototype.listen
// where there is not, both saying the same thing.
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { listenOptions, publishesListen, watchListen, type ListenMessage } from '../src/app-listen';

test('which Node.js versions announce listen() on a diagnostics channel', () => {
  for (const [version, publishes] of [
    ['20.6.0', false],
    ['20.15.1', false],
    ['20.16.0', true],
    ['20.20.2', true],
    ['21.7.3', false],
    ['22.2.0', false],
    ['22.3.0', true],
    ['23.0.0', true],
    ['24.11.1', true],
  ] as const) {
    assert.equal(publishesListen(version), publishes, version);
  }
});

test('the version table is right for the Node.js running this test', async () => {
  const seen: unknown[] = [];
  const onMessage = (m: unknown): void => void seen.push(m);
  subscribe('tracing:net.server.listen:asyncStart', onMessage);
  const server = createServer();
  try {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  } finally {
    unsubscribe('tracing:net.server.listen:asyncStart', onMessage);
    server.close();
  }
  assert.equal(seen.length, publishesListen() ? 1 : 0, `Node.js ${process.versions.node}`);
});

// Each form of listen() and what node:net makes of its arguments.
const dir = mkdtempSync(join(tmpdir(), 'promotel-listen-'));
const onListening = (): void => {};
const FORMS: Array<[string, unknown[], ListenMessage['options']]> = [
  ['no arguments', [], {}],
  ['a callback only', [onListening], { port: onListening }],
  ['a port', [0], { port: 0 }],
  ['a port and a callback', [0, onListening], { port: 0 }],
  ['a port and a host', [0, '127.0.0.1'], { port: 0, host: '127.0.0.1' }],
  ['a port, a host, a backlog and a callback', [0, '127.0.0.1', 8, onListening], { port: 0, host: '127.0.0.1' }],
  ['a port as a string', ['0', '127.0.0.1'], { port: '0', host: '127.0.0.1' }],
  ['an options object', [{ port: 0, host: '::1', ipv6Only: true }], { port: 0, host: '::1', ipv6Only: true }],
  ['a pipe path', [join(dir, 'sock')], { path: join(dir, 'sock') }],
];

test('listen() arguments are read as node:net reads them', () => {
  for (const [form, args, expected] of FORMS) assert.deepEqual(listenOptions(args), expected, form);
});

test('without the channel, the wrapper announces each listen() before the bind, with what Node itself would publish', async (t) => {
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const wrapped: Array<{ message: ListenMessage; listening: boolean }> = [];
  // An old version forces the wrapper on any Node.js.
  // Copies: node:net goes on to fill in the options object it published (a port 0 for no port).
  const stop = watchListen(({ server, options }) => void wrapped.push({ message: { server, options: { ...options } }, listening: (server as Server).listening }), '20.15.1');
  const published: ListenMessage[] = [];
  const onMessage = (m: unknown): void => void published.push({ options: { ...(m as ListenMessage).options } });
  subscribe('tracing:net.server.listen:asyncStart', onMessage);
  try {
    for (const [form, args, expected] of FORMS) {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.once('listening', resolve);
        server.listen(...(args as Parameters<Server['listen']>));
      });
      await new Promise((resolve) => server.close(resolve));
      const last = wrapped.at(-1)!;
      assert.equal(last.message.server, server, form);
      assert.equal(last.listening, false, `${form}: announced before the bind`);
      assert.deepEqual(last.message.options, expected, form);
      if (publishesListen()) assert.deepEqual(published.at(-1)!.options, last.message.options, `${form}: as node:net publishes it`);
    }
    assert.equal(wrapped.length, FORMS.length);
    // A server already listening is not announced again (node:net throws ERR_SERVER_ALREADY_LISTEN).
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    assert.throws(() => server.listen(0), { code: 'ERR_SERVER_ALREADY_LISTEN' });
    server.close();
    assert.equal(wrapped.length, FORMS.length + 1);
  } finally {
    unsubscribe('tracing:net.server.listen:asyncStart', onMessage);
    stop();
  }
  // Stopped: the wrapper stays in place but tells no one.
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.close();
  assert.equal(wrapped.length, FORMS.length + 1);
});

test('a watcher that throws does not break the application\'s listen()', async () => {
  const stop = watchListen(() => {
    throw new Error('watcher bug');
  }, '20.15.1');
  const server = createServer();
  try {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    assert.equal(server.listening, true);
  } finally {
    stop();
    server.close();
  }
});
