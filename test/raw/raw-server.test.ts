import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { serveRaw } from '../../src/index.js';
import { parseAddress } from '../../src/transport/address.js';
import { dialStream } from '../../src/transport/dial.js';
import { dial, readAll, tempDir } from './helpers.js';

const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

describe('serveRaw: plain-bytes handlers with setup → handle → finish', () => {
  let state: { path: string; cleanup: () => Promise<void> };
  before(async () => {
    state = await tempDir('sockit-rawserver-');
  });
  after(async () => state.cleanup());

  it('runs the five-line example from docs/raw.md', async () => {
    const server = await serveRaw({
      listen: 'tcp://127.0.0.1:0',
      async handle({ socket }) {
        for await (const chunk of socket) socket.write(String(chunk).toUpperCase());
      },
    });
    try {
      const socket = await dial(portOf(server.address), '127.0.0.1', { allowHalfOpen: true });
      const reply = readAll(socket);
      socket.end('hello raw world');
      assert.equal((await reply).toString(), 'HELLO RAW WORLD');
    } finally {
      await server.close();
    }
  });

  it('calls setup, handle, finish in order; finish runs even when handle throws', async () => {
    const calls: string[] = [];
    let finished!: () => void;
    const allFinished = new Promise<void>((resolve) => {
      finished = resolve;
    });
    const server = await serveRaw({
      listen: 'tcp://127.0.0.1:0',
      setup: ({ state }) => {
        calls.push('setup');
        state.set('greeting', 'hi\n');
      },
      handle: ({ socket, state }) => {
        calls.push('handle');
        socket.write(String(state.get('greeting')));
        throw new Error('handler bug');
      },
      finish: () => {
        calls.push('finish');
        finished();
      },
    });
    try {
      const socket = await dial(portOf(server.address));
      const received = await readAll(socket);
      await allFinished;
      assert.deepEqual(calls, ['setup', 'handle', 'finish']);
      assert.equal(received.toString(), 'hi\n', 'what was written before the failure still arrives');
    } finally {
      await server.close();
    }
  });

  it('refuses a client over maxConnections with a message, and denied peers silently', async () => {
    let release!: () => void;
    const hold = new Promise<void>((resolve) => {
      release = resolve;
    });
    const server = await serveRaw({ listen: 'tcp://127.0.0.1:0', maxConnections: 1, handle: () => hold });
    const denying = await serveRaw({ listen: 'tcp://127.0.0.1:0', admit: () => false, handle: () => {} });
    try {
      const accepted = once(server, 'connection');
      const first = await dial(portOf(server.address));
      await accepted;
      const second = await dial(portOf(server.address));
      assert.match((await readAll(second)).toString(), /already has 1 client \(its limit\); try again later/);
      release();
      await readAll(first);
      const denied = await dial(portOf(denying.address));
      assert.equal((await readAll(denied)).length, 0);
    } finally {
      await server.close();
      await denying.close();
    }
  });

  it('graceful close aborts the signal so handlers can say goodbye; the deadline ends the rest', async () => {
    const polite = await serveRaw({
      listen: 'tcp://127.0.0.1:0',
      handle: ({ socket, signal }) =>
        new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => {
            socket.write('server is shutting down, bye\n');
            resolve();
          });
        }),
    });
    const stubborn = await serveRaw({
      listen: 'tcp://127.0.0.1:0',
      handle: () => new Promise<void>(() => {}),
    });
    const politeAccepted = once(polite, 'connection');
    const socket = await dial(portOf(polite.address));
    const goodbye = readAll(socket);
    await politeAccepted;
    await polite.close(5000);
    assert.equal((await goodbye).toString(), 'server is shutting down, bye\n');

    const stubbornAccepted = once(stubborn, 'connection');
    const stuck = await dial(portOf(stubborn.address));
    const ended = readAll(stuck);
    await stubbornAccepted;
    await stubborn.close(50);
    await ended;
    assert.equal(stubborn.connectionCount, 0);
  });

  it('closes idle connections when idleTimeoutMs is set', async () => {
    const server = await serveRaw({
      listen: 'tcp://127.0.0.1:0',
      idleTimeoutMs: 100,
      handle: ({ socket }) => new Promise<void>((resolve) => socket.once('close', () => resolve())),
    });
    try {
      const socket = await dial(portOf(server.address));
      await readAll(socket); // resolves when the server gives up on us
    } finally {
      await server.close();
    }
  });

  it('serves TLS with the stored self-signed certificate; clients pin its fingerprint', async () => {
    const server = await serveRaw({
      listen: 'tls://127.0.0.1:0',
      stateDir: state.path,
      handle: ({ socket }) => {
        socket.end('over tls\n');
      },
    });
    try {
      assert.match(server.tlsFingerprint ?? '', /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      const socket = await dialStream(parseAddress(server.address), {
        tls: { fingerprint: server.tlsFingerprint! },
      });
      assert.equal((await readAll(socket)).toString(), 'over tls\n');
    } finally {
      await server.close();
    }
  });
});
