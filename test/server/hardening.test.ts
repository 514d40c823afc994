/**
 * Issue 9, the server core: limits that hostile, slow and careless peers cannot stretch or
 * sidestep. Each test fails without its fix: real sockets on port 0, peers that dribble, hold
 * refused sockets open, announce bodies they never send, or reuse open request ids.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import tls from 'node:tls';
import { connect } from '../../src/client/client.js';
import { encodeFrameToBuffer } from '../../src/protocol/frame.js';
import { serveRaw } from '../../src/server/raw-server.js';
import { type ServeOptions, type Server, serve } from '../../src/server/server.js';
import type { Service } from '../../src/server/service.js';
import { echoService } from '../../src/services/echo.js';
import { CLI, TEST_TOKEN, tempDir, testFrames, waitForLine } from '../helpers.js';
import { RawPeer } from './peer.js';

function serveOnLoopback(options: Partial<ServeOptions>): Promise<Server> {
  return serve({ listen: 'tcp://127.0.0.1:0', token: TEST_TOKEN, ...options });
}

function portOf(address: string): number {
  return Number(address.split(':').pop());
}

/** Writes `bytes` one byte every `everyMs` until they run out or the socket closes. */
function dribble(
  socket: net.Socket,
  bytes: Buffer,
  everyMs: number,
): { stop(): void; done: Promise<boolean> } {
  let timer: NodeJS.Timeout | undefined;
  let finish!: (closedFirst: boolean) => void;
  const done = new Promise<boolean>((resolve) => {
    finish = resolve;
  });
  let at = 0;
  timer = setInterval(() => {
    if (socket.destroyed) return;
    if (at >= bytes.length) {
      clearInterval(timer);
      finish(false);
      return;
    }
    socket.write(bytes.subarray(at, at + 1));
    at++;
  }, everyMs);
  socket.once('close', () => {
    clearInterval(timer);
    finish(true);
  });
  return {
    stop: () => {
      clearInterval(timer);
      timer = undefined;
    },
    done,
  };
}

/** A service whose requests stay open until the connection ends; counts aborts. */
function holdService() {
  const seen = { started: 0, aborted: 0 };
  const service: Service = {
    name: 'hold',
    frames: testFrames('hold', { hold: { replies: [] } }),
    requests: {
      hold(request) {
        seen.started++;
        request.signal.addEventListener('abort', () => {
          seen.aborted++;
          request.finish();
        });
      },
    },
  };
  return { service, seen };
}

