import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Forwarder, type StreamForwardOptions, startStreamForward } from '../../src/raw/forward.js';
import { parseAddress } from '../../src/transport/address.js';
import { echoServer, payload } from './helpers.js';

const MiB = 1024 * 1024;
const ADDON = fileURLToPath(new URL('../../../native/build/Release/sockit_forward.node', import.meta.url));
/** Where the native engine must be the one that runs (it built, and nothing turned it off). */
const NATIVE_EXPECTED = process.platform === 'linux' && process.env.SOCKIT_NO_NATIVE !== '1';

type EchoTarget = Awaited<ReturnType<typeof echoServer>>;

/** A forwarder from 127.0.0.1:0 to `target`, its lines collected. */
async function forward(
  target: string,
  options: Partial<StreamForwardOptions> = {},
): Promise<{ forwarder: Forwarder; port: number; lines: string[]; line(pattern: RegExp): Promise<string> }> {
  const lines: string[] = [];
  const waiting: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const forwarder = await startStreamForward({
    listen: parseAddress('127.0.0.1:0'),
    target: parseAddress(target),
    say: (line) => {
      lines.push(line);
      for (const wait of waiting.splice(0)) {
        if (wait.pattern.test(line)) wait.resolve(line);
        else waiting.push(wait);
      }
    },
    ...options,
  });
  const address = forwarder.addresses[0]!;
  return {
    forwarder,
    port: address.kind === 'unix' ? 0 : address.port,
    lines,
    line: (pattern) =>
      new Promise((resolve) => {
        const seen = lines.find((line) => pattern.test(line));
        if (seen !== undefined) resolve(seen);
        else waiting.push({ pattern, resolve });
      }),
  };
}

function dial(port: number): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  return once(socket, 'connect').then(() => socket);
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('the native forward engine', { timeout: 60_000 }, () => {
  let echo: EchoTarget;
  before(async () => {
    echo = await echoServer();
  });
  after(() => echo.close());

  it('runs plain TCP to an IP or unix target; TLS, host names and chaos stay on Node sockets', async () => {
    assert.equal(existsSync(ADDON) || !NATIVE_EXPECTED, true, `${ADDON} is not built`);
    const byIp = await forward(`127.0.0.1:${echo.port}`);
    const byName = await forward(`localhost:${echo.port}`);
    const off = await forward(`127.0.0.1:${echo.port}`, { nativeEngine: false });
    try {
      assert.equal(byIp.forwarder.engine, NATIVE_EXPECTED ? 'native' : 'node');
      assert.equal(byName.forwarder.engine, 'node');
      assert.equal(off.forwarder.engine, 'node');
    } finally {
      await Promise.all([byIp.forwarder.close(0), byName.forwarder.close(0), off.forwarder.close(0)]);
    }
  });

  it('holds up only the connection whose target stops reading, and loses none of its bytes', async () => {
    let first: ((socket: net.Socket) => void) | undefined;
    const stalledAccepted = new Promise<net.Socket>((resolve) => {
      first = resolve;
    });
    const target = net.createServer({ allowHalfOpen: true }, (socket) => {
      if (first === undefined) {
        socket.pipe(socket);
        return;
      }
      socket.pause(); // reads nothing until the other connection is done
      first(socket);
      first = undefined;
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const { forwarder, port, line } = await forward(
      `127.0.0.1:${(target.address() as net.AddressInfo).port}`,
    );
    try {
      const slow = await dial(port);
      const big = payload(48 * MiB);
      slow.end(big);
      const stalled = await stalledAccepted;
      // Meanwhile another client is served in full.
      const quick = await dial(port);
      const small = payload(4 * MiB);
      const back: Buffer[] = [];
      quick.on('data', (chunk: Buffer) => back.push(chunk));
      quick.end(small);
      await once(quick, 'end');
      assert.equal(sha(Buffer.concat(back)), sha(small));
      assert.ok(slow.writableLength > 0, 'the stalled client still holds bytes it could not send');
      // Then the stalled target reads everything, byte-exact.
      const received = createHash('sha256');
      let count = 0;
      stalled.on('data', (chunk: Buffer) => {
        received.update(chunk);
        count += chunk.length;
      });
      stalled.resume();
      await once(stalled, 'end');
      assert.equal(count, big.length);
      assert.equal(received.digest('hex'), sha(big));
      stalled.end();
      await once(slow, 'close');
      await line(new RegExp(`up ${big.length} B, down 0 B`));
    } finally {
      await forwarder.close(0);
      target.close();
    }
  });

  it('closes the target side when the client resets, and says so', async () => {
    const target = net.createServer((socket) => socket.on('error', () => {}).resume());
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const connected = once(target, 'connection') as Promise<[net.Socket]>;
    const { forwarder, port, line } = await forward(
      `127.0.0.1:${(target.address() as net.AddressInfo).port}`,
    );
    try {
      const client = await dial(port);
      client.write('then a reset');
      const [upstream] = await connected;
      const upstreamClosed = once(upstream, 'close');
      client.resetAndDestroy();
      await upstreamClosed;
      assert.match(await line(/→/), /error: .*ECONNRESET/);
    } finally {
      await forwarder.close(0);
      target.close();
    }
  });

  it('passes on what a target sent just before it reset the connection', async () => {
    const last = payload(1000);
    const target = net.createServer((socket) => {
      socket.on('error', () => {});
      // Relaying has begun once the client's bytes are here: then the last words, then a reset.
      socket.once('data', () => {
        socket.write(last);
        socket.resetAndDestroy();
      });
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const { forwarder, port, line } = await forward(
      `127.0.0.1:${(target.address() as net.AddressInfo).port}`,
    );
    try {
      const client = await dial(port);
      client.on('error', () => {});
      const chunks: Buffer[] = [];
      client.on('data', (chunk: Buffer) => chunks.push(chunk));
      client.write('hello');
      await once(client, 'end');
      assert.equal(sha(Buffer.concat(chunks)), sha(last));
      client.end(); // Node's sockets may have read the reset as a FIN: our side ends too
      assert.match(await line(/→/), /up 5 B, down 1000 B/);
    } finally {
      await forwarder.close(0);
      target.close();
    }
  });

  it('drains open connections on close: no new clients, the open ones finish', async () => {
    const { forwarder, port, line } = await forward(`127.0.0.1:${echo.port}`);
    const open = await dial(port);
    const closing = forwarder.close(60_000);
    await assert.rejects(dial(port), /ECONNREFUSED/, 'no longer accepting');
    open.write('after close()');
    assert.equal(String((await once(open, 'data'))[0]), 'after close()');
    open.end();
    await closing;
    assert.match(await line(/→/), /up 13 B, down 13 B, \d+ ms$/);
  });

  it('cuts the connections left at the deadline', async () => {
    const { forwarder, port, line } = await forward(`127.0.0.1:${echo.port}`);
    const open = await dial(port);
    open.write('still here');
    await once(open, 'data');
    const cut = once(open, 'end');
    await forwarder.close(0);
    assert.match(await line(/→/), /closed: shutting down/);
    await cut;
  });
});
