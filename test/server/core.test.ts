import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Client, connect } from '../../src/client/client.js';
import type { SockitError } from '../../src/errors.js';
import { computeProof } from '../../src/protocol/auth.js';
import { encodeFrameToBuffer } from '../../src/protocol/frame.js';
import { type ServeOptions, type Server, serve } from '../../src/server/server.js';
import type { Service } from '../../src/server/service.js';
import { echoService } from '../../src/services/echo.js';
import { serveForFile, TEST_TOKEN, tempDir, testFrames } from '../helpers.js';
import { expectCode, RawPeer } from './peer.js';

type TempDir = Awaited<ReturnType<typeof tempDir>>;

/** A protected service for auth tests: answers `secret` with a fixed value. */
const secretService: Service = {
  name: 'secret',
  frames: testFrames('secret', { secret: { replies: ['secret'] } }),
  requests: { secret: (request) => request.reply({ type: 'secret', value: 42 }) },
};

/** A service whose requests stay open until released, for cap and shutdown tests. */
function holdService() {
  const waiting: (() => void)[] = [];
  let started = 0;
  const service: Service = {
    name: 'hold',
    frames: testFrames('hold', { hold: { replies: ['held'] } }),
    requests: {
      hold(request) {
        started++;
        waiting.push(() => request.reply({ type: 'held' }));
        request.signal.addEventListener('abort', () => request.finish());
      },
    },
  };
  return {
    service,
    get started() {
      return started;
    },
    releaseAll: () => {
      for (const release of waiting.splice(0)) release();
    },
  };
}

/** `serve` on TCP loopback, port 0 (closed by the file's last hook if a failed test did not). */
function serveOnLoopback(options: Partial<ServeOptions>): Promise<Server> {
  return serveForFile({ listen: 'tcp://127.0.0.1:0', ...options });
}

/** A server on TCP loopback with the test token and a fresh state dir, which the test closes and removes. */
async function serveWithState(
  options: Partial<ServeOptions> = {},
): Promise<{ server: Server; state: TempDir }> {
  const state = await tempDir();
  const server = await serveOnLoopback({ token: TEST_TOKEN, stateDir: state.path, ...options });
  return { server, state };
}

/** A server from `serveWithState` for the tests of one describe block, closed after them. */
function serveForSuite(options: Partial<ServeOptions> = {}): { server: Server; state: TempDir } {
  const suite = {} as { server: Server; state: TempDir };
  before(async () => {
    Object.assign(suite, await serveWithState(options));
  });
  after(async () => {
    await suite.server.close(1000);
    await suite.state.cleanup();
  });
  return suite;
}

/** Watches `client` from now on; resolves once the server closed it for idling (TIMEOUT). */
async function closedForIdling(client: Client): Promise<void> {
  const reason = await new Promise<SockitError>((resolve) => client.once('close', resolve));
  assert.equal(reason.code, 'TIMEOUT');
  assert.match(reason.message, /idle/);
}

const transports = ['tcp://127.0.0.1:0', 'tls://127.0.0.1:0', 'tcp://[::1]:0', 'unix'];

describe('the same suite over every transport', () => {
  for (const listen of transports) {
    describe(listen, () => {
      let server: Server;
      let state: TempDir;
      let client: Client;
      before(async () => {
        state = await tempDir();
        const address = listen === 'unix' ? `unix:${state.path}/s.sock` : listen;
        server = await serve({
          listen: address,
          token: TEST_TOKEN,
          stateDir: state.path,
          services: [echoService({ transform: 'upper' }), secretService],
        });
        client = await connect(server.address, { token: TEST_TOKEN, stateDir: state.path });
      });
      after(async () => {
        await client?.close();
        await server?.close(1000);
        await state.cleanup();
      });

      test('handshake, ping and echo (upper)', async () => {
        assert.equal(client.authenticated, true);
        assert.deepEqual(client.welcome.services, ['echo', 'secret']);
        assert.ok((await client.ping()) >= 0);
        assert.equal((await client.echo('hello, ünïcode')).toString(), 'HELLO, üNïCODE');
      });

      test('pipelined requests each get their own answer', async () => {
        const bodies = Array.from({ length: 500 }, (_, i) => `msg-${i}`);
        const answers = await Promise.all(bodies.map((body) => client.echo(body)));
        assert.deepEqual(
          answers.map((answer) => answer.toString()),
          bodies.map((body) => body.toUpperCase()),
        );
      });

      test('a 0-byte and a 4 MiB echo', async () => {
        assert.equal((await client.echo(Buffer.alloc(0))).length, 0);
        const big = Buffer.alloc(4 * 1024 * 1024, 'a');
        assert.ok((await client.echo(big)).equals(Buffer.alloc(big.length, 'A')));
      });

      test('protected services need the token', async () => {
        assert.equal((await client.call({ type: 'secret' })).header.value, 42);
      });
    });
  }
});