/** Resolves when `check()` holds, looking once per event-loop turn; fails after `ms`. */
async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('time limits that data cannot stretch', { timeout: 30_000 }, () => {
  test('a hello dribbled one byte at a time is cut at the fixed handshake deadline', async () => {
    const server = await serveOnLoopback({ limits: { handshakeTimeoutMs: 300 } });
    try {
      const peer = await RawPeer.open(server.address);
      const started = Date.now();
      // 20 ms per byte: an inactivity timer would never fire; the whole hello takes ~1.2 s.
      const drip = dribble(
        peer.socket,
        encodeFrameToBuffer({ type: 'hello', version: 1, client: 'slow-loris' }),
        20,
      );
      const error = (await peer.next())!;
      assert.equal(error.header.code, 'TIMEOUT');
      assert.match(String(error.header.message), /handshake/);
      assert.equal(await drip.done, true, 'the server closed the connection before the hello was complete');
      assert.ok(Date.now() - started < 1000, `closed after ${Date.now() - started} ms`);
    } finally {
      await server.close(100);
    }
  });

  test('a frame dribbled after ready has its own deadline, though bytes keep coming', async () => {
    const server = await serveOnLoopback({ limits: { frameTimeoutMs: 300, idleTimeoutMs: 60_000 } });
    try {
      const peer = await RawPeer.open(server.address);
      await peer.handshake();
      const drip = dribble(
        peer.socket,
        encodeFrameToBuffer({ type: 'echo', id: 1 }, Buffer.alloc(200, 'x')),
        10,
      );
      const error = (await peer.next())!;
      assert.equal(error.header.code, 'TIMEOUT');
      assert.equal(error.header.id, undefined);
      assert.match(String(error.header.message), /frame was started and not finished within 300 ms/);
      assert.equal(await drip.done, true, 'closed while the frame was still arriving');
    } finally {
      await server.close(100);
    }
  });

  test('frames that arrive whole are not under the frame deadline, however long the connection lives', async () => {
    // Small frames, so that each one arrives well inside the deadline even on a loaded machine.
    // Between them a second connection starts a frame and never finishes it: its TIMEOUT is the
    // event that says a whole deadline has passed while the first connection sat between frames.
    const server = await serveOnLoopback({ limits: { frameTimeoutMs: 250 } });
    try {
      const client = await connect(server.address, { token: TEST_TOKEN });
      for (let i = 0; i < 3; i++) {
        assert.equal((await client.echo(Buffer.alloc(64 * 1024, i))).length, 64 * 1024);
        const stalled = await RawPeer.open(server.address);
        await stalled.handshake();
        stalled.socket.write(encodeFrameToBuffer({ type: 'echo', id: 1 }, Buffer.alloc(100)).subarray(0, 20));
        assert.equal((await stalled.next())!.header.code, 'TIMEOUT');
        stalled.socket.destroy();
      }
      await client.close();
    } finally {
      await server.close(100);
    }
  });

  test('after a connection error the close grace is fixed: a peer that keeps sending is still cut', async () => {
    const server = await serveOnLoopback({ limits: { closeGraceMs: 300 } });
    try {
      const peer = await RawPeer.open(server.address);
      peer.send({ type: 'echo', id: 1 }); // not hello: UNSUPPORTED, then the server ends its side
      assert.equal((await peer.next())!.header.code, 'UNSUPPORTED');
      const started = Date.now();
      const drip = dribble(peer.socket, Buffer.alloc(1000, 'z'), 10); // never closes its own side
      assert.equal(await drip.done, true);
      const held = Date.now() - started;
      assert.ok(held < 1500, `the peer held the socket for ${held} ms`);
    } finally {
      await server.close(100);
    }
  });

  test('after a connection error, a peer that sends on is not drained for free: past 256 KiB it is destroyed', async () => {
    const server = await serveOnLoopback({ limits: { closeGraceMs: 20_000 } });
    try {
      const peer = await RawPeer.open(server.address);
      peer.send({ type: 'echo', id: 1 });
      assert.equal((await peer.next())!.header.code, 'UNSUPPORTED');
      const started = Date.now();
      peer.socket.on('error', () => {});
      peer.socket.write(Buffer.alloc(4 * 1024 * 1024));
      await peer.closed;
      assert.ok(Date.now() - started < 5000, `closed after ${Date.now() - started} ms, the grace is 20 s`);
    } finally {
      await server.close(100);
    }
  });

  test('the raw server too: after finish, a peer that keeps sending is destroyed at the grace', async () => {
    const state = await tempDir();
    const server = await serveRaw({
      listen: 'tcp://127.0.0.1:0',
      stateDir: state.path,
      closeGraceMs: 300,
      handle: ({ socket }) => {
        socket.write('bye\n');
      },
    });
    try {
      const socket = net.connect({ host: '127.0.0.1', port: portOf(server.address) });
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('data', resolve));
      const started = Date.now();
      const drip = dribble(socket, Buffer.alloc(1000, 'z'), 10);
      assert.equal(await drip.done, true);
      assert.ok(Date.now() - started < 1500, `held for ${Date.now() - started} ms`);
    } finally {
      await server.close(100);
      await state.cleanup();
    }
  });

  test('TLS clients that never finish their TLS handshake count against the cap and are cut at the deadline', async () => {
    const state = await tempDir();
    const server = await serve({
      listen: 'tls://127.0.0.1:0',
      token: TEST_TOKEN,
      stateDir: state.path,
      limits: { maxConnections: 2, handshakeTimeoutMs: 600 },
    });
    try {
      const port = portOf(server.address);
      const stalled = await Promise.all(
        [1, 2].map(async () => {
          const socket = net.connect({ host: '127.0.0.1', port }); // TCP only: no ClientHello ever
          socket.on('error', () => {});
          await new Promise((resolve) => socket.once('connect', resolve));
          return { socket, closed: new Promise((resolve) => socket.once('close', resolve)) };
        }),
      );
      const started = Date.now();
      // The two stalled sockets fill the cap: a real TLS client is told BUSY.
      const busy = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
      busy.on('error', () => {});
      let said = '';
      busy.on('data', (chunk: Buffer) => {
        said += chunk.toString('latin1');
      });
      await new Promise((resolve) => busy.once('close', resolve));
      assert.match(said, /BUSY/);
      await Promise.all(stalled.map((entry) => entry.closed));
      const held = Date.now() - started;
      assert.ok(held < 3000, `stalled TLS sockets were held ${held} ms`);
      // With them gone the slots are free again.
      const client = await connect(server.address, { token: TEST_TOKEN, stateDir: state.path });
      assert.equal((await client.echo('tls ok')).toString(), 'tls ok');
      await client.close();
    } finally {
      await server.close(100);
      await state.cleanup();
    }
  });
});

