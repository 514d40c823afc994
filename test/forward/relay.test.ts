import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { proxyHeader } from '../../src/raw/forward-proxy-header.js';
import { relaySockets } from '../../src/raw/forward-relay.js';
import { RELAY_BULK_BYTES, relayBuffersLent } from '../../src/raw/relay-buffers.js';
import { canRelayDescriptors as canSplice } from '../../src/transport/descriptor-relay.js';
import { ipBytes, parseProxy } from '../../src/transport/proxy.js';
import { payload } from './helpers.js';

const MiB = 1024 * 1024;

/** Two connected socket pairs: client ↔ (a … b) ↔ target, with a and b for the relay. */
async function pairs(): Promise<{ client: net.Socket; a: net.Socket; b: net.Socket; target: net.Socket }> {
  const pair = async (): Promise<[net.Socket, net.Socket]> => {
    const server = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const accepted = once(server, 'connection');
    const dialed = net.connect({
      port: (server.address() as net.AddressInfo).port,
      host: '127.0.0.1',
      allowHalfOpen: true,
    });
    const [socket] = (await accepted) as [net.Socket];
    server.close();
    return [dialed, socket];
  };
  const [client, a] = await pair();
  const [b, target] = await pair();
  return { client, a, b, target };
}

const collect = (socket: net.Socket): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return once(socket, 'end').then(() => Buffer.concat(chunks));
};

describe('relaySockets', { timeout: 30_000 }, () => {
  it("carries the client's FIN to the target, and the answer after it still comes back", async () => {
    const { client, a, b, target } = await pairs();
    const relayed = relaySockets(a, b);
    const atTarget = collect(target);
    client.end('question');
    assert.equal((await atTarget).toString(), 'question');
    const atClient = collect(client);
    target.end('answer after your EOF');
    assert.equal((await atClient).toString(), 'answer after your EOF');
    const result = await relayed;
    assert.deepEqual([result.up, result.down, result.end, result.error], [8, 21, 'done', undefined]);
  });

  it("carries a FIN that came before the relay started (nothing sent, 'end' already emitted)", async () => {
    const { client, a, b, target } = await pairs();
    a.allowHalfOpen = true; // as the raw server sets it at accept, before the target is dialled
    const ended = once(a, 'end');
    a.resume(); // what Node does at EOF anyway when no byte is waiting: 'end' is emitted unheard
    client.end();
    await ended;
    a.pause();
    const atTarget = collect(target);
    const relayed = relaySockets(a, b);
    assert.equal((await atTarget).length, 0, 'the target saw the FIN');
    const atClient = collect(client);
    target.end('late answer');
    assert.equal((await atClient).toString(), 'late answer');
    assert.equal((await relayed).end, 'done');
  });

  it("carries the target's FIN to the client, and the client may still send", async () => {
    const { client, a, b, target } = await pairs();
    const relayed = relaySockets(a, b);
    const atClient = collect(client);
    target.end('bye');
    assert.equal((await atClient).toString(), 'bye');
    const atTarget = collect(target);
    client.end('still talking');
    assert.equal((await atTarget).toString(), 'still talking');
    assert.equal((await relayed).end, 'done');
  });

  it('pauses the client while the target reads nothing: relay memory stays bounded, then all arrives', async () => {
    const { client, a, b, target } = await pairs();
    target.pause();
    const relayed = relaySockets(a, b);
    const data = payload(64 * MiB);
    const paused = once(a, 'pause');
    client.end(data);
    await paused; // the relay stopped reading the client: backpressure reached it
    assert.ok(b.writableLength <= 2 * MiB, `relay holds ${b.writableLength} bytes for the target`);
    assert.ok(client.writableLength > 32 * MiB, 'the client still holds most of what it wants to send');
    const hash = createHash('sha256');
    let received = 0;
    target.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
    });
    target.resume();
    await once(target, 'end');
    assert.equal(received, data.length);
    assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'));
    target.end();
    client.resume();
    assert.equal((await relayed).up, data.length);
  });

  /** 16 MiB up (bulk), half the bulk mark down, both checked byte for byte; the relay's result. */
  const bulkUpSmallDown = async (
    options: Parameters<typeof relaySockets>[2],
    during: () => void = () => {},
  ): Promise<Awaited<ReturnType<typeof relaySockets>>> => {
    const { client, a, b, target } = await pairs();
    const relayed = relaySockets(a, b, options);
    const up = payload(16 * MiB);
    const down = payload(RELAY_BULK_BYTES / 2); // stays below the bulk mark
    const hash = createHash('sha256');
    let received = 0;
    target.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
      if (received > 4 * MiB) during();
    });
    const atClient = collect(client);
    client.end(up);
    target.end(down);
    await once(target, 'end');
    assert.equal(received, up.length);
    assert.equal(hash.digest('hex'), createHash('sha256').update(up).digest('hex'));
    assert.ok((await atClient).equals(down));
    const result = await relayed;
    assert.deepEqual(
      [result.up, result.down, result.end, result.error],
      [up.length, down.length, 'done', undefined],
    );
    return result;
  };

  it('hands a bulk direction to the kernel (splice): byte-exact, counted, both sockets closed', async () => {
    const expected = process.platform === 'linux' && process.env.SOCKIT_NO_NATIVE !== '1';
    assert.equal(canSplice(), expected, 'npm install builds native/splice.c on Linux');
    const lentBefore = relayBuffersLent();
    const result = await bulkUpSmallDown({});
    assert.equal(result.spliced, canSplice());
    assert.equal(relayBuffersLent(), lentBefore, 'a spliced direction needs no buffer');
  });

  it('splices a direction that a stalled reader holds up, and loses nothing when it reads again', async () => {
    const { client, a, b, target } = await pairs();
    target.pause();
    const relayed = relaySockets(a, b);
    const data = payload(32 * MiB);
    const stalled = once(a, 'pause'); // taken over (or backpressure) while the target reads nothing
    client.end(data);
    await stalled;
    const hash = createHash('sha256');
    let received = 0;
    target.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
    });
    target.resume();
    await once(target, 'end');
    target.end();
    const result = await relayed;
    assert.equal(received, data.length);
    assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'));
    assert.deepEqual([result.up, result.spliced], [data.length, canSplice()]);
    client.destroy();
  });

  it('closes a stalled spliced relay at the idle timeout, and the peers see it closed', async () => {
    const { client, a, b, target } = await pairs();
    client.on('error', () => {});
    target.on('error', () => {});
    target.pause();
    const relayed = relaySockets(a, b, { idleTimeoutMs: 300 });
    const peersSawIt = Promise.all([
      once(target, 'end'),
      new Promise((resolve) => client.once('close', resolve)), // after a reset: no once(), it rejects
    ]);
    client.write(payload(32 * MiB)); // more than the kernel's buffers hold: the relay stalls
    const result = await relayed;
    assert.deepEqual([result.end, result.spliced], ['idle', canSplice()]);
    // The splice held duplicates of both descriptors; stopping it closed them, so the sockets
    // really closed: the target reads its EOF, the client (its bytes unread) a reset.
    target.resume();
    await peersSawIt;
    target.destroy();
  });

  it('copies a bulk direction through a lent reused buffer without splice, and gives it back', async () => {
    const lentBefore = relayBuffersLent();
    let lentDuring = 0;
    const result = await bulkUpSmallDown({ kernelSplice: false }, () => {
      lentDuring = Math.max(lentDuring, relayBuffersLent() - lentBefore);
    });
    assert.equal(result.spliced, false);
    assert.equal(lentDuring, 1, 'only the bulk direction borrowed a buffer');
    assert.equal(relayBuffersLent(), lentBefore, 'the relay gave its buffer back');
  });

  it('closes both sides after the idle timeout', async () => {
    const { client, a, b, target } = await pairs();
    client.on('error', () => {});
    target.on('error', () => {});
    const result = await relaySockets(a, b, { idleTimeoutMs: 100 });
    assert.equal(result.end, 'idle');
    assert.ok(result.ms >= 100);
    client.destroy();
    target.destroy();
  });

  it('destroys the other side when one resets', async () => {
    const { client, a, b, target } = await pairs();
    target.on('error', () => {});
    const relayed = relaySockets(a, b);
    target.resume();
    const targetEnded = once(target, 'end');
    client.resetAndDestroy();
    await targetEnded; // the relay closed its side towards the target
    const result = await relayed;
    assert.equal(result.end, 'error');
    assert.equal((result.error as NodeJS.ErrnoException).code, 'ECONNRESET');
    target.destroy();
  });
});

