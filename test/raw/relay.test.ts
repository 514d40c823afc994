import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { relay } from '../../src/raw/relay.js';
import { readIntoReusedBuffer } from '../../src/transport/reused-buffer.js';
import { tempDir } from './helpers.js';

/** A loopback server's accepted socket and the client connected to it. */
async function socketPair(): Promise<{ accepted: net.Socket; client: net.Socket }> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const acceptedPromise = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect({ port, host: '127.0.0.1' });
  const accepted = await acceptedPromise;
  server.close();
  return { accepted, client };
}

const MiB = 1024 * 1024;

describe('relay receive side: reused buffer and its fallback', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  before(async () => {
    dir = await tempDir('sockit-relay-');
  });
  after(async () => {
    await dir.cleanup();
  });

  it('reads an accepted TCP socket into the one given buffer on this Node, EOF included', async () => {
    const { accepted, client } = await socketPair();
    const buffer = Buffer.alloc(64 * 1024);
    const copies: Buffer[] = [];
    let views = 0;
    const taken = readIntoReusedBuffer(accepted, buffer, (chunk) => {
      if (chunk.buffer === buffer.buffer) views++;
      copies.push(Buffer.from(chunk));
      return true;
    });
    // Node's internals changed if this fails: the relay would silently take its slower path.
    assert.equal(taken, true, `no reused-buffer path on Node ${process.version}`);
    const data = randomBytes(3 * MiB);
    const ended = new Promise<void>((resolve) => accepted.once('end', resolve));
    client.end(data);
    await ended;
    assert.equal(Buffer.compare(Buffer.concat(copies), data), 0);
    assert.equal(views, copies.length, 'every chunk is a view of the reused buffer');
    accepted.destroy();
  });

  it('declines, changing nothing, for TLS sockets and sockets with bytes already buffered', async () => {
    assert.equal(
      readIntoReusedBuffer(new tls.TLSSocket(new net.Socket()), Buffer.alloc(16), () => true),
      false,
    );
    const { accepted, client } = await socketPair();
    accepted.pause();
    client.write('early');
    await new Promise<void>((resolve) => accepted.once('readable', resolve));
    assert.equal(
      readIntoReusedBuffer(accepted, Buffer.alloc(16), () => assert.fail('the reused buffer was used')),
      false,
    );
    const rest = new Promise<string>((resolve) => {
      let text = '';
      accepted.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      accepted.once('end', () => resolve(text));
    });
    accepted.resume();
    client.end(' and late');
    assert.equal(await rest, 'early and late');
    accepted.destroy();
  });

  for (const [path, byDescriptor] of [
    ['the reused buffer (output by descriptor)', true],
    ["'data' events (an output stream only)", false],
  ] as const) {
    it(`relay carries 8 MiB byte-exact through ${path}`, async () => {
      const { accepted, client } = await socketPair();
      const data = randomBytes(8 * MiB);
      const file = join(dir.path, `out-${byDescriptor ? 'fd' : 'stream'}.bin`);
      const fd = openSync(file, 'w');
      const collected: Buffer[] = [];
      const stream = new PassThrough();
      stream.on('data', (chunk: Buffer) => collected.push(chunk));
      try {
        const session = relay({
          socket: accepted,
          output: stream,
          ...(byDescriptor ? { outputFd: fd } : {}),
        });
        client.end(data);
        client.resume();
        const result = await session;
        assert.equal(result.error, undefined);
        assert.equal(result.received, data.length);
        assert.equal(result.sent, 0);
      } finally {
        closeSync(fd);
      }
      const received = byDescriptor ? readFileSync(file) : Buffer.concat(collected);
      assert.equal(Buffer.compare(received, data), 0);
      if (byDescriptor) assert.equal(collected.length, 0, 'the fast path writes by descriptor only');
    });
  }
});