/**
 * Opens a socket that never closes its side; resolves once connected. `ended` resolves with the
 * bytes received when the server's FIN (or a reset) arrives. Whether the server then freed its
 * socket is seen on the server (`refusalsInProgress`), not here: our half stays open.
 */
async function holder(port: number): Promise<{ socket: net.Socket; ended: Promise<number> }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  let bytes = 0;
  socket.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  socket.allowHalfOpen = true; // the server's FIN does not close our side
  await new Promise((resolve) => socket.once('connect', resolve));
  const ended = new Promise<number>((resolve) => {
    socket.once('end', () => resolve(bytes));
    socket.once('close', () => resolve(bytes));
  });
  return { socket, ended };
}

describe('sockit serve --handshake-timeout (spawned CLI)', { timeout: 30_000 }, () => {
  test('a client that says nothing is told TIMEOUT at the deadline given', async () => {
    const state = await tempDir();
    const child = spawn(
      process.execPath,
      [CLI, 'serve', 'tcp://127.0.0.1:0', '--handshake-timeout', '200ms'],
      {
        env: { ...process.env, SOCKIT_STATE_DIR: state.path, HOME: state.path },
      },
    );
    try {
      const [, address] = await waitForLine(child.stdout, /^ {2}(tcp:\/\/\S+)$/);
      const peer = await RawPeer.open(address!);
      const started = Date.now();
      const error = (await peer.next())!;
      assert.equal(error.header.code, 'TIMEOUT');
      await peer.closed;
      assert.ok(Date.now() - started < 3000, `told after ${Date.now() - started} ms`);
    } finally {
      child.kill('SIGKILL');
      if (child.exitCode === null) await once(child, 'exit');
      await state.cleanup();
    }
  });
});

