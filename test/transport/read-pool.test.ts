/**
 * Recycled read buffers (transport/read-pool.ts, FramedSocket.recycleReads): TLS records land in
 * pooled buffers, a buffer comes back only once the decoder and every frame holding its bytes
 * let go, and a frame that is never released keeps its bytes intact however much follows.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import tls from 'node:tls';
import { bodyParts, encodeFrameToBuffer, type Frame } from '../../src/protocol/frame.js';
import { FramedSocket } from '../../src/transport/framed-socket.js';
import {
  leaseOf,
  POOLED_READ_BYTES,
  pooledReadBuffers,
  releaseLease,
  retainLease,
  takeReadBuffer,
} from '../../src/transport/read-pool.js';
import { generateSelfSignedCertificate } from '../../src/transport/self-signed.js';

const certificate = generateSelfSignedCertificate();

/** A TLS connection on loopback: the server's end in a FramedSocket, the client's raw. */
async function tlsPair(onFrame: (frame: Frame) => void): Promise<{
  framed: FramedSocket;
  client: tls.TLSSocket;
  close(): Promise<void>;
}> {
  const server = tls.createServer({ cert: certificate.certPem, key: certificate.keyPem });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>;
  const client = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  await once(client, 'secureConnect');
  const [socket] = await accepted;
  const framed = new FramedSocket(socket, { onFrame, onFrameError: () => {}, onClose: () => {} });
  return {
    framed,
    client,
    async close() {
      client.destroy();
      framed.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('recycled read buffers', { timeout: 30_000 }, () => {
  test('a lease returns its buffer to the pool when its last holder lets go, not before', () => {
    const buffer = takeReadBuffer();
    assert.equal(buffer.length, POOLED_READ_BYTES);
    const lease = leaseOf(buffer.subarray(100, 200))!;
    assert.ok(lease, 'a view finds the lease of the buffer it lies in');
    assert.equal(leaseOf(Buffer.alloc(10)), undefined, 'other memory has none');
    const before = pooledReadBuffers();
    retainLease(lease);
    retainLease(lease);
    releaseLease(lease);
    assert.equal(pooledReadBuffers(), before, 'one holder left: still out');
    releaseLease(lease);
    assert.equal(pooledReadBuffers(), before + 1, 'the last one gives it back');
    assert.equal(takeReadBuffer(), buffer, 'and the next read reuses it');
  });

  test('a plain socket keeps Node’s own reads', async () => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const [socket] = await accepted;
    const framed = new FramedSocket(socket, { onFrame: () => {}, onFrameError: () => {}, onClose: () => {} });
    try {
      assert.equal(framed.recycleReads(), false);
    } finally {
      client.destroy();
      framed.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('over TLS: frames carry release, released buffers are reused, an unreleased frame keeps its bytes', async () => {
    const count = 60;
    // 40 KiB bodies span three records: their parts lie in several pooled buffers each.
    const bodies = Array.from({ length: count }, () => randomBytes(40 * 1024));
    const kept: { frame: Frame; body: Buffer }[] = [];
    let received = 0;
    let allReceived!: () => void;
    const done = new Promise<void>((resolve) => {
      allReceived = resolve;
    });
    let sawRelease = 0;
    const pair = await tlsPair((frame) => {
      const index = Number(frame.header.index);
      assert.deepEqual(Buffer.concat(bodyParts(frame)), bodies[index], `frame ${index} arrives intact`);
      if (frame.release) sawRelease++;
      // Every fifth frame is held, never released: its buffers must not be handed out again.
      if (index % 5 === 0) kept.push({ frame, body: bodies[index]! });
      else {
        frame.release?.();
        frame.release?.(); // a second call does nothing
      }
      if (++received === count) allReceived();
    });
    try {
      assert.equal(pair.framed.recycleReads(), true, 'a TLS socket switches to pooled buffers');
      const pooledBefore = pooledReadBuffers();
      for (let index = 0; index < count; index++) {
        pair.client.write(encodeFrameToBuffer({ type: 'data', index }, bodies[index]));
      }
      await done;
      assert.equal(sawRelease, count, 'every frame with bytes in pooled buffers can be released');
      assert.ok(pooledReadBuffers() > pooledBefore, 'released buffers went back to the pool');
      for (const { frame, body } of kept) {
        assert.deepEqual(Buffer.concat(bodyParts(frame)), body, 'a held frame still has its own bytes');
      }
    } finally {
      await pair.close();
    }
  });
});