describe('authentication', () => {
  const suite = serveForSuite({ services: [echoService(), secretService] });

  test('a wrong token is AUTH_FAILED and the connection closes', async () => {
    await expectCode(
      connect(suite.server.address, { token: 'wrong', stateDir: suite.state.path }),
      'AUTH_FAILED',
    );
  });

  test('without a token only open services answer; others are AUTH_REQUIRED', async () => {
    const client = await connect(suite.server.address, { stateDir: suite.state.path, env: {} });
    try {
      assert.equal(client.authenticated, false);
      assert.deepEqual(client.welcome.open, ['echo']);
      assert.equal((await client.echo('open')).toString(), 'open');
      const error = await expectCode(client.call({ type: 'secret' }), 'AUTH_REQUIRED');
      assert.match(error.message, /SOCKIT_TOKEN/);
    } finally {
      await client.close();
    }
  });

  test('the token is taken from SOCKIT_TOKEN', async () => {
    const client = await connect(suite.server.address, {
      stateDir: suite.state.path,
      env: { SOCKIT_TOKEN: TEST_TOKEN },
    });
    assert.equal(client.authenticated, true);
    await client.close();
  });

  test('a proof recorded on one connection is useless on another', async () => {
    const first = await RawPeer.open(suite.server.address);
    first.send({ type: 'hello', version: 1 });
    const welcome = (await first.next())!;
    const proof = computeProof(TEST_TOKEN, String(welcome.header.nonce));
    first.socket.destroy();
    const second = await RawPeer.open(suite.server.address);
    second.send({ type: 'hello', version: 1 });
    const secondWelcome = (await second.next())!;
    assert.notEqual(secondWelcome.header.nonce, welcome.header.nonce);
    second.send({ type: 'auth', proof });
    const answer = (await second.next())!;
    assert.equal(answer.header.code, 'AUTH_FAILED');
    await second.closed;
  });

  test('a server without a token option creates one with mode 0600 and reuses it', async () => {
    const dir = await tempDir();
    const { statSync } = await import('node:fs');
    const first = await serveOnLoopback({ stateDir: dir.path });
    assert.equal(first.tokenCreated, true);
    assert.equal(statSync(first.tokenFile!).mode & 0o777, 0o600);
    await first.close(100);
    const second = await serveOnLoopback({
      stateDir: dir.path,
      services: [secretService],
    });
    assert.equal(second.tokenCreated, false);
    // A client on the same machine finds the token in the same state dir.
    const client = await connect(second.address, { stateDir: dir.path, env: {} });
    assert.equal((await client.call({ type: 'secret' })).header.value, 42);
    await client.close();
    await second.close(100);
    await dir.cleanup();
  });

  test('insecureNoAuth serves everything and says auth none', async () => {
    const open = await serveOnLoopback({
      insecureNoAuth: true,
      services: [secretService],
    });
    const client = await connect(open.address, { env: {}, stateDir: suite.state.path });
    assert.equal(client.welcome.auth, 'none');
    assert.equal((await client.call({ type: 'secret' })).header.value, 42);
    await client.close();
    await open.close(100);
  });
});

describe('framed echo without a transform', () => {
  const suite = serveForSuite();

  test('a compact request arriving whole comes back as the very same bytes', async () => {
    const peer = await RawPeer.open(suite.server.address);
    await peer.handshake();
    const request = encodeFrameToBuffer({ type: 'echo', id: 7 }, Buffer.from('same bytes'));
    peer.text = '';
    peer.socket.write(request);
    const reply = (await peer.next())!;
    assert.deepEqual(reply.header, { type: 'echo', id: 7, size: 10 });
    assert.equal(peer.text, request.toString('latin1'));
    peer.socket.destroy();
  });

  test('any other request is answered with a fresh header: no foreign fields come back', async () => {
    const peer = await RawPeer.open(suite.server.address);
    await peer.handshake();
    // Not compact (an extra field), and split over two writes.
    const request = encodeFrameToBuffer({ type: 'echo', id: 8, note: 'not echoed' }, Buffer.from('hi'));
    peer.socket.write(request.subarray(0, 5));
    await new Promise((resolve) => setImmediate(resolve));
    peer.socket.write(request.subarray(5));
    const reply = (await peer.next())!;
    assert.deepEqual(reply.header, { type: 'echo', id: 8, size: 2 });
    assert.equal(reply.body.toString(), 'hi');
    // Compact but in two pieces: the same answer, encoded afresh.
    const compact = encodeFrameToBuffer({ type: 'echo', id: 9 }, Buffer.from('ok'));
    peer.socket.write(compact.subarray(0, 3));
    await new Promise((resolve) => setImmediate(resolve));
    peer.socket.write(compact.subarray(3));
    const second = (await peer.next())!;
    assert.deepEqual([second.header, second.body.toString()], [{ type: 'echo', id: 9, size: 2 }, 'ok']);
    peer.socket.destroy();
  });
});