describe('refusals that free what they hold', { timeout: 30_000 }, () => {
  test('framed: a refused client that keeps its end open is destroyed on a fixed timer', async () => {
    const server = await serveOnLoopback({ limits: { maxConnections: 1, closeGraceMs: 300 } });
    const first = await connect(server.address, { token: TEST_TOKEN });
    try {
      const refused = await holder(portOf(server.address));
      const started = Date.now();
      assert.ok((await refused.ended) > 0, 'the refusal was written before the close');
      assert.equal(server.refusalsInProgress, 1, 'the peer has not closed: the server still holds it');
      await until(() => server.refusalsInProgress === 0, 'the refused socket to be destroyed');
      assert.ok(Date.now() - started < 1500, `the refused socket was held ${Date.now() - started} ms`);
      refused.socket.destroy();
    } finally {
      await first.close();
      await server.close(100);
    }
  });

  test('raw: the same refusal routine, with the raw server message', async () => {
    const state = await tempDir();
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const server = await serveRaw({
      listen: 'tcp://127.0.0.1:0',
      stateDir: state.path,
      maxConnections: 1,
      closeGraceMs: 300,
      handle: () => held,
    });
    try {
      const first = await holder(portOf(server.address));
      const refused = await holder(portOf(server.address));
      let text = '';
      refused.socket.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      const started = Date.now();
      await refused.ended;
      assert.match(text, /connection refused/);
      // Our side stays open; writing after the server destroyed its socket gets a reset.
      const drip = dribble(refused.socket, Buffer.alloc(1000, 'z'), 10);
      assert.equal(await drip.done, true);
      assert.ok(Date.now() - started < 1500, `held ${Date.now() - started} ms`);
      first.socket.destroy();
    } finally {
      release();
      await server.close(100);
      await state.cleanup();
    }
  });

  test('past the refusals in progress a client is destroyed at accept, without a write', async () => {
    const reasons = new Map<string, number>();
    const server = await serveOnLoopback({
      limits: { maxConnections: 1, closeGraceMs: 20_000 },
      observer: { refused: (reason) => reasons.set(reason, (reasons.get(reason) ?? 0) + 1) },
    });
    const first = await connect(server.address, { token: TEST_TOKEN });
    const holders: Awaited<ReturnType<typeof holder>>[] = [];
    try {
      const port = portOf(server.address);
      for (let wave = 0; wave < 6; wave++) {
        holders.push(...(await Promise.all(Array.from({ length: 50 }, () => holder(port)))));
      }
      // 300 refused holders, a ceiling of 256 refusals in progress: the rest are closed at once.
      await until(() => server.refusalsInProgress === 256, '256 refusals in progress');
      // Every holder hears its end at once: the refused get BUSY then the server's FIN, those past
      // the ceiling only the close.
      const silent = await Promise.all(holders.map((entry) => entry.ended));
      const closedWithoutWord = silent.filter((bytes) => bytes === 0).length;
      assert.equal(closedWithoutWord, 300 - 256, 'clients beyond the ceiling are closed without a write');
      assert.equal(server.refusalsInProgress, 256);
      // The observer (metrics: sockit_connections_refused_total{reason}) is told which was which.
      assert.deepEqual(Object.fromEntries(reasons), { limit: 256, overflow: 300 - 256 });
    } finally {
      for (const entry of holders) entry.socket.destroy();
      await first.close();
      await server.close(100);
    }
  });
});

describe('memory before authentication', { timeout: 30_000 }, () => {
  /** Sends a header announcing `size` body bytes and none of them. */
  function announce(peer: RawPeer, header: Record<string, unknown>, size: number): void {
    const bytes = Buffer.from(JSON.stringify({ ...header, size }));
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(bytes.length);
    peer.socket.write(Buffer.concat([prefix, bytes]));
  }

  test('hello takes no body: a 16 MiB announcement is TOO_LARGE before a byte of it is read', async () => {
    const server = await serveOnLoopback({});
    try {
      const peer = await RawPeer.open(server.address);
      announce(peer, { type: 'hello', version: 1 }, 16 * 1024 * 1024);
      const error = (await peer.next())!;
      assert.equal(error.header.code, 'TOO_LARGE');
      assert.match(String(error.header.message), /"hello" frame takes no body/);
      await peer.closed;
    } finally {
      await server.close(100);
    }
  });

  test('auth takes no body either', async () => {
    const server = await serveOnLoopback({});
    try {
      const peer = await RawPeer.open(server.address);
      peer.send({ type: 'hello', version: 1 });
      await peer.next();
      announce(peer, { type: 'auth', proof: 'x' }, 10);
      assert.equal((await peer.next())!.header.code, 'TOO_LARGE');
      await peer.closed;
    } finally {
      await server.close(100);
    }
  });

  test('open services before auth get the small cap; after auth the full limit', async () => {
    const server = await serveOnLoopback({ limits: { preAuthBodyBytes: 1000 } });
    try {
      const anonymous = await connect(server.address, { env: {} });
      assert.equal(anonymous.authenticated, false);
      assert.equal((await anonymous.echo(Buffer.alloc(1000))).length, 1000);
      await assert.rejects(anonymous.echo(Buffer.alloc(1001)), { code: 'TOO_LARGE' });
      await anonymous.close();
      const client = await connect(server.address, { token: TEST_TOKEN });
      assert.equal((await client.echo(Buffer.alloc(1024 * 1024))).length, 1024 * 1024);
      await client.close();
    } finally {
      await server.close(100);
    }
  });

  test('past the server-wide buffer budget, connections holding part of a frame stop reading until it drops', async () => {
    const budget = 256 * 1024;
    const server = await serveOnLoopback({ limits: { maxBufferedBytes: budget } });
    const hogs: RawPeer[] = [];
    try {
      /** A peer that sends 512 KiB of a 1 MiB frame and nothing more. */
      const hog = async (): Promise<RawPeer> => {
        const peer = await RawPeer.open(server.address);
        await peer.handshake();
        const header = Buffer.from(JSON.stringify({ type: 'echo', id: 1, size: 1024 * 1024 }));
        const prefix = Buffer.alloc(4);
        prefix.writeUInt32BE(header.length);
        peer.socket.write(Buffer.concat([prefix, header, Buffer.alloc(512 * 1024)]));
        hogs.push(peer);
        return peer;
      };
      // The first to meet the full budget may finish its frame: it holds all it sent.
      const first = await hog();
      await until(() => server.bufferedBytes >= 512 * 1024, 'the first hog to be read');
      // The second stops being read.
      await hog();
      await until(() => server.pausedReads === 1, 'the second hog to be paused');
      assert.ok(server.bufferedBytes < 1024 * 1024, `the server buffered ${server.bufferedBytes} bytes`);
      // Small requests between frames still go on.
      const other = await connect(server.address, { token: TEST_TOKEN });
      assert.equal((await other.echo('small')).toString(), 'small');
      // When the first one goes, the second is read again.
      first.socket.destroy();
      await until(
        () => server.pausedReads === 0 && server.bufferedBytes >= 512 * 1024,
        'the second hog to resume',
      );
      for (const peer of hogs) peer.socket.destroy();
      await until(() => server.bufferedBytes === 0, 'the budget to empty');
      // A frame larger than the whole budget still passes when it is alone.
      assert.equal((await other.echo(Buffer.alloc(600 * 1024, 'b'))).length, 600 * 1024);
      await other.close();
    } finally {
      for (const peer of hogs) peer.socket.destroy();
      await server.close(100);
    }
  });
});