describe('PROXY headers and proxy URLs', () => {
  it('writes PROXY v1 and v2 for an IPv4 client', async () => {
    const { client, a, b, target } = await pairs();
    const v1 = proxyHeader('v1', a).toString('latin1');
    assert.equal(v1, `PROXY TCP4 127.0.0.1 127.0.0.1 ${a.remotePort} ${a.localPort}\r\n`);
    const v2 = proxyHeader('v2', a);
    assert.equal(v2.subarray(0, 12).toString('hex'), '0d0a0d0a000d0a515549540a');
    assert.deepEqual([v2[12], v2[13], v2.readUInt16BE(14)], [0x21, 0x11, 12]);
    assert.deepEqual([...v2.subarray(16, 20)], [127, 0, 0, 1]);
    assert.equal(v2.readUInt16BE(24), a.remotePort);
    assert.equal(v2.readUInt16BE(26), a.localPort);
    for (const socket of [client, a, b, target]) socket.destroy();
  });

  it('turns IPv6 text into network bytes', () => {
    assert.equal(ipBytes('::1', 6).toString('hex'), `${'0'.repeat(30)}01`);
    assert.equal(ipBytes('127.0.0.1', 6).toString('hex'), '00000000000000000000ffff7f000001');
    assert.equal(
      ipBytes('fd00::ab:1', 6).toString('hex'),
      'fd0000000000000000000000 00ab0001'.replace(' ', ''),
    );
  });

  it('parses socks5:// and http:// proxies and refuses anything else', () => {
    assert.deepEqual(parseProxy('socks5://127.0.0.1:1080'), {
      kind: 'socks5',
      host: '127.0.0.1',
      port: 1080,
    });
    assert.deepEqual(parseProxy('http://[::1]:3128'), { kind: 'http', host: '::1', port: 3128 });
    assert.throws(() => parseProxy('ftp://x:1'), /--proxy "ftp:\/\/x:1"/);
    assert.throws(() => parseProxy('http://x'), /socks5:\/\/HOST:PORT/);
  });
});
