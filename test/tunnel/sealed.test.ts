/**
 * Sealed channels (docs/protocol.md "Sealed channels"): a long tunnel stream over tls:// moves
 * the rest of its bytes on a TLS connection of its own, sealed and opened in C. The addon's
 * record layer is tested on its own (tampering, cuts, wrong keys), then whole streams through a
 * real server and client, with the server's log saying which way each stream went.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { connect } from '../../src/client/client.js';
import { forwardLocal } from '../../src/client/tunnel.js';
import type { SockitError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import { TUNNEL_CHANNEL_AFTER_BYTES, TUNNEL_FRAMES, TUNNEL_WINDOW } from '../../src/protocol/tunnel.js';
import { tunnelService } from '../../src/services/tunnel/index.js';
import { descriptorOf, stopReading } from '../../src/transport/descriptor-relay.js';
import {
  type DirectionKey,
  openDescriptor,
  sealDescriptor,
  sealedChannelsAvailable,
} from '../../src/transport/sealed-channel.js';
import { TunnelSendGate } from '../../src/transport/tunnel-gate.js';
import { TunnelStream } from '../../src/transport/tunnel-stream.js';
import { payload } from '../forward/helpers.js';
import { startServer, TEST_TOKEN } from '../helpers.js';
import { killAll } from '../raw/helpers.js';
import { startTunnel } from './helpers.js';

after(killAll);

const NATIVE_EXPECTED = process.platform === 'linux' && process.env.SOCKIT_NO_NATIVE !== '1';
const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const newKey = (): DirectionKey => ({ key: randomBytes(16), iv: randomBytes(12) });

/** A connected pair of loopback sockets, both allowing half-close. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const near = net.connect({ port: (server.address() as net.AddressInfo).port, allowHalfOpen: true });
  const [far] = (await once(server, 'connection')) as [net.Socket];
  await once(near, 'connect');
  server.close();
  return [near, far];
}

/** Everything `socket` reads until its end of file. */
function readAll(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.resume();
  return new Promise((resolve, reject) => {
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

/** Seals `plain` with `key` and returns the records as they went over the wire. */
async function sealToBytes(plain: Buffer, key: DirectionKey, prefix?: Buffer): Promise<Buffer> {
  const [writer, source] = await socketPair();
  const [sink, reader] = await socketPair();
  stopReading(source);
  const records = readAll(reader);
  const done = new Promise<number>((resolve, reject) =>
    sealDescriptor(
      descriptorOf(source),
      descriptorOf(sink),
      key,
      (error, bytes) => (error ? reject(error) : resolve(bytes)),
      prefix,
    ),
  );
  writer.end(plain);
  const moved = await done;
  assert.equal(moved, plain.length + (prefix?.length ?? 0), 'onDone counts the plaintext');
  const wire = await records; // the seal shut the sending side: the reader saw end of file
  for (const socket of [writer, source, sink, reader]) socket.destroy();
  return wire;
}

/**
 * Opens `wire` (records, possibly tampered with) with `key`: the plaintext, or the addon's error
 * code. `prefix` bytes are handed in as already read, before the wire's.
 */
async function openBytes(
  wire: Buffer,
  key: DirectionKey,
  prefix?: Buffer,
): Promise<{ plain: Buffer } | { error: string }> {
  const [writer, source] = await socketPair();
  const [sink, reader] = await socketPair();
  stopReading(source);
  const plain = readAll(reader);
  const outcome = await new Promise<{ plain?: true; error?: string }>((resolve) => {
    openDescriptor(
      descriptorOf(source),
      descriptorOf(sink),
      key,
      (error) => resolve(error ? { error: String(error.code) } : { plain: true }),
      prefix,
    );
    writer.end(wire);
  });
  sink.end();
  const result = outcome.error === undefined ? { plain: await plain } : { error: outcome.error };
  for (const socket of [writer, source, sink, reader]) socket.destroy();
  return result;
}

describe('the sealed record layer (native/seal.c)', { timeout: 30_000 }, () => {
  test('this process can seal where the addon is built', () => {
    assert.equal(sealedChannelsAvailable(), NATIVE_EXPECTED);
  });

  test('what is sealed opens byte-exact, prefix first; records are authenticated', async (t) => {
    if (!NATIVE_EXPECTED) return t.skip('SOCKIT_NO_NATIVE=1 or not Linux: in-frame tunnels only');
    const key = newKey();
    const prefix = payload(300 * 1024); // more than one record's worth
    const plain = payload(3 * 1024 * 1024 + 17);
    const wire = await sealToBytes(plain, key, prefix);
    assert.ok(wire.length > plain.length + prefix.length, 'headers and tags are on the wire');
    assert.ok(!wire.includes(plain.subarray(0, 64)), 'the plaintext is not on the wire');
    const opened = await openBytes(wire, key);
    assert.ok('plain' in opened, `opened: ${JSON.stringify(opened)}`);
    assert.equal(sha(opened.plain), sha(Buffer.concat([prefix, plain])));

    assert.deepEqual(await openBytes(wire, newKey()), { error: 'EBADMSG' }, 'a wrong key');
    const flipped = Buffer.from(wire);
    flipped[1000] = flipped[1000]! ^ 1;
    assert.deepEqual(await openBytes(flipped, key), { error: 'EBADMSG' }, 'one flipped bit');
    const cut = wire.subarray(0, wire.length - 20); // the end record (4 + 16 bytes) is missing
    assert.deepEqual(await openBytes(cut, key), { error: 'EPROTO' }, 'a cut before the end record');
    const oversized = Buffer.from([0, 0xff, 0xff, 0xff, ...randomBytes(64)]);
    assert.deepEqual(await openBytes(oversized, key), { error: 'EMSGSIZE' }, 'a length over the record cap');
    // Empty data records cost a peer nothing to send and us a decryption each: refused.
    const empty = Buffer.from([0, 0, 0, 16, ...randomBytes(16)]);
    assert.deepEqual(await openBytes(empty, key), { error: 'EMSGSIZE' }, 'an empty data record');
    // Records already read (the prefix) open first, more than one wake-up's worth of them.
    const split = 600 * 1024;
    const fromPrefix = await openBytes(wire.subarray(split), key, wire.subarray(0, split));
    assert.ok('plain' in fromPrefix, `opened from a prefix: ${JSON.stringify(fromPrefix)}`);
    assert.equal(sha(fromPrefix.plain), sha(Buffer.concat([prefix, plain])));
    const allInPrefix = await openBytes(Buffer.alloc(0), key, wire);
    assert.ok('plain' in allInPrefix, `all in the prefix: ${JSON.stringify(allInPrefix)}`);
    assert.equal(allInPrefix.plain.length, prefix.length + plain.length);
  });

  test('an empty stream is one end record; a replayed end record does not open', async (t) => {
    if (!NATIVE_EXPECTED) return t.skip('SOCKIT_NO_NATIVE=1 or not Linux: in-frame tunnels only');
    const key = newKey();
    const wire = await sealToBytes(Buffer.alloc(0), key);
    assert.equal(wire.length, 4 + 16);
    assert.deepEqual(await openBytes(wire, key), { plain: Buffer.alloc(0) });
    // A record sealed as the first one, sent where the second is due, has the wrong nonce.
    const records = await sealToBytes(Buffer.from('x'), key);
    const replayed = Buffer.concat([records.subarray(0, 4 + 1 + 16), records.subarray(0, 4 + 1 + 16)]);
    assert.deepEqual(await openBytes(replayed, key), { error: 'EBADMSG' });
  });
});

/** A TunnelStream on a local socket pair whose frames the test sees, and a channel pair to join it. */
async function streamWithChannel(switchesFirst = true) {
  const [outside, inside] = await socketPair();
  const [channelNear, channelFar] = await socketPair();
  stopReading(channelNear); // a joined channel: Node reads it no more
  channelNear.on('error', () => {}); // as a joined channel's socket has: its reset is the stream's to report
  const frames: { type: string; bytes: number }[] = [];
  let finished: (error: SockitError | undefined) => void = () => {};
  const done = new Promise<SockitError | undefined>((resolve) => {
    finished = resolve;
  });
  const stream = new TunnelStream(inside, {
    send: (header, body) => frames.push({ type: header.type, bytes: body?.length ?? 0 }),
    gate: new TunnelSendGate({ writableLength: 0, drained: () => Promise.resolve() }),
    credit: TUNNEL_WINDOW,
    window: TUNNEL_WINDOW,
    onDone: (error) => finished(error),
    switchesFirst,
  });
  const keys = { send: newKey(), receive: newKey() };
  const join = (): void =>
    stream.useChannel({ fd: descriptorOf(channelNear), keys, destroy: () => channelNear.destroy() });
  return { outside, inside, channelFar, frames, stream, keys, join, done };
}

describe('a tunnel stream switching to its sealed channel', { timeout: 30_000 }, () => {
  test("bytes before the switch go in frames, after it sealed; the end record and the peer's records end both ways", async (t) => {
    if (!NATIVE_EXPECTED) return t.skip('SOCKIT_NO_NATIVE=1 or not Linux: in-frame tunnels only');
    const bed = await streamWithChannel();
    bed.stream.start();
    const framed = payload(100 * 1024);
    bed.outside.write(framed);
    while (bed.frames.reduce((sum, frame) => sum + frame.bytes, 0) < framed.length) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    bed.join();
    assert.deepEqual(
      bed.frames.at(-1),
      { type: TUNNEL_FRAMES.switch, bytes: 0 },
      'the switch is the last frame',
    );
    const framesAtSwitch = bed.frames.length;
    const sealedWire = readAll(bed.channelFar);
    const sealed = payload(700 * 1024);
    bed.outside.end(sealed);
    const opened = await openBytes(await sealedWire, bed.keys.send);
    assert.ok('plain' in opened);
    assert.ok(opened.plain.equals(sealed), 'what the socket read after the switch came sealed, whole');
    assert.equal(bed.frames.length, framesAtSwitch, 'no frame after the switch, not even tunnel-end');

    // The peer's way: frames first, then its switch and its records into the local socket.
    const fromPeer = payload(64 * 1024);
    const received = readAll(bed.outside);
    bed.stream.onFrame({ header: { type: TUNNEL_FRAMES.data }, body: fromPeer });
    bed.stream.onFrame({ header: { type: TUNNEL_FRAMES.switch }, body: Buffer.alloc(0) });
    const peerSealed = payload(500 * 1024);
    bed.channelFar.end(await sealToBytes(peerSealed, bed.keys.receive));
    assert.ok((await received).equals(Buffer.concat([fromPeer, peerSealed])), 'in order, then its FIN');
    assert.equal(await bed.done, undefined, 'both ways ended well');
    assert.equal(bed.stream.bytesOut, framed.length + sealed.length);
    assert.equal(bed.stream.bytesIn, fromPeer.length + peerSealed.length);
    bed.channelFar.destroy();
  });

  test('a channel reset after the switch fails the stream (CLOSED) and closes its local socket', async (t) => {
    if (!NATIVE_EXPECTED) return t.skip('SOCKIT_NO_NATIVE=1 or not Linux: in-frame tunnels only');
    const bed = await streamWithChannel();
    bed.stream.start();
    bed.join();
    // Reset or closed, as the kernel has it: the stream destroyed its side with our bytes unread.
    bed.outside.on('error', () => {});
    const localClosed = new Promise((resolve) => bed.outside.once('close', resolve));
    bed.stream.onFrame({ header: { type: TUNNEL_FRAMES.switch }, body: Buffer.alloc(0) });
    bed.outside.write(payload(300 * 1024));
    bed.channelFar.resetAndDestroy();
    const error = await bed.done;
    assert.equal(error?.code, 'CLOSED');
    assert.match(error!.message, /sealed channel failed: (ECONNRESET|EPIPE|EPROTO)/);
    await localClosed;
  });

  test('the server side: a peer that switched before its channel came waits for it, and fails if it never comes', async () => {
    const bed = await streamWithChannel(false);
    bed.stream.start();
    bed.stream.onFrame({ header: { type: TUNNEL_FRAMES.switch }, body: Buffer.alloc(0) });
    assert.equal(bed.stream.done, false, 'the channel may still come');
    bed.stream.abandonChannel();
    assert.equal((await bed.done)?.code, 'BAD_REQUEST');
    bed.channelFar.destroy();
    bed.outside.destroy();
  });

  test("data or an end in frames after the peer's switch is refused (BAD_REQUEST)", async () => {
    for (const type of [TUNNEL_FRAMES.data, TUNNEL_FRAMES.end]) {
      const bed = await streamWithChannel();
      bed.stream.start();
      bed.join();
      bed.stream.onFrame({ header: { type: TUNNEL_FRAMES.switch }, body: Buffer.alloc(0) });
      bed.stream.onFrame({
        header: { type },
        body: type === TUNNEL_FRAMES.data ? Buffer.alloc(10) : Buffer.alloc(0),
      });
      assert.equal((await bed.done)?.code, 'BAD_REQUEST', type);
      bed.channelFar.destroy();
      bed.outside.destroy();
    }
  });
});

/** A logger that keeps the tunnel service's "stream closed" lines. */
function streamLog(): {
  log: Logger;
  closed: Record<string, unknown>[];
  next(): Promise<Record<string, unknown>>;
} {
  const closed: Record<string, unknown>[] = [];
  let waiting: ((line: Record<string, unknown>) => void) | undefined;
  const keep = (message: string, fields?: Record<string, unknown>): void => {
    if (message !== 'tunnel stream closed' || fields === undefined) return;
    closed.push(fields);
    waiting?.(fields);
  };
  return {
    log: { debug: keep, info: keep, warn: keep, error: keep },
    closed,
    next: () =>
      new Promise((resolve) => {
        waiting = resolve;
      }),
  };
}

/**
 * A target that reads a stream to its end, then answers with the SHA-256 of what it read and
 * `answerBytes` more bytes: a FIN that did not arrive, or an answer cut after it, fails the test.
 */
async function answeringTarget(answer: Buffer): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const hash = createHash('sha256');
    socket.on('data', (chunk: Buffer) => hash.update(chunk));
    socket.once('end', () => socket.end(Buffer.concat([Buffer.from(hash.digest('hex')), answer])));
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A tls:// server whose tunnel service reaches an answeringTarget only, logging to `logged`. */
async function tlsTunnelTo(answer: Buffer) {
  const target = await answeringTarget(answer);
  const logged = streamLog();
  const server = await startServer({
    transport: 'tls',
    services: [tunnelService({ allow: [`127.0.0.1:${target.port}`], log: logged.log })],
  });
  return { target, logged, server };
}

/** Sends `bytes` through `port` and half-closes; resolves with all that came back. */
async function sendAndRead(port: number, bytes: Buffer): Promise<Buffer> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const answer = readAll(socket);
  socket.end(bytes);
  try {
    return await answer;
  } finally {
    socket.destroy();
  }
}

describe('tunnel streams on sealed channels', { timeout: 60_000 }, () => {
  test('a long stream goes sealed: byte-exact both ways, its FIN and the answer after it carried; a short one stays in frames', async (t) => {
    if (!NATIVE_EXPECTED) return t.skip('SOCKIT_NO_NATIVE=1 or not Linux: in-frame tunnels only');
    const answer = payload(3 * 1024 * 1024);
    const { target, logged, server } = await tlsTunnelTo(answer);
    const client = await connect(server.address, { token: TEST_TOKEN, stateDir: server.stateDir });
    try {
      assert.equal(client.channelKind, 'sealed');
      const local = await forwardLocal(
        client,
        { host: '127.0.0.1', port: 0 },
        {
          host: '127.0.0.1',
          port: target.port,
        },
      );
      const long = payload(5 * 1024 * 1024);
      const closedLong = logged.next();
      const back = await sendAndRead(local.port, long);
      assert.equal(back.length, 64 + answer.length);
      assert.equal(back.subarray(0, 64).toString(), sha(long), 'the target read every byte, then our FIN');
      assert.ok(back.subarray(64).equals(answer), 'its answer after the FIN came back whole');
      const line = await closedLong;
      assert.equal(line.sealed, true, `the long stream went sealed: ${JSON.stringify(line)}`);
      assert.equal(line.error, undefined);
      assert.equal(line.bytesIn, long.length);
      assert.equal(line.bytesOut, 64 + answer.length);

      const short = payload(TUNNEL_CHANNEL_AFTER_BYTES / 8);
      const closedShort = logged.next();
      const shortBack = await sendAndRead(local.port, short);
      assert.equal(shortBack.subarray(0, 64).toString(), sha(short));
      // The answer alone crosses the line: the channel is asked for, but the stream ends first or
      // just after; either way every byte arrived. Only a stream under the line both ways never asks.
      assert.equal((await closedShort).error, undefined);
      await local.close();
    } finally {
      await client.close();
      await server.stop();
      await target.close();
    }
  });

  test('20 long streams at once each go sealed and arrive byte-exact', async (t) => {
    if (!NATIVE_EXPECTED) return t.skip('SOCKIT_NO_NATIVE=1 or not Linux: in-frame tunnels only');
    const answer = payload(2 * 1024 * 1024);
    const { target, logged, server } = await tlsTunnelTo(answer);
    const client = await connect(server.address, { token: TEST_TOKEN, stateDir: server.stateDir });
    try {
      const local = await forwardLocal(
        client,
        { host: '127.0.0.1', port: 0 },
        {
          host: '127.0.0.1',
          port: target.port,
        },
      );
      const sent = Array.from({ length: 20 }, () => payload(2 * 1024 * 1024));
      const answers = await Promise.all(sent.map((bytes) => sendAndRead(local.port, bytes)));
      answers.forEach((back, index) => {
        assert.equal(back.subarray(0, 64).toString(), sha(sent[index]!), `stream ${index} upstream`);
        assert.ok(back.subarray(64).equals(answer), `stream ${index} downstream`);
      });
      while (logged.closed.length < 20) await logged.next();
      assert.deepEqual(
        logged.closed.map((line) => [line.sealed, line.error]),
        Array.from({ length: 20 }, () => [true, undefined]),
      );
      await local.close();
    } finally {
      await client.close();
      await server.stop();
      await target.close();
    }
  });

  test('a client without the addon (SOCKIT_NO_NATIVE=1) keeps a long stream in frames', async () => {
    const answer = payload(2 * 1024 * 1024);
    const { target, logged, server } = await tlsTunnelTo(answer);
    try {
      const tunnel = await startTunnel(
        server.address,
        ['-L', `0:127.0.0.1:${target.port}`],
        server.stateDir,
        {
          SOCKIT_NO_NATIVE: '1',
        },
      );
      const sent = payload(4 * 1024 * 1024);
      const closed = logged.next();
      const back = await sendAndRead(tunnel.local[0]!, sent);
      assert.equal(back.subarray(0, 64).toString(), sha(sent));
      assert.ok(back.subarray(64).equals(answer));
      assert.equal((await closed).sealed, false);
      assert.equal((await tunnel.stop()).code, 0);
    } finally {
      await server.stop();
      await target.close();
    }
  });

  test('a tunnel-switch with no channel offered ends that stream with BAD_REQUEST', async () => {
    const { target, server } = await tlsTunnelTo(Buffer.alloc(0));
    const client = await connect(server.address, { token: TEST_TOKEN, stateDir: server.stateDir });
    try {
      const request = client.open({
        type: TUNNEL_FRAMES.open,
        host: '127.0.0.1',
        port: target.port,
        window: TUNNEL_WINDOW,
      });
      const opened = new Promise<Record<string, unknown>>((resolve) => {
        request.onFrame = (frame) => resolve(frame.header);
      });
      const header = await opened;
      assert.equal(header.type, TUNNEL_FRAMES.opened);
      assert.equal(
        header.channel,
        NATIVE_EXPECTED ? true : undefined,
        'a TLS connection offers sealed channels',
      );
      request.send({ type: TUNNEL_FRAMES.switch });
      await assert.rejects(request.done, { code: 'BAD_REQUEST' });
      assert.equal(await client.ping().then(() => 'alive'), 'alive', 'the connection lives on');
    } finally {
      await client.close();
      await server.stop();
      await target.close();
    }
  });
});