describe('shutdown and CONFLICT', { timeout: 30_000 }, () => {
  test('at the drain deadline each open request gets its UNAVAILABLE frame before the close', async () => {
    const hold = holdService();
    const server = await serveOnLoopback({ services: [hold.service] });
    const peer = await RawPeer.open(server.address);
    await peer.handshake();
    peer.send({ type: 'hold', id: 1 });
    peer.send({ type: 'hold', id: 2 });
    await until(() => hold.seen.started === 2, 'both requests to start');
    const closing = server.close(50);
    const answers = [(await peer.next())!, (await peer.next())!];
    assert.deepEqual(answers.map((frame) => [frame.header.type, frame.header.id, frame.header.code]).sort(), [
      ['error', 1, 'UNAVAILABLE'],
      ['error', 2, 'UNAVAILABLE'],
    ]);
    await peer.closed;
    await closing;
    assert.equal(hold.seen.aborted, 2, 'their work was aborted');
  });

  test('CONFLICT: reusing an open id is a connection error, and the open request ends', async () => {
    const hold = holdService();
    const server = await serveOnLoopback({ services: [hold.service] });
    try {
      const peer = await RawPeer.open(server.address);
      await peer.handshake();
      peer.send({ type: 'hold', id: 5 });
      peer.send({ type: 'hold', id: 5 });
      const error = (await peer.next())!;
      assert.equal(error.header.code, 'CONFLICT');
      assert.equal(error.header.id, undefined, 'a connection error carries no id');
      assert.match(String(error.header.message), /request id 5 is already open/);
      await peer.closed;
      await until(() => hold.seen.aborted === 1, 'the open request to be aborted');
      assert.equal(hold.seen.started, 1);
    } finally {
      await server.close(100);
    }
  });
});

describe('the server after all of that', () => {
  test('an ordinary client is served with the default limits', async () => {
    const server = await serveOnLoopback({ services: [echoService()] });
    const client = await connect(server.address, { token: TEST_TOKEN });
    assert.equal((await client.echo('still fine')).toString(), 'still fine');
    await client.close();
    await server.close(100);
  });
});
