import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import { encodeFrame } from '../../src/protocol/encoder.js';
import type { Frame } from '../../src/protocol/frame.js';
import { FramedSocket, type FramedSocketEvents } from '../../src/transport/framed-socket.js';

/** A FramedSocket on the server end of a real loopback connection, and the raw client end. */
interface Pair {
  framed: FramedSocket;
  client: Socket;
  /** What `framed.socket.write` was called with, in order. */
  writes: Buffer[];
  /** Resolves with the first `count` frames the client end decodes. */
  receive(count: number): Promise<Frame[]>;
}

let server: Server;
const accepted: Socket[] = [];

before(async () => {
  server = createServer((socket) => accepted.push(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
});

after(() => server.close());

async function pair(
  events: Partial<FramedSocketEvents> = {},
  stopReadingWhileWriteBlocked = false,
): Promise<Pair> {
  const { port } = server.address() as { port: number };
  const client = connect(port, '127.0.0.1');
  await once(client, 'connect');
  while (accepted.length === 0) await once(server, 'connection');
  const socket = accepted.shift()!;
  const writes: Buffer[] = [];
  const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
  socket.write = ((chunk: Buffer) => {
    writes.push(chunk);
    return write(chunk);
  }) as typeof socket.write;
  const framed = new FramedSocket(
    socket,
    { onFrame: () => {}, onFrameError: () => {}, onClose: () => {}, ...events },
    { stopReadingWhileWriteBlocked },
  );
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  const waiting: { count: number; resolve: (frames: Frame[]) => void }[] = [];
  client.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let frame = decoder.next(); frame; frame = decoder.next()) {
      frames.push({ header: frame.header, body: Buffer.from(frame.body) });
    }
    for (const wait of waiting.splice(0)) {
      if (frames.length >= wait.count) wait.resolve(frames.slice(0, wait.count));
      else waiting.push(wait);
    }
  });
  return {
    framed,
    client,
    writes,
    receive: (count) =>
      frames.length >= count
        ? Promise.resolve(frames.slice(0, count))
        : new Promise((resolve) => waiting.push({ count, resolve })),
  };
}

async function close({ framed, client }: Pair): Promise<void> {
  const closed = once(client, 'close');
  framed.destroy();
  client.destroy();
  await closed;
}

describe('FramedSocket write path', () => {
  test('frames sent in one turn leave together, in order, a large body uncopied', async () => {
    const p = await pair();
    const big = Buffer.alloc(100_000, 0x62);
    for (let id = 1; id <= 50; id++) p.framed.send({ type: 'echo' }, Buffer.from(`small ${id}`), id);
    p.framed.send({ type: 'data' }, big, 51);
    for (let id = 52; id <= 100; id++) p.framed.send({ type: 'echo' }, Buffer.from(`small ${id}`), id);
    const frames = await p.receive(100);
    assert.deepEqual(
      frames.map((f) => f.header.id),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.equal(frames[50]!.body.length, big.length);
    assert.equal(frames[99]!.body.toString(), 'small 100');
    // 50 frames, the big body by reference, 49 frames: three buffers for one writev (one more
    // for each side whose frames met the end of the shared slab).
    assert.ok(p.writes.length <= 5, `${p.writes.length} writes`);
    assert.ok(p.writes.includes(big), 'the body itself went out, not a copy');
    await close(p);
  });

  test('replies sent from handlers and from later microtasks keep the order they were sent in', async () => {
    const sent: number[] = [];
    let p: Pair | undefined;
    const reply = (id: number): void => {
      sent.push(id);
      p!.framed.send({ type: 'echo' }, Buffer.from(String(id)), id);
    };
    p = await pair({
      onFrame(frame) {
        const id = frame.header.id!;
        if (id % 3 === 0) reply(id);
        else queueMicrotask(() => reply(id));
      },
    });
    const requests = Array.from({ length: 90 }, (_, i) =>
      encodeFrame({ type: 'echo' }, Buffer.from('x'), i + 1),
    );
    p.client.write(Buffer.concat(requests.flat()));
    const frames = await p.receive(90);
    assert.deepEqual(
      frames.map((f) => f.header.id),
      sent,
    );
    assert.deepEqual(
      frames.map((f) => f.body.toString()),
      sent.map(String),
    );
    assert.ok(p.writes.length < 90, `batched: ${p.writes.length} writes for 90 frames`);
    await close(p);
  });

  test('send says stop once unsent frames reach the high-water mark, and drained() waits for the peer', async () => {
    const p = await pair();
    p.client.pause();
    const chunk = Buffer.alloc(64 * 1024, 0x63);
    let sent = 0;
    // The batch counts before it is written: a second 64 KiB frame in the same tick is too much.
    while (p.framed.send({ type: 'data' }, chunk, 1)) sent++;
    assert.equal(sent, 0);
    // Fill the kernel's buffers too, until the socket itself holds bytes back.
    while (!p.framed.socket.writableNeedDrain) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      p.framed.send({ type: 'data' }, chunk, 1);
    }
    let drained = false;
    const draining = p.framed.drained().then(() => {
      drained = true;
    });
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(drained, false, 'still blocked while the peer reads nothing');
    p.client.resume();
    await draining;
    assert.equal(drained, true);
    await close(p);
  });

  test('a server side that cannot write stops decoding until the peer reads again', async () => {
    let decoded = 0;
    let p: Pair | undefined;
    const chunk = Buffer.alloc(256 * 1024, 0x64);
    p = await pair(
      {
        onFrame(frame) {
          decoded++;
          p!.framed.send({ type: 'data' }, chunk, frame.header.id);
        },
      },
      true,
    );
    p.client.pause();
    const request = Buffer.concat(encodeFrame({ type: 'get' }, undefined, 1));
    // Requests keep coming while the answers are not read: decoding must stop at some point.
    while (!p.framed.socket.writableNeedDrain) {
      p.client.write(request);
      await once(p.framed.socket, 'data');
    }
    const stalled = decoded;
    for (let i = 0; i < 20; i++) p.client.write(request);
    await new Promise<void>((resolve) => p!.client.write(request, () => resolve()));
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(decoded, stalled, 'no frame decoded while the write side is blocked');
    p.client.resume();
    await p.receive(stalled + 21);
    assert.equal(decoded, stalled + 21);
    await close(p);
  });
});