describe('protocol errors never crash the server', () => {
  const suite = serveForSuite();

  test('a first frame other than hello is UNSUPPORTED', async () => {
    const peer = await RawPeer.open(suite.server.address);
    peer.send({ type: 'echo', id: 1 });
    const error = (await peer.next())!;
    assert.equal(error.header.code, 'UNSUPPORTED');
    assert.equal(error.header.id, undefined);
    await peer.closed;
  });

  test('an unknown version is UNSUPPORTED with the versions spoken', async () => {
    const peer = await RawPeer.open(suite.server.address);
    peer.send({ type: 'hello', version: 2 });
    const error = (await peer.next())!;
    assert.equal(error.header.code, 'UNSUPPORTED');
    assert.deepEqual(error.header.versions, [1]);
    await peer.closed;
  });

  test('a plain-text client gets one line, then the connection closes', async () => {
    const peer = await RawPeer.open(suite.server.address);
    peer.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await peer.closed;
    assert.match(peer.text, /^This port speaks the sockit framed protocol.*\n$/);
    assert.equal(peer.text.split('\n').length, 2);
  });

  test('a malformed frame gets FRAME_INVALID without id, then close', async () => {
    const peer = await RawPeer.open(suite.server.address);
    await peer.handshake();
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(4);
    peer.socket.write(Buffer.concat([prefix, Buffer.from('[1] ')]));
    const error = (await peer.next())!;
    assert.equal(error.header.code, 'FRAME_INVALID');
    assert.equal(error.header.id, undefined);
    assert.doesNotMatch(String(error.header.message), /at .*\.js/);
    await peer.closed;
  });

  test('a body over the limit is TOO_LARGE before it is sent', async () => {
    const small = await serveOnLoopback({
      token: TEST_TOKEN,
      limits: { maxBodyBytes: 1000 },
    });
    const peer = await RawPeer.open(small.address);
    await peer.handshake();
    const header = Buffer.from('{"type":"echo","id":1,"size":5000}');
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(header.length);
    peer.socket.write(Buffer.concat([prefix, header])); // the body is never sent: the size alone is refused
    const error = (await peer.next())!;
    assert.equal(error.header.code, 'TOO_LARGE');
    await peer.closed;
    await small.close(100);
  });

  test('unknown request types are UNSUPPORTED for that id, and the connection lives on', async () => {
    const peer = await RawPeer.open(suite.server.address);
    await peer.handshake();
    peer.send({ type: 'teleport', id: 7 });
    const error = (await peer.next())!;
    assert.equal(error.header.code, 'UNSUPPORTED');
    assert.equal(error.header.id, 7);
    peer.send({ type: 'ping', id: 8 });
    assert.equal((await peer.next())!.header.type, 'pong');
    peer.socket.destroy();
  });

  test('a request without id is a connection error BAD_REQUEST', async () => {
    const peer = await RawPeer.open(suite.server.address);
    await peer.handshake();
    peer.send({ type: 'echo' });
    const error = (await peer.next())!;
    assert.equal(error.header.code, 'BAD_REQUEST');
    await peer.closed;
  });

  test('an error that quotes a huge field is cut short instead of crashing the server', async () => {
    const peer = await RawPeer.open(suite.server.address);
    peer.send({ type: 'hello', version: 'v'.repeat(65_000) });
    const error = (await peer.next())!;
    assert.equal(error.header.code, 'UNSUPPORTED');
    assert.ok(String(error.header.message).length <= 1025);
    await peer.closed;
  });

  test('a peer that floods requests without reading the answers stops being read', async () => {
    let handled = 0;
    const counting: Service = {
      name: 'count',
      frames: testFrames('count', { big: { replies: ['big'] } }),
      requests: {
        big(request) {
          handled++;
          request.reply({ type: 'big' }, request.body);
        },
      },
    };
    const flooded = await serveOnLoopback({ token: TEST_TOKEN, services: [counting] });
    const peer = await RawPeer.open(flooded.address);
    await peer.handshake();
    peer.socket.pause(); // read nothing from now on
    const total = 64;
    const body = Buffer.alloc(1024 * 1024);
    for (let id = 1; id <= total; id++) peer.socket.write(encodeFrameToBuffer({ type: 'big', id }, body));
    // Wait until the server settles: nothing more handled over several checks.
    let last = -1;
    for (let still = 0; still < 5; ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      still = handled === last ? still + 1 : 0;
      last = handled;
    }
    // Answers nobody reads hold the server back after a few MiB, not after all 64.
    assert.ok(
      handled < total / 2,
      `the server handled ${handled} of ${total} requests nobody read answers to`,
    );
    peer.socket.destroy();
    await flooded.close(100);
  });

  test('the server still serves after all of that', async () => {
    const client = await connect(suite.server.address, { token: TEST_TOKEN, stateDir: suite.state.path });
    assert.equal((await client.echo('alive')).toString(), 'alive');
    await client.close();
  });
});

describe('limits', () => {
  test('an excess client gets BUSY, not a hang', async () => {
    const { server, state } = await serveWithState({ limits: { maxConnections: 2 } });
    const clients = [
      await connect(server.address, { token: TEST_TOKEN, stateDir: state.path }),
      await connect(server.address, { token: TEST_TOKEN, stateDir: state.path }),
    ];
    const error = await expectCode(
      connect(server.address, { token: TEST_TOKEN, stateDir: state.path }),
      'BUSY',
    );
    assert.match(error.message, /connection limit/);
    await clients[0]!.close();
    // A slot freed is a slot usable again.
    const again = await connect(server.address, { token: TEST_TOKEN, stateDir: state.path });
    assert.equal((await again.echo('ok')).toString(), 'ok');
    await Promise.all([again.close(), clients[1]!.close()]);
    await server.close(100);
    await state.cleanup();
  });

  test('past maxOpenRequests the server answers BUSY for that id only', async () => {
    const hold = holdService();
    const { server, state } = await serveWithState({
      services: [echoService(), hold.service],
      limits: { maxOpenRequests: 3 },
    });
    const client = await connect(server.address, { token: TEST_TOKEN, stateDir: state.path });
    const held = [1, 2, 3].map(() => client.call({ type: 'hold' }, undefined, { timeoutMs: 0 }));
    await expectCode(client.call({ type: 'hold' }), 'BUSY');
    assert.equal(hold.started, 3);
    hold.releaseAll();
    for (const answer of await Promise.all(held)) assert.equal(answer.header.type, 'held');
    assert.equal((await client.echo('after')).toString(), 'after');
    await client.close();
    await server.close(100);
    await state.cleanup();
  });

  test('an idle connection is closed with TIMEOUT', async () => {
    const { server, state } = await serveWithState({ limits: { idleTimeoutMs: 30 } });
    const client = await connect(server.address, { token: TEST_TOKEN, stateDir: state.path });
    await closedForIdling(client);
    await server.close(100);
    await state.cleanup();
  });

  test('a client using open services without a token is under the idle timer, not the handshake one', async () => {
    const server = await serveOnLoopback({
      token: TEST_TOKEN,
      limits: { handshakeTimeoutMs: 60_000, idleTimeoutMs: 30 },
    });
    const client = await connect(server.address, { env: {} });
    assert.equal(client.authenticated, false);
    const closed = closedForIdling(client);
    assert.equal((await client.echo('anonymous')).toString(), 'anonymous');
    await closed;
    await server.close(100);
  });

  test('a client that never says hello is dropped at the handshake timeout', async () => {
    const server = await serveOnLoopback({
      token: TEST_TOKEN,
      limits: { handshakeTimeoutMs: 30 },
    });
    const peer = await RawPeer.open(server.address);
    const error = (await peer.next())!;
    assert.equal(error.header.code, 'TIMEOUT');
    await peer.closed;
    await server.close(100);
  });

  test('invalid limits are refused with a message naming them', async () => {
    await assert.rejects(serveOnLoopback({ token: 'x', limits: { maxConnections: -1 } }), /maxConnections/);
    await assert.rejects(
      serveOnLoopback({ token: 'x', limits: { maxHeaderBytes: 70000 } }),
      /maxHeaderBytes/,
    );
  });
});

describe('graceful shutdown', () => {
  test('open requests finish, idle connections close, then the server is closed', async () => {
    const hold = holdService();
    const { server, state } = await serveWithState({ services: [echoService(), hold.service] });
    const busy = await connect(server.address, { token: TEST_TOKEN, stateDir: state.path });
    const idle = await connect(server.address, { token: TEST_TOKEN, stateDir: state.path });
    const idleClosed = new Promise<SockitError>((resolve) => idle.once('close', resolve));
    const answer = busy.call({ type: 'hold' }, undefined, { timeoutMs: 0 });
    await new Promise<void>((resolve) => {
      const check = (): void => (hold.started === 1 ? resolve() : void setImmediate(check));
      check();
    });
    const closing = server.close(60_000);
    assert.equal((await idleClosed).code, 'UNAVAILABLE');
    await expectCode(busy.call({ type: 'hold' }), 'UNAVAILABLE');
    hold.releaseAll();
    assert.equal((await answer).header.type, 'held');
    await closing;
    assert.equal(server.connectionCount, 0);
    await state.cleanup();
  });

  test('at the deadline each open request gets UNAVAILABLE, its work is aborted, the connection closes', async () => {
    const hold = holdService();
    const server = await serveOnLoopback({ token: TEST_TOKEN, services: [hold.service] });
    const client = await connect(server.address, { token: TEST_TOKEN });
    const answer = client.call({ type: 'hold' }, undefined, { timeoutMs: 0 });
    await new Promise<void>((resolve) => {
      const check = (): void => (hold.started === 1 ? resolve() : void setImmediate(check));
      check();
    });
    const failed = expectCode(answer, 'UNAVAILABLE');
    await server.close(10);
    assert.match((await failed).message, /shut down before the request finished/);
  });
});

describe('backpressure', () => {
  test('a slow handler pauses the socket instead of buffering without bound', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let firstChunk!: () => void;
    const sawFirst = new Promise<void>((resolve) => {
      firstChunk = resolve;
    });
    let chunks = 0;
    const sink: Service = {
      name: 'sink',
      frames: testFrames('sink', { sink: { followUps: ['chunk', 'end'], replies: ['sunk'] } }),
      requests: {
        sink(request) {
          request.onFrame = (frame) => {
            if (frame.header.type === 'end') {
              request.reply({ type: 'sunk', chunks });
              return;
            }
            chunks++;
            firstChunk();
            return gate; // the "disk" is stuck until released
          };
        },
      },
    };
    const server = await serveOnLoopback({ token: TEST_TOKEN, services: [sink] });
    const client = await connect(server.address, { token: TEST_TOKEN });
    const request = client.open({ type: 'sink' }, undefined, { final: (h) => h.type === 'sunk' });
    const chunk = Buffer.alloc(1024 * 1024);
    const total = 64;
    let sent = 0;
    const sending = (async () => {
      for (; sent < total; sent++) await request.write({ type: 'chunk' }, chunk);
      await request.write({ type: 'end' });
    })();
    await sawFirst;
    // While the handler is stuck, the sender must block long before all 64 MiB left it: once the
    // socket buffers on both sides are full, `write` stops resolving. Kernel buffers hold a few MiB.
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.ok(sent < total, `sender should be held back by backpressure, sent ${sent} of ${total}`);
    assert.equal(chunks, 1, 'no further frame is handed to the service while it is busy');
    release();
    await sending;
    assert.equal((await request.done).header.chunks, total);
    await client.close();
    await server.close(100);
  });
});

describe('many clients', () => {
  test('2000 concurrent authenticated clients are each served', async () => {
    const server = await serveOnLoopback({
      token: TEST_TOKEN,
      services: [echoService({ transform: 'upper' })],
    });
    const clients: Client[] = [];
    try {
      // Connect in waves so the listen backlog is never the limit being tested.
      for (let wave = 0; wave < 10; wave++) {
        clients.push(
          ...(await Promise.all(
            Array.from({ length: 200 }, () => connect(server.address, { token: TEST_TOKEN })),
          )),
        );
      }
      assert.equal(server.connectionCount, 2000);
      const answers = await Promise.all(clients.map((client, i) => client.echo(`client-${i}`)));
      for (const [i, answer] of answers.entries()) assert.equal(answer.toString(), `CLIENT-${i}`);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
      await server.close(1000);
    }
  });
});
